//! The printable plan of one maintenance run (what `--dry-run` shows, and what a real run
//! records as it goes).

use std::fmt;

use arkiv_format::ids::BlobId;
use chrono::{DateTime, Utc};

use super::gc::GcPlan;
use super::rewrite::{DeletePlan, RewritePlan};
use super::safety::SafetyParams;

/// Quick or full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Epoch maintenance only.
    Quick,
    /// GC, drop deleted, rewrite, blob deletion, epoch maintenance, log cleanup.
    Full,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        })
    }
}

/// A step that may be skipped, with the reason.
#[derive(Debug, Clone)]
pub enum Step<T> {
    /// Not due / not applicable.
    Skipped(String),
    /// Planned (and, unless dry run, applied).
    Planned(T),
}

impl<T> Step<T> {
    /// The planned value, if any.
    pub fn planned(&self) -> Option<&T> {
        match self {
            Step::Planned(t) => Some(t),
            Step::Skipped(_) => None,
        }
    }
}

impl<T> Default for Step<T> {
    fn default() -> Self {
        Step::Skipped("not part of this mode".into())
    }
}

/// Epoch index maintenance.
#[derive(Debug, Clone, Default)]
pub struct EpochPlan {
    /// Write epoch at planning time.
    pub write_epoch: u64,
    /// Epoch to compact into `xs` and its input blobs.
    pub compact_single: Option<(u64, Vec<BlobId>)>,
    /// New write epoch.
    pub advance: Option<u64>,
    /// Range checkpoint (`first`, `last`, inputs).
    pub range: Option<(u64, u64, Vec<BlobId>)>,
    /// `xe`/`xw` blobs to delete.
    pub cleanup_markers: Vec<BlobId>,
    /// Superseded `xn` blobs to delete.
    pub delete_superseded: Vec<BlobId>,
}

/// Everything one maintenance run does, and why.
#[derive(Debug, Clone)]
pub struct MaintenancePlan {
    /// Quick or full.
    pub mode: Mode,
    /// Safety preset.
    pub safety: SafetyParams,
    /// `MaintenanceStartTime` (storage time of the schedule blob; clock time for dry runs).
    pub start: DateTime<Utc>,
    /// Snapshot GC.
    pub gc: Step<GcPlan>,
    /// Deletion watermark to write.
    pub drop_deleted: Step<DateTime<Utc>>,
    /// Short-pack rewrite.
    pub rewrite: Step<RewritePlan>,
    /// Unreferenced blob deletion.
    pub delete: Step<DeletePlan>,
    /// Epoch maintenance.
    pub epoch: EpochPlan,
    /// Diagnostic log blobs to delete.
    pub logs: Vec<(BlobId, u64)>,
}

fn list_some(f: &mut fmt::Formatter<'_>, items: &[String]) -> fmt::Result {
    const SHOWN: usize = 10;
    for i in items.iter().take(SHOWN) {
        writeln!(f, "      {i}")?;
    }
    if items.len() > SHOWN {
        writeln!(f, "      … and {} more", items.len() - SHOWN)?;
    }
    Ok(())
}

fn ids(v: &[BlobId]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

impl fmt::Display for MaintenancePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} maintenance plan (safety {}, start {})",
            self.mode,
            self.safety,
            self.start.to_rfc3339()
        )?;
        if self.mode == Mode::Full {
            match &self.gc {
                Step::Skipped(r) => writeln!(f, "  snapshot GC: skipped ({r})")?,
                Step::Planned(g) => {
                    writeln!(
                        f,
                        "  snapshot GC: {} snapshots, {} reachable contents",
                        g.snapshots, g.reachable
                    )?;
                    writeln!(
                        f,
                        "    mark deleted: {} contents ({} bytes) — unreachable from every snapshot and at least {}s old",
                        g.mark_deleted.len(),
                        g.mark_deleted_bytes,
                        self.safety.min_content_age_subject_to_gc
                    )?;
                    list_some(
                        f,
                        &g.mark_deleted
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>(),
                    )?;
                    writeln!(
                        f,
                        "    undelete: {} contents — deleted but reachable again",
                        g.undelete.len()
                    )?;
                    writeln!(
                        f,
                        "    kept (too young): {} contents ({} bytes)",
                        g.too_young, g.too_young_bytes
                    )?;
                }
            }
            match &self.drop_deleted {
                Step::Skipped(r) => writeln!(f, "  drop deleted contents: skipped ({r})")?,
                Step::Planned(t) => writeln!(
                    f,
                    "  drop deleted contents: deletion watermark {} (entries deleted at or before it disappear)",
                    t.to_rfc3339()
                )?,
            }
            match &self.rewrite {
                Step::Skipped(r) => writeln!(f, "  rewrite short packs: skipped ({r})")?,
                Step::Planned(p) => {
                    writeln!(
                        f,
                        "  rewrite short packs: {} packs, {} live contents, {} bytes copied (live < {}% of max pack size)",
                        p.packs.len(),
                        p.contents(),
                        p.bytes(),
                        super::rewrite::SHORT_PACK_PERCENT
                    )?;
                    list_some(
                        f,
                        &p.packs
                            .iter()
                            .map(|r| {
                                format!(
                                    "{} ({} bytes, {} live bytes in {} contents)",
                                    r.pack, r.blob_length, r.live_bytes, r.live_count
                                )
                            })
                            .collect::<Vec<_>>(),
                    )?;
                    writeln!(
                        f,
                        "    deferred: {} (hold deleted contents not yet dropped), {} (contents too young), {} (only short pack of its kind)",
                        p.deferred_deleted, p.deferred_young, p.single_short
                    )?;
                }
            }
            match &self.delete {
                Step::Skipped(r) => writeln!(f, "  delete unreferenced blobs: skipped ({r})")?,
                Step::Planned(d) => {
                    writeln!(
                        f,
                        "  delete unreferenced blobs: {} blobs, {} bytes (no index entry names them, old enough, no live session)",
                        d.blobs.len(),
                        d.bytes()
                    )?;
                    list_some(
                        f,
                        &d.blobs
                            .iter()
                            .map(|(b, n)| format!("{b} ({n} bytes)"))
                            .collect::<Vec<_>>(),
                    )?;
                    writeln!(
                        f,
                        "    preserved: {} too young, {} in live sessions",
                        d.preserved.young, d.preserved.session
                    )?;
                }
            }
        }
        let e = &self.epoch;
        writeln!(f, "  epoch maintenance (write epoch {}):", e.write_epoch)?;
        match &e.compact_single {
            Some((n, inputs)) => {
                writeln!(
                    f,
                    "    compact epoch {n}: {} index blobs → xs{n}_… (settled)",
                    inputs.len()
                )?;
            }
            None => writeln!(f, "    compact single epoch: nothing settled to compact")?,
        }
        match e.advance {
            Some(n) => writeln!(f, "    advance epoch to {n}")?,
            None => writeln!(f, "    advance epoch: not yet (duration/size thresholds)")?,
        }
        if self.mode == Mode::Full {
            match &e.range {
                Some((a, b, inputs)) => writeln!(
                    f,
                    "    range checkpoint xr{a}_{b}: {} index blobs",
                    inputs.len()
                )?,
                None => writeln!(f, "    range checkpoint: not due")?,
            }
            writeln!(f, "    delete markers: {} blobs", e.cleanup_markers.len())?;
            list_some(f, &ids(&e.cleanup_markers))?;
            writeln!(
                f,
                "    delete superseded index blobs: {} (compacted, older than the cleanup margin)",
                e.delete_superseded.len()
            )?;
            list_some(f, &ids(&e.delete_superseded))?;
            writeln!(f, "  cleanup logs: {} blobs", self.logs.len())?;
        }
        Ok(())
    }
}
