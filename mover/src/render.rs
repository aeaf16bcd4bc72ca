//! Rendering, as pure formatting: [`text`] for people at a terminal (kopia-style listings,
//! sizes, times) and [`volsync`] for the VolSync controller and the users reading its status
//! (controller lines, the exit summary, the JSON result).

pub mod text;
pub mod volsync;
