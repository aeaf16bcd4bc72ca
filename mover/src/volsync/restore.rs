//! Destination (restore): open the repository read-only, pick the snapshot
//! (`KOPIA_PREVIOUS`, `KOPIA_RESTORE_AS_OF`) with the one engine selector, restore it into
//! `DATA_DIR`, flush. With nothing to restore, print the discovery block the controller reads.

use std::path::Path;

use arkiv_engine::Repository;
use arkiv_engine::repo::Snapshot;
use arkiv_engine::snapshot::restore::{RestoreOptions, restore_entry};
use arkiv_engine::snapshot::select;
use arkiv_format::gojson;
use arkiv_format::snapshot::SourceInfo;

use super::additional_args::RestoreArgs;
use super::config::{MoverConfig, RestoreConfig};
use super::{
    Failure, LOST_FOUND, Produced, Stop, begin, connection, probe, snapshots, storage,
    unknown_format,
};
use crate::cancel::CancellationToken;
use crate::connect::{Access, Probe};
use crate::progress::{self, Style};
use crate::render::text;
use crate::render::volsync::{self as report, DiscoveredSnapshot};

/// The restore flow.
pub(super) async fn run(
    cfg: &MoverConfig,
    r: &RestoreConfig,
    stop: &CancellationToken,
    produced: &mut Produced,
) -> Result<(), Failure> {
    let (data, source) = begin(cfg, &r.data_dir, &r.identity)?;
    let extra = RestoreArgs::parse(&r.additional_args);
    for w in &extra.warnings {
        println!("WARN: {w}");
    }
    produced.restored = Some(false);
    if cfg.policy_files.global_policy_file.is_some() {
        // the script's ensure_connected writes it in every mode; a restore connects read-only
        println!(
            "INFO: KOPIA_GLOBAL_POLICY_FILE is applied by backups; a restore writes nothing \
             to the repository"
        );
    }
    let repo = connect_read_only(cfg, stop).await?;
    let snapshots = match &repo {
        Some(repo) => {
            println!(
                "{}",
                report::repository_connected(&cfg.repository.describe())
            );
            snapshots(repo, stop).await?
        }
        None => Vec::new(),
    };
    let picked = select::select(&snapshots, &r.selection.query(source.clone())).ok();
    let (Some(repo), Some(snap)) = (repo.as_ref(), picked) else {
        return nothing_to_restore(cfg, r, &extra, &source, &snapshots, produced);
    };
    println!("{}", report::selected_snapshot(&snap.id.to_string()));
    if cfg.features.restore_dry_run {
        return dry_run(repo, snap, data, r).await;
    }
    println!(
        "INFO: restoring snapshot of {source} started {} into {}{}",
        gojson::time::format(&snap.manifest.start_time),
        data.display(),
        if r.enable_file_deletion {
            " (removing files that are not in the snapshot)"
        } else {
            ""
        }
    );
    let root = snap
        .root()
        .map_err(|e| Failure::engine("reading the snapshot", &e))?;
    let mut opts = RestoreOptions::default();
    opts.delete_extra = extra.delete_extra.unwrap_or(r.enable_file_deletion);
    opts.keep_in_root = vec![LOST_FOUND.to_owned()];
    // The script always passes --ignore-permission-errors.
    opts.ignore_permission_errors = extra.ignore_permission_errors.unwrap_or(true);
    if extra.skip_owners == Some(true) {
        opts.restore_owners = false;
    }
    if let Some(p) = extra.parallel {
        opts.parallel_files = p;
    }
    opts.direct_io = cfg.direct_io;
    let ticker = progress::start(Style::VolSync, progress::Source::Running("restore"));
    let stats = stop
        .interruptible(async {
            restore_entry(repo, root, data, opts)
                .await
                .map_err(|e| Failure::engine(&format!("restoring snapshot {}", snap.id), &e))
        })
        .await;
    drop(ticker);
    let stats = stats?;
    produced.snapshot_id = Some(snap.id.to_string());
    produced.restored = Some(true);
    produced.files = stats.files;
    produced.bytes = stats.bytes;
    println!("INFO: restored {}", text::restore_stats(&stats));
    sync_dir(data)?;
    println!("{}", report::RESTORE_COMPLETED);
    Ok(())
}

/// `restoreDryRun`: says what the restore would do, changes nothing in `data`.
async fn dry_run(
    repo: &Repository,
    snap: &Snapshot,
    data: &Path,
    r: &RestoreConfig,
) -> Result<(), Failure> {
    println!(
        "INFO: DRY RUN: would restore snapshot {} of {} started {} (selection: previous={}{}) \
         into {}",
        snap.id,
        snap.manifest.source,
        gojson::time::format(&snap.manifest.start_time),
        r.selection.previous,
        r.selection
            .restore_as_of
            .map(|t| format!(", as of {}", t.to_rfc3339()))
            .unwrap_or_default(),
        data.display()
    );
    let root = snap
        .root()
        .map_err(|e| Failure::engine("reading the snapshot", &e))?;
    let plan = super::dry_run::plan(repo, &root.object, data, r.enable_file_deletion).await?;
    for line in plan.lines(r.enable_file_deletion) {
        println!("INFO: {line}");
    }
    println!("INFO: DRY RUN: nothing was changed in {}", data.display());
    Ok(())
}

/// No eligible snapshot: say why (the full discovery block, then a recap sized for VolSync's
/// 1 KiB window), record `restored: false` and the reason, and succeed — the contract's
/// first-deploy case — unless the user chose fail-closed restores
/// (`KOPIA_MANUAL_CONFIG` `{"arkiv":{"failIfNoSnapshot":true}}`, the
/// `--arkiv-fail-if-no-snapshot` additional argument, or `ARKIV_FAIL_IF_NO_SNAPSHOT=true`).
fn nothing_to_restore(
    cfg: &MoverConfig,
    r: &RestoreConfig,
    extra: &RestoreArgs,
    source: &SourceInfo,
    snapshots: &[Snapshot],
    produced: &mut Produced,
) -> Result<(), Failure> {
    let eligible = select::eligible(snapshots, source).len();
    let sel = &r.selection;
    let mut words = Vec::new();
    if sel.previous > 0 {
        words.push(format!("previous={}", sel.previous));
    }
    if let Some(t) = sel.restore_as_of {
        words.push(format!("restoreAsOf={}", t.to_rfc3339()));
    }
    let selection = (!words.is_empty()).then(|| words.join(" and "));
    println!(
        "INFO: {eligible} snapshot(s) of {source}; selection: {}",
        selection.as_deref().unwrap_or("the newest")
    );
    let all = discovered(snapshots);
    let discovery = r.discover_snapshots.then_some(all.as_slice());
    print!(
        "{}",
        report::no_snapshot_output(&source.to_string(), discovery)
    );
    let requested = source.to_string();
    let reason = report::no_snapshot_reason(&requested, selection.as_deref(), eligible, &all);
    if r.discover_snapshots {
        print!("{}", report::no_snapshot_recap(&all, &reason));
    } else {
        println!("{reason}");
    }
    let short = match (&selection, eligible, all.is_empty()) {
        (Some(sel), n, _) if n > 0 => {
            format!("no snapshot of {requested} matches {sel} ({n} snapshot(s) exist)")
        }
        (_, _, true) => format!("no snapshot of {requested}; the repository holds none"),
        _ => format!("no snapshot of {requested}; the repository holds other sources"),
    };
    produced.reason = Some(short);
    let why = if cfg.manual_config.fail_if_no_snapshot == Some(true) {
        Some("arkiv.failIfNoSnapshot")
    } else if extra.fail_if_no_snapshot == Some(true) {
        Some("--arkiv-fail-if-no-snapshot")
    } else if r.fail_if_no_snapshot {
        Some("ARKIV_FAIL_IF_NO_SNAPSHOT=true")
    } else {
        None
    };
    match why {
        Some(why) => Err(Failure::new(
            report::no_snapshot_error(&requested, why)
                .trim_start_matches("ERROR: ")
                .to_owned(),
        )),
        None => Ok(()),
    }
}

/// Opens the repository read-only. `Ok(None)`: there is no repository (nothing created).
async fn connect_read_only(
    cfg: &MoverConfig,
    stop: &CancellationToken,
) -> Result<Option<Repository>, Failure> {
    let conn = connection(cfg, Access::ReadOnly);
    let loc = conn.describe();
    let Some(storage) = storage(cfg, &conn, stop).await? else {
        println!("WARN: repository directory {loc} does not exist (nothing was created)");
        return Ok(None);
    };
    match probe(cfg, &conn, storage, stop).await? {
        Probe::Opened(repo) => Ok(Some(*repo)),
        Probe::Blank(_) | Probe::Missing => {
            println!("WARN: no repository at {loc} (nothing was created)");
            Ok(None)
        }
        Probe::Foreign => Err(unknown_format(&loc)),
    }
}

fn discovered(snapshots: &[Snapshot]) -> Vec<DiscoveredSnapshot> {
    snapshots
        .iter()
        .map(|s| DiscoveredSnapshot {
            id: s.id.to_string(),
            user_name: s.manifest.source.user_name.clone(),
            host_name: s.manifest.source.host.clone(),
            path: s.manifest.source.path.clone(),
            start_time: s.manifest.start_time,
            end_time: s.manifest.end_time,
        })
        .collect()
}

/// `sync -f DATA_DIR`: flush the whole filesystem holding the restored data.
fn sync_dir(dir: &Path) -> Result<(), Failure> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(dir)
        .map_err(|e| Failure::new(format!("cannot open {} to sync it: {e}", dir.display())))?;
    nix::unistd::syncfs(f.as_raw_fd())
        .map_err(|e| Failure::new(format!("syncing {} failed: {e}", dir.display())))
}
