//! Snapshots: tree navigation and restore (upload comes with the write path).

mod direct;
pub mod ignore;
pub mod restore;
pub mod select;
pub mod tree;
pub mod upload;
