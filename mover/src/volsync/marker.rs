//! The source marker: a small unencrypted object per `user@host` that says "this source has
//! snapshots", for admission policies that decide between restore and a fresh volume with
//! one anonymous or credentialed HTTP `HEAD` (200: restore, 404: start fresh).
//!
//! Where: `arkiv-sources/<user>@<host>` under the repository — the S3 object
//! `<prefix>arkiv-sources/<user>@<host>`, or the plain file
//! `<repository dir>/arkiv-sources/<user>@<host>`. Characters other than `A-Z a-z 0-9 . _ -`
//! in the user or host name are written as `%XX` (UTF-8 bytes), so the key is always one
//! path segment after `arkiv-sources/`.
//!
//! What: a JSON object with a fixed header (`{"kind":"arkiv-source-marker","version":1}`)
//! and only the fields the user opted into: `newestSnapshotTime` (start time of the newest
//! snapshot of `user@host`, any path) and `snapshotCount`. Never a path, a file name or
//! anything secret.
//!
//! Why it stays: kopia ignores it (its filesystem listing takes only `*.f` files for blobs;
//! on S3 `kopia blob list` shows it, but no kopia command deletes outside its own prefixes:
//! blob GC deletes only `p`, `q` and `s` blobs, `repo/maintenance/blob_gc.go`), and arkiv's
//! maintenance lists the same prefixes. It is written after every successful backup, so a
//! marker whose source lost all snapshots is refreshed with a count of 0 by the next backup
//! — but a backup never runs for a deleted application, so a stale marker is possible: the
//! count and time fields let a policy check more than existence.

use arkiv_engine::Repository;
use arkiv_engine::repo::Snapshot;
use arkiv_format::gojson;
use bytes::Bytes;

use super::config::{Identity, MoverConfig};
use super::features::MarkerFields;
use super::{Failure, connection, snapshots};
use crate::cancel::CancellationToken;
use crate::connect::Access;

/// The folder of the markers, relative to the repository root.
pub const PREFIX: &str = "arkiv-sources/";

/// The marker's key relative to the repository root: `arkiv-sources/<user>@<host>`.
pub fn key(user: &str, host: &str) -> String {
    format!("{PREFIX}{}@{}", escape(user), escape(host))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // `.` and `..` alone would be path components with a meaning.
    if out.chars().all(|c| c == '.') {
        out = out.replace('.', "%2E");
    }
    out
}

/// The marker's body for `user@host`, from all the repository's snapshots.
pub fn body(fields: MarkerFields, snapshots: &[Snapshot], user: &str, host: &str) -> Bytes {
    let mine: Vec<&Snapshot> = snapshots
        .iter()
        .filter(|s| s.manifest.source.user_name == user && s.manifest.source.host == host)
        .collect();
    let mut doc = serde_json::Map::new();
    doc.insert("kind".into(), "arkiv-source-marker".into());
    doc.insert("version".into(), 1.into());
    if fields.newest_snapshot_time {
        let newest = mine.iter().map(|s| s.manifest.start_time).max();
        doc.insert(
            "newestSnapshotTime".into(),
            newest.map_or(serde_json::Value::Null, |t| gojson::time::format(&t).into()),
        );
    }
    if fields.snapshot_count {
        doc.insert("snapshotCount".into(), mine.len().into());
    }
    let mut v = serde_json::to_vec(&serde_json::Value::Object(doc)).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// Writes (or refreshes) the marker of `identity`'s `user@host` after a successful backup. A
/// failure fails the run: the snapshot is saved, but a policy reading the marker would send
/// a new volume of this application to a fresh start.
pub(super) async fn refresh(
    cfg: &MoverConfig,
    repo: &Repository,
    identity: &Identity,
    fields: MarkerFields,
    stop: &CancellationToken,
) -> Result<(), Failure> {
    // The snapshot just written is not in the view the repository was opened with.
    let mut repo = repo.clone();
    repo.refresh()
        .await
        .map_err(|e| Failure::engine("reading the repository for the source marker", &e))?;
    let all = snapshots(&repo, stop).await?;
    let key = key(&identity.username, &identity.hostname);
    let conn = connection(cfg, Access::ReadWrite);
    conn.put_outside_blobs(
        &key,
        body(fields, &all, &identity.username, &identity.hostname),
    )
    .await
    .map_err(|e| {
        Failure::engine(
            &format!("writing the source marker {key} (the snapshot is saved)"),
            &e,
        )
    })?;
    println!("INFO: source marker {key} written at {}", conn.describe());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_safe_segment() {
        assert_eq!(key("app", "media"), "arkiv-sources/app@media");
        assert_eq!(key("my.app_1-x", "ns"), "arkiv-sources/my.app_1-x@ns");
        assert_eq!(key("a/b", "h:1"), "arkiv-sources/a%2Fb@h%3A1");
        assert_eq!(key("..", "é"), "arkiv-sources/%2E%2E@%C3%A9");
    }

    #[test]
    fn body_holds_only_what_was_asked_for() {
        let b = body(MarkerFields::default(), &[], "app", "media");
        assert_eq!(
            &b[..],
            b"{\"kind\":\"arkiv-source-marker\",\"version\":1}\n"
        );
        let all = MarkerFields {
            newest_snapshot_time: true,
            snapshot_count: true,
        };
        let v: serde_json::Value = serde_json::from_slice(&body(all, &[], "app", "media")).unwrap();
        assert_eq!(v["snapshotCount"], 0);
        assert!(v["newestSnapshotTime"].is_null());
    }
}
