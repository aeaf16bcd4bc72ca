//! Maintenance (`DIRECTION=maintenance`, MOVER-CONTRACT §7): open the existing repository
//! (never create one), take maintenance ownership for the configured owner
//! (`maintenance@volsync` unless overridden), run quick then full maintenance with kopia's
//! safety rules, print the summary lines.
//!
//! The ownership rule is VolSync's, not kopia's: the KopiaMaintenance job is the repository's
//! one maintainer, so it claims ownership from whoever held it (kopia would refuse to run).

use arkiv_engine::Repository;
use arkiv_engine::maintenance::schedule::load_params;
use arkiv_engine::maintenance::{
    MaintenanceOptions, MaintenanceReport, run_maintenance, set_owner,
};

use super::config::{ClientId, MoverConfig};
use super::metrics::RunMetrics;
use super::{Failure, Stop, connection, storage};
use crate::cancel::CancellationToken;
use crate::connect::Access;

/// The maintenance flow.
pub(super) async fn run(
    cfg: &MoverConfig,
    stop: &CancellationToken,
    metrics: &mut RunMetrics,
) -> Result<(), Failure> {
    let conn = connection(cfg, Access::ReadWrite);
    let loc = conn.describe();
    let Some(storage) = storage(cfg, &conn, stop).await? else {
        return Err(Failure::new(format!(
            "no repository at {loc} (maintenance never creates one)"
        )));
    };
    let repo = Repository::open(storage, cfg.password.expose(), conn.open_options())
        .await
        .map_err(|e| Failure::engine(&format!("opening the repository at {loc}"), &e))?;
    conn.io.note_opened(&repo);
    let owner = &cfg.maintenance_owner;
    println!("INFO: running maintenance as {owner}");
    let report = stop
        .interruptible(async { Ok(maintain_as(&repo, owner).await) })
        .await?
        .map_err(|e| Failure::engine("maintenance", &e))?;
    for line in report.summary_lines() {
        println!("INFO: {line}");
    }
    remove_stale_temporaries(cfg, repo.clock().now())?;
    metrics.set(
        "arkiv_maintenance_reclaimed_bytes",
        report.bytes_reclaimed as f64,
    );
    if !cfg.features.metrics.is_off() {
        repository_size(&repo, metrics, stop).await;
    }
    Ok(())
}

/// A filesystem repository's `*.tmp.*` files of writers killed between write and rename,
/// older than kopia's full safety margin (the one this flow runs with), are removed.
fn remove_stale_temporaries(
    cfg: &MoverConfig,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Failure> {
    if let super::config::RepositoryTarget::Filesystem { path } = &cfg.repository {
        let margin = std::time::Duration::from_secs(
            u64::try_from(arkiv_engine::maintenance::SAFETY_FULL.blob_delete_min_age).unwrap_or(0),
        );
        let n = arkiv_engine::blob::filesystem::remove_stale_temporaries(path, margin, now)
            .map_err(|e| Failure::engine("removing stale temporary files", &e))?;
        if n > 0 {
            println!("INFO: removed {n} stale temporary file(s) left by interrupted writers");
        }
    }
    Ok(())
}

/// Claims ownership for `owner` if someone else holds it, runs quick maintenance (its failure
/// is tolerated: full maintenance repeats its work), then full maintenance. Returns the full
/// run's report.
async fn maintain_as(
    repo: &Repository,
    owner: &ClientId,
) -> arkiv_engine::Result<MaintenanceReport> {
    let name = owner.to_string();
    let (current, _) = load_params(repo).await?;
    if current.as_ref().is_none_or(|p| p.owner != name) {
        set_owner(repo, &name, &owner.username, &owner.hostname).await?;
    }
    let mut repo = repo.clone();
    repo.refresh().await?;
    let mut opts = MaintenanceOptions::new(&owner.username, &owner.hostname);
    let _quick = run_maintenance(&repo, &opts).await;
    opts.full = true;
    run_maintenance(&repo, &opts).await
}

/// `arkiv_repository_size_bytes` / `arkiv_repository_blobs` from one listing of every blob
/// (a listing that fails is a warning: the metrics are optional, the maintenance is done).
pub(super) async fn repository_size(
    repo: &Repository,
    metrics: &mut RunMetrics,
    stop: &CancellationToken,
) {
    let listed = stop
        .interruptible(async { Ok(repo.storage().list("").await) })
        .await;
    match listed {
        Ok(Ok(blobs)) => {
            let size: u64 = blobs.iter().map(|b| b.length).sum();
            metrics.set("arkiv_repository_size_bytes", size as f64);
            metrics.set("arkiv_repository_blobs", blobs.len() as f64);
        }
        Ok(Err(e)) => println!("WARN: listing the repository for its size failed: {e}"),
        Err(_) => {}
    }
}
