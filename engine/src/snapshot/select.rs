//! Which snapshot a command means: the one snapshot query of every binary.
//!
//! `arkiv restore latest`, `arkiv snapshot create` (the previous snapshot it builds on),
//! `arkiv-restore` and the VolSync mover all pick through [`select`] and [`eligible`], so
//! they agree on the same repository.
//!
//! Rules:
//! * A snapshot is **eligible** for a source when it belongs to that source, is complete
//!   (no `incomplete` reason) and has a root entry (kopia writes a null one into broken
//!   manifests; such a snapshot has nothing to restore or build on).
//! * Eligible snapshots are ordered newest first by start time; snapshots that started at the
//!   same instant are ordered by manifest ID, the greater ID counting as newer. The order is
//!   total, so every binary picks the same snapshot whatever order storage listed them in.
//! * A query filters by `as_of` (start time at or before that instant), then skips
//!   `previous` snapshots: previous 0 without `as_of` is the latest.
//! * Without a source, the repository must hold snapshots of exactly one source (counting
//!   every manifest, complete or not).

use std::cmp::Ordering;

use arkiv_format::snapshot::{DirEntry, SourceInfo};
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::repo::Snapshot;

/// What to pick among a source's eligible snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotQuery {
    /// The source; `None`: the repository's only source.
    pub source: Option<SourceInfo>,
    /// Skip this many of the newest eligible snapshots (0 = the newest).
    pub previous: u32,
    /// Only snapshots whose start time is at or before this instant.
    pub as_of: Option<DateTime<Utc>>,
}

impl SnapshotQuery {
    /// The newest eligible snapshot of `source`.
    pub fn latest(source: Option<SourceInfo>) -> SnapshotQuery {
        SnapshotQuery {
            source,
            ..SnapshotQuery::default()
        }
    }
}

/// Why a query picked nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// No source given and the repository holds no snapshot at all.
    #[error("the repository has no snapshots")]
    NoSnapshots,
    /// No source given and the repository holds several.
    #[error(
        "the repository has {} sources; pick one with --source: {}",
        .0.len(),
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    AmbiguousSource(Vec<SourceInfo>),
    /// The source has no snapshot matching the query.
    #[error("no eligible snapshot of {of} ({eligible} complete snapshot(s){query})")]
    NoneEligible {
        /// The source searched.
        of: SourceInfo,
        /// How many eligible snapshots it has before `previous` and `as_of`.
        eligible: usize,
        /// The query's `previous` and `as_of`, for the message (`; previous=1, as of …`).
        query: String,
    },
}

impl From<SelectError> for Error {
    fn from(e: SelectError) -> Error {
        match e {
            SelectError::AmbiguousSource(_) => Error::Config(e.to_string()),
            SelectError::NoSnapshots | SelectError::NoneEligible { .. } => {
                Error::NotFound(e.to_string())
            }
        }
    }
}

/// The newest-first order of [`eligible`]: start time, then manifest ID.
fn newest_first(a: &Snapshot, b: &Snapshot) -> Ordering {
    b.manifest
        .start_time
        .cmp(&a.manifest.start_time)
        .then_with(|| b.id.cmp(&a.id))
}

/// True when `s` is a complete snapshot of `source` with a root entry.
pub fn is_eligible(s: &Snapshot, source: &SourceInfo) -> bool {
    &s.manifest.source == source
        && s.manifest.incomplete.is_empty()
        && s.manifest.root_entry.is_some()
}

/// The eligible snapshots of `source`, newest first (see the module rules).
pub fn eligible<'a>(snapshots: &'a [Snapshot], source: &SourceInfo) -> Vec<&'a Snapshot> {
    let mut out: Vec<&Snapshot> = snapshots
        .iter()
        .filter(|s| is_eligible(s, source))
        .collect();
    out.sort_by(|a, b| newest_first(a, b));
    out
}

/// The newest eligible snapshot of `source` (what an incremental backup builds on).
pub fn latest<'a>(snapshots: &'a [Snapshot], source: &SourceInfo) -> Option<&'a Snapshot> {
    snapshots
        .iter()
        .filter(|s| is_eligible(s, source))
        .min_by(|a, b| newest_first(a, b))
}

/// The distinct sources of all snapshots, sorted by their `user@host:path` form.
pub fn sources(snapshots: &[Snapshot]) -> Vec<SourceInfo> {
    let mut out: Vec<SourceInfo> = snapshots
        .iter()
        .map(|s| s.manifest.source.clone())
        .collect();
    out.sort_by_key(ToString::to_string);
    out.dedup();
    out
}

/// The source a query means: its own, else the repository's only one.
pub fn resolve_source(
    snapshots: &[Snapshot],
    source: Option<&SourceInfo>,
) -> std::result::Result<SourceInfo, SelectError> {
    if let Some(s) = source {
        return Ok(s.clone());
    }
    let mut all = sources(snapshots);
    match all.len() {
        0 => Err(SelectError::NoSnapshots),
        1 => Ok(all.remove(0)),
        _ => Err(SelectError::AmbiguousSource(all)),
    }
}

/// Picks the snapshot `query` means (see the module rules).
pub fn select<'a>(
    snapshots: &'a [Snapshot],
    query: &SnapshotQuery,
) -> std::result::Result<&'a Snapshot, SelectError> {
    let source = resolve_source(snapshots, query.source.as_ref())?;
    let candidates = eligible(snapshots, &source);
    let skip = usize::try_from(query.previous).unwrap_or(usize::MAX);
    let picked = candidates
        .iter()
        .filter(|s| query.as_of.is_none_or(|t| s.manifest.start_time <= t))
        .nth(skip)
        .copied();
    picked.ok_or_else(|| SelectError::NoneEligible {
        eligible: candidates.len(),
        query: describe_query(query),
        of: source,
    })
}

/// `; previous=N, as of TIME` for messages (empty for a plain `latest`).
fn describe_query(q: &SnapshotQuery) -> String {
    let mut parts = Vec::new();
    if q.previous > 0 {
        parts.push(format!("previous={}", q.previous));
    }
    if let Some(t) = q.as_of {
        parts.push(format!("as of {}", t.to_rfc3339()));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; {}", parts.join(", "))
    }
}

impl Snapshot {
    /// The snapshot's root entry; a manifest without one is corrupt.
    pub fn root(&self) -> Result<&DirEntry> {
        self.manifest
            .root_entry
            .as_ref()
            .ok_or_else(|| Error::Corrupt(format!("snapshot {} has no root entry", self.id)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::collections::BTreeMap;

    use arkiv_format::ids::ManifestId;
    use arkiv_format::snapshot::SnapshotManifest;
    use chrono::TimeZone;

    use super::*;

    fn src(p: &str) -> SourceInfo {
        SourceInfo {
            host: "h".into(),
            user_name: "u".into(),
            path: p.into(),
        }
    }

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, h, 0, 0).unwrap()
    }

    /// A snapshot `id` of `/a` (or `path`) started at hour `h`.
    fn snap(id: &str, path: &str, h: u32, root: bool, incomplete: &str) -> Snapshot {
        Snapshot {
            id: ManifestId::new(id),
            manifest: SnapshotManifest {
                source: src(path),
                start_time: t(h),
                end_time: t(h),
                incomplete: incomplete.into(),
                root_entry: root.then(DirEntry::default),
                ..SnapshotManifest::default()
            },
            labels: BTreeMap::new(),
        }
    }

    fn ids(v: &[&Snapshot]) -> Vec<String> {
        v.iter().map(|s| s.id.to_string()).collect()
    }

    fn repo() -> Vec<Snapshot> {
        vec![
            snap("aa01", "/a", 1, true, ""),
            snap("aa03", "/a", 3, true, ""),
            snap("aa02", "/a", 3, true, ""), // tie with aa03 at 03:00: aa03 is newer
            snap("aa04", "/a", 4, false, ""), // no root entry: never eligible
            snap("aa05", "/a", 5, true, "checkpoint"), // incomplete: never eligible
            snap("bb09", "/b", 9, true, ""),
        ]
    }

    #[test]
    fn eligible_is_newest_first_with_ties_by_id() {
        let r = repo();
        assert_eq!(ids(&eligible(&r, &src("/a"))), ["aa03", "aa02", "aa01"]);
        let mut reversed = repo();
        reversed.reverse();
        assert_eq!(
            ids(&eligible(&reversed, &src("/a"))),
            ["aa03", "aa02", "aa01"]
        );
        assert_eq!(latest(&r, &src("/a")).unwrap().id.to_string(), "aa03");
        assert_eq!(
            latest(&reversed, &src("/a")).unwrap().id.to_string(),
            "aa03"
        );
        assert!(latest(&r, &src("/none")).is_none());
    }

    #[test]
    fn query_table() {
        let r = repo();
        let a = Some(src("/a"));
        let cases: &[(SnapshotQuery, Option<&str>)] = &[
            (SnapshotQuery::latest(a.clone()), Some("aa03")),
            (
                SnapshotQuery {
                    previous: 1,
                    ..SnapshotQuery::latest(a.clone())
                },
                Some("aa02"),
            ),
            (
                SnapshotQuery {
                    previous: 2,
                    ..SnapshotQuery::latest(a.clone())
                },
                Some("aa01"),
            ),
            (
                SnapshotQuery {
                    previous: 3,
                    ..SnapshotQuery::latest(a.clone())
                },
                None,
            ),
            (
                SnapshotQuery {
                    as_of: Some(t(2)),
                    ..SnapshotQuery::latest(a.clone())
                },
                Some("aa01"),
            ),
            (
                SnapshotQuery {
                    as_of: Some(t(3)),
                    previous: 1,
                    ..SnapshotQuery::latest(a.clone())
                },
                Some("aa02"),
            ),
            (
                SnapshotQuery {
                    as_of: Some(t(0)),
                    ..SnapshotQuery::latest(a.clone())
                },
                None,
            ),
            (SnapshotQuery::latest(Some(src("/b"))), Some("bb09")),
        ];
        for (q, want) in cases {
            let got = select(&r, q).ok().map(|s| s.id.to_string());
            assert_eq!(got.as_deref(), *want, "{q:?}");
        }
    }

    #[test]
    fn without_a_source_the_repository_must_hold_one() {
        let r = repo();
        let e = select(&r, &SnapshotQuery::latest(None)).unwrap_err();
        assert!(matches!(&e, SelectError::AmbiguousSource(s) if s.len() == 2));
        assert_eq!(
            e.to_string(),
            "the repository has 2 sources; pick one with --source: u@h:/a, u@h:/b"
        );
        assert!(matches!(Error::from(e).kind(), crate::ErrorKind::Config));

        let only_a: Vec<Snapshot> = repo()
            .into_iter()
            .filter(|s| s.manifest.source.path == "/a")
            .collect();
        let s = select(&only_a, &SnapshotQuery::latest(None)).unwrap();
        assert_eq!(s.id.to_string(), "aa03");

        let e = select(&[], &SnapshotQuery::latest(None)).unwrap_err();
        assert_eq!(e, SelectError::NoSnapshots);
        assert!(matches!(Error::from(e).kind(), crate::ErrorKind::NotFound));
    }

    #[test]
    fn none_eligible_names_the_source_and_query() {
        let r = repo();
        let q = SnapshotQuery {
            previous: 5,
            ..SnapshotQuery::latest(Some(src("/a")))
        };
        let e = select(&r, &q).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no eligible snapshot of u@h:/a (3 complete snapshot(s); previous=5)"
        );
        // a source whose only snapshot has no root entry has nothing eligible
        let rootless = vec![snap("cc01", "/c", 1, false, "")];
        let e = select(&rootless, &SnapshotQuery::latest(None)).unwrap_err();
        assert!(matches!(e, SelectError::NoneEligible { eligible: 0, .. }));
    }

    #[test]
    fn root_of_a_rootless_manifest_is_corrupt() {
        let s = snap("dd01", "/d", 1, false, "");
        assert!(matches!(
            s.root().unwrap_err().kind(),
            crate::ErrorKind::Corrupt
        ));
        assert!(snap("dd02", "/d", 1, true, "").root().is_ok());
    }
}
