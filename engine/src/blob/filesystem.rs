//! Filesystem storage with Kopia sharding (to be written).
