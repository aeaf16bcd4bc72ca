//! # arkiv-mover: the binaries' shared code
//!
//! Layer: top (mover → engine → format). Parses command lines and environment, calls the
//! engine, and maps errors to exit codes. No format or storage logic lives here.
