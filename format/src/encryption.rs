//! (to be written: see FORMAT.md)
