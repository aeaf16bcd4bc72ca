//! Ownership (the `type=maintenance` parameters manifest) and the `kopia.maintenance`
//! schedule blob (FORMAT.md §14.1–14.2).
//!
//! Kopia facts (v0.23.1 `repo/maintenance/maintenance_run.go`, `maintenance_params.go`):
//! * only the client whose `user@host` equals the params' `owner` runs maintenance; `--force`
//!   overrides (error text: "maintenance must be run by designated user: `<owner>`");
//! * setting params replaces every manifest with labels `{type: maintenance}`;
//! * before running, the schedule is written with the next due times (so a crash does not make
//!   the next client run again at once); the storage timestamp of `kopia.maintenance` becomes
//!   `MaintenanceStartTime`, and maintenance refuses to run if it differs from the local clock
//!   by more than 5 minutes;
//! * each task's `RunInfo` is prepended to its history (≤ 50) and the blob rewritten.

use std::collections::BTreeMap;

use arkiv_format::ids::{BlobId, ManifestId};
use arkiv_format::maintenance::{
    self as fm, MaintenanceParams, PARAMS_MANIFEST_TYPE, SCHEDULE_BLOB_ID, Schedule,
};
use arkiv_format::repo_format;
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};

use crate::content::writer::ContentWriter;
use crate::manifest::ManifestBatch;
use crate::repo::Repository;
use crate::{Error, ErrorKind, Result};

/// Largest accepted difference between the local clock and the storage clock.
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

fn schedule_key(repo: &Repository) -> Result<[u8; 32]> {
    let f = repo.format();
    repo_format::maintenance_schedule_key(&f.config, &f.format_key, &f.blob.unique_id)
        .map_err(|e| Error::format("maintenance schedule key", e))
}

/// Reads `kopia.maintenance` (a missing blob is the empty schedule).
pub async fn read_schedule(repo: &Repository) -> Result<Schedule> {
    let id = BlobId::from(SCHEDULE_BLOB_ID);
    match repo.storage().get(&id, None).await {
        Ok(bytes) => fm::decrypt_schedule(&schedule_key(repo)?, &bytes)
            .map_err(|e| Error::format(SCHEDULE_BLOB_ID, e)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Schedule::default()),
        Err(e) => Err(e),
    }
}

/// Encrypts and writes `kopia.maintenance`.
pub async fn write_schedule(repo: &Repository, schedule: &Schedule) -> Result<()> {
    let bytes = fm::encrypt_schedule(&schedule_key(repo)?, schedule, rand::random())
        .map_err(|e| Error::format(SCHEDULE_BLOB_ID, e))?;
    repo.storage()
        .put(&BlobId::from(SCHEDULE_BLOB_ID), Bytes::from(bytes))
        .await
}

/// The current maintenance parameters and the IDs of every params manifest (newest wins).
pub async fn load_params(
    repo: &Repository,
) -> Result<(Option<MaintenanceParams>, Vec<(ManifestId, DateTime<Utc>)>)> {
    let mut best: Option<(DateTime<Utc>, MaintenanceParams)> = None;
    let mut ids = Vec::new();
    for (id, entry) in repo.manifests().await? {
        let is_params = entry
            .labels
            .as_ref()
            .and_then(|l| l.get("type"))
            .is_some_and(|t| t == PARAMS_MANIFEST_TYPE);
        let Some(data) = entry.data.as_ref().filter(|_| is_params) else {
            continue;
        };
        let p = MaintenanceParams::from_json(data.get().as_bytes())
            .map_err(|e| Error::format(format!("maintenance parameters {id}"), e))?;
        ids.push((id, entry.modified));
        if best.as_ref().is_none_or(|(t, _)| entry.modified > *t) {
            best = Some((entry.modified, p));
        }
    }
    Ok((best.map(|(_, p)| p), ids))
}

/// Replaces the parameters manifest(s) with `params` (kopia `SetParams`), writing as
/// `username@hostname`.
pub async fn store_params(
    repo: &Repository,
    params: &MaintenanceParams,
    username: &str,
    hostname: &str,
) -> Result<()> {
    let (_, old) = load_params(repo).await?;
    let json = params
        .to_json()
        .map_err(|e| Error::format("maintenance parameters", e))?;
    let now = repo.clock().now();
    let cw = ContentWriter::new(
        repo.clone(),
        tokio::runtime::Handle::current(),
        username,
        hostname,
    )?;
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut batch = ManifestBatch::default();
        let mut labels = BTreeMap::new();
        labels.insert("type".to_owned(), PARAMS_MANIFEST_TYPE.to_owned());
        batch.put(labels, &json, now)?;
        for (id, modified) in old {
            // Strictly later than the entry it deletes: on a tie the merge keeps whichever
            // entry it saw first, which could resurrect the old parameters (a clock that
            // did not move, as in tests, or a coarse one).
            batch.delete(id, crate::policy::tombstone_time(now, modified));
        }
        batch.commit(&cw)?;
        cw.flush()?;
        Ok(())
    })
    .await
    .map_err(|e| Error::Cancelled(format!("maintenance params task failed: {e}")))?
}

/// Proof that the ownership check passed: only [`MaintenanceLease::acquire`] mints one, and
/// every destructive maintenance step takes it.
#[derive(Debug, Clone)]
pub struct MaintenanceLease {
    acting_as: String,
    params: MaintenanceParams,
    forced: bool,
}

impl MaintenanceLease {
    /// Checks that `user_at_host` owns maintenance (or `force`, for disaster recovery).
    ///
    /// A repository without parameters is claimed for `user_at_host`, as kopia's first
    /// client does. Refusal is a `PermissionDenied` error naming the owner.
    pub async fn acquire(
        repo: &Repository,
        username: &str,
        hostname: &str,
        force: bool,
    ) -> Result<MaintenanceLease> {
        let me = format!("{username}@{hostname}");
        let params = match load_params(repo).await?.0 {
            Some(p) => p,
            None => {
                let p = MaintenanceParams::default_for_owner(&me);
                store_params(repo, &p, username, hostname).await?;
                p
            }
        };
        if !force && !params.is_owned_by(&me) {
            return Err(Error::NotMaintenanceOwner {
                owner: params.owner.clone(),
                me,
            });
        }
        Ok(MaintenanceLease {
            forced: !params.is_owned_by(&me),
            acting_as: me,
            params,
        })
    }

    /// The identity maintenance runs as.
    pub fn acting_as(&self) -> &str {
        &self.acting_as
    }

    /// The parameters read during the check.
    pub fn params(&self) -> &MaintenanceParams {
        &self.params
    }

    /// True when the ownership check was overridden.
    pub fn forced(&self) -> bool {
        self.forced
    }
}

/// Successful runs' end times of `tasks`, latest.
pub fn max_success_end(schedule: &Schedule, tasks: &[&str]) -> Option<DateTime<Utc>> {
    tasks
        .iter()
        .flat_map(|t| schedule.runs_of(t))
        .filter(|r| r.success)
        .map(|r| r.end)
        .max()
}
