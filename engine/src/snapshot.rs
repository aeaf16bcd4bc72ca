//! Snapshots: tree navigation and restore (upload comes with the write path).

pub mod restore;
pub mod tree;
pub mod upload;
