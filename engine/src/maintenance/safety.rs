//! Safety margins of maintenance, as named presets (kopia `repo/maintenance/maintenance_safety.go`).
//!
//! Every margin protects a concurrent writer or a reader holding an older view:
//! * `blob_delete_min_age`: an unreferenced pack younger than this may belong to a session that
//!   has not flushed its index yet.
//! * `session_expiration_age`: a session marker whose `checkpointTime` is younger than this
//!   keeps all packs of that session alive, however old.
//! * `min_content_age_subject_to_gc`: contents written more recently than this are never
//!   marked deleted by snapshot GC (a snapshot referencing them may still be uploading).
//! * `require_two_gc_cycles` + `margin_between_snapshot_gc` + `drop_content_from_index_extra_margin`:
//!   deleted entries are dropped (deletion watermark) only once a later GC had the chance to
//!   undelete contents that a racing snapshot made reachable again.
//! * `rewrite_min_age`: contents younger than this are not moved by pack rewrite.
//! * `min_rewrite_to_orphan_deletion_delay`: packs orphaned by a rewrite are deleted only
//!   after this delay, so clients holding the pre-rewrite index can still read them.

use std::fmt;
use std::str::FromStr;

use chrono::TimeDelta;

const HOUR: i64 = 3600;

/// A set of safety margins (durations in seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafetyParams {
    /// Preset name (`full`, `none`).
    pub name: &'static str,
    /// Minimum age of an unreferenced pack before it is deleted.
    pub blob_delete_min_age: i64,
    /// Subtracted from the safe drop time found from GC runs.
    pub drop_content_from_index_extra_margin: i64,
    /// Minimum gap between the end of an earlier GC and the start of the latest one.
    pub margin_between_snapshot_gc: i64,
    /// Contents younger than this are never marked deleted by GC.
    pub min_content_age_subject_to_gc: i64,
    /// Contents younger than this are not rewritten.
    pub rewrite_min_age: i64,
    /// Session markers with a checkpoint younger than this protect their packs.
    pub session_expiration_age: i64,
    /// Drop deleted contents only after two GC cycles.
    pub require_two_gc_cycles: bool,
    /// Delay between a rewrite and deleting the packs it orphaned.
    pub min_rewrite_to_orphan_deletion_delay: i64,
}

/// kopia `SafetyFull`, the default: safe with concurrent writers and stale readers.
pub const SAFETY_FULL: SafetyParams = SafetyParams {
    name: "full",
    blob_delete_min_age: 24 * HOUR,
    drop_content_from_index_extra_margin: HOUR,
    margin_between_snapshot_gc: 4 * HOUR,
    min_content_age_subject_to_gc: 24 * HOUR,
    rewrite_min_age: 2 * HOUR,
    session_expiration_age: 96 * HOUR,
    require_two_gc_cycles: true,
    min_rewrite_to_orphan_deletion_delay: HOUR,
};

/// kopia `SafetyNone`: every margin zero. Only when nothing else touches the repository
/// (tests, disaster recovery): one full run reclaims everything unreachable.
pub const SAFETY_NONE: SafetyParams = SafetyParams {
    name: "none",
    blob_delete_min_age: 0,
    drop_content_from_index_extra_margin: 0,
    margin_between_snapshot_gc: 0,
    min_content_age_subject_to_gc: 0,
    rewrite_min_age: 0,
    session_expiration_age: 0,
    require_two_gc_cycles: false,
    min_rewrite_to_orphan_deletion_delay: 0,
};

impl Default for SafetyParams {
    fn default() -> Self {
        SAFETY_FULL
    }
}

impl SafetyParams {
    /// A margin as a duration.
    pub fn secs(s: i64) -> TimeDelta {
        TimeDelta::seconds(s)
    }
}

impl FromStr for SafetyParams {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "full" => Ok(SAFETY_FULL),
            "none" => Ok(SAFETY_NONE),
            other => Err(crate::Error::Config(format!(
                "unknown safety level {other:?} (expected full or none)"
            ))),
        }
    }
}

impl fmt::Display for SafetyParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}
