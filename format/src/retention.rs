//! Snapshot retention (FORMAT.md §13).
