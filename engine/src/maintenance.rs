//! Repository maintenance, quick and full, interoperable with kopia (FORMAT.md §9.3, §14).
//!
//! Protocol of one run ([`run_maintenance`]):
//! 1. ownership check → [`MaintenanceLease`] (refused unless `user@host` owns the params
//!    manifest, or `force`);
//! 2. the schedule blob `kopia.maintenance` gets the next due times; its storage timestamp is
//!    `MaintenanceStartTime`, which must be within 5 minutes of the local clock;
//! 3. indexes are refreshed; then, for **full** maintenance: snapshot GC → drop deleted
//!    contents (deletion watermark) → rewrite short packs → delete unreferenced blobs; for
//!    both modes: epoch maintenance (compact single epoch, advance; full: range checkpoint,
//!    cleanup markers, delete superseded `xn` blobs); full: cleanup logs.
//!    Each task's [`RunInfo`] is recorded in the schedule as kopia does.
//!
//! Deviations from kopia, all in the safe direction: the watermark is written before the
//! rewrite so the rewrite knows which deleted contents are gone; the rewrite copies live
//! contents only and leaves packs holding not-yet-dropped deleted contents alone (see
//! [`rewrite`]); a rewrite run is recorded only when it copied something, so an empty rewrite
//! does not postpone blob deletion.
//!
//! Every step is planned before it is applied ([`MaintenancePlan`], printable); a dry run plans
//! all steps against the current index with the GC decisions overlaid, and writes nothing.
//! Crash safety: every write is new blobs first (packs, then index, then watermark/markers),
//! deletions last, and deletions only remove what no index entry names — a process killed at
//! any point leaves a readable repository.
//!
//! Memory: index entries are streamed (k-way merge over the raw index bytes); GC holds the
//! reachable set as fixed-size `ContentId`s, pack usage one record per pack, and writer
//! sessions flush every [`FLUSH_EVERY`] entries. Compaction merges one epoch (or one range) in
//! memory, as kopia does.

use std::collections::HashSet;
use std::fmt;
use std::time::Instant;

use arkiv_format::ids::BlobId;
use arkiv_format::indexblob::epoch;
use arkiv_format::maintenance::{MaintenanceParams, RunInfo, SCHEDULE_BLOB_ID, Schedule, task};
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};

use crate::blob::BlobMetadata;
use crate::content::writer::ContentWriter;
use crate::repo::Repository;
use crate::{Error, Result};

pub mod compaction;
pub mod gc;
pub mod plan;
pub mod rewrite;
pub mod safety;
pub mod schedule;

pub use plan::{EpochPlan, MaintenancePlan, Mode, Step};
pub use safety::{SAFETY_FULL, SAFETY_NONE, SafetyParams};
pub use schedule::MaintenanceLease;

/// Index entries a maintenance session accumulates before it flushes an index blob.
pub const FLUSH_EVERY: usize = 100_000;

/// Knobs of one run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MaintenanceOptions {
    /// Full (true) or quick maintenance.
    pub full: bool,
    /// Safety margins.
    pub safety: SafetyParams,
    /// Plan only; write nothing.
    pub dry_run: bool,
    /// Run even if another identity owns maintenance (disaster recovery).
    pub force: bool,
    /// Acting user name.
    pub username: String,
    /// Acting host name.
    pub hostname: String,
}

impl MaintenanceOptions {
    /// Quick maintenance as `username@hostname` with full safety.
    pub fn new(username: &str, hostname: &str) -> Self {
        MaintenanceOptions {
            full: false,
            safety: SAFETY_FULL,
            dry_run: false,
            force: false,
            username: username.to_owned(),
            hostname: hostname.to_owned(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct MaintenanceReport {
    /// The plan (for a real run: what was applied).
    pub plan: MaintenancePlan,
    /// Nothing was written.
    pub dry_run: bool,
    /// The acting identity.
    pub acting_as: String,
    /// Contents marked deleted by GC.
    pub contents_marked_deleted: u64,
    /// Contents undeleted by GC.
    pub contents_undeleted: u64,
    /// Packs whose contents were rewritten.
    pub packs_rewritten: u64,
    /// Contents copied by the rewrite.
    pub contents_rewritten: u64,
    /// Pack and session blobs deleted.
    pub blobs_deleted: u64,
    /// Bytes of deleted blobs (packs, index blobs, logs).
    pub bytes_reclaimed: u64,
    /// Index blobs merged into compactions.
    pub index_blobs_compacted: u64,
    /// Index and marker blobs deleted by epoch cleanup.
    pub index_blobs_deleted: u64,
    /// New write epoch, if advanced.
    pub epoch_advanced: Option<u64>,
    /// Deletion watermark written.
    pub watermark: Option<DateTime<Utc>>,
    /// Wall time of the run.
    pub duration: std::time::Duration,
}

impl MaintenanceReport {
    fn new(plan: MaintenancePlan, dry_run: bool, acting_as: String) -> Self {
        MaintenanceReport {
            plan,
            dry_run,
            acting_as,
            contents_marked_deleted: 0,
            contents_undeleted: 0,
            packs_rewritten: 0,
            contents_rewritten: 0,
            blobs_deleted: 0,
            bytes_reclaimed: 0,
            index_blobs_compacted: 0,
            index_blobs_deleted: 0,
            epoch_advanced: None,
            watermark: None,
            duration: std::time::Duration::ZERO,
        }
    }

    /// Summary lines for the mover's exit block (MOVER-CONTRACT §6.7); the caller prefixes
    /// `INFO: `.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut v = vec![
            format!(
                "MAINTENANCE_STATUS: {} maintenance {} as {}",
                self.plan.mode,
                if self.dry_run {
                    "planned (dry run)"
                } else {
                    "completed"
                },
                self.acting_as
            ),
            format!("MAINTENANCE_DURATION: {}", self.duration.as_secs()),
        ];
        v.push(format!(
            "MAINTENANCE_CONTENTS: {} marked deleted, {} undeleted, {} rewritten from {} packs",
            self.contents_marked_deleted,
            self.contents_undeleted,
            self.contents_rewritten,
            self.packs_rewritten
        ));
        v.push(format!(
            "MAINTENANCE_BLOBS: {} deleted, {} bytes reclaimed",
            self.blobs_deleted, self.bytes_reclaimed
        ));
        v.push(format!(
            "MAINTENANCE_INDEX: {} index blobs compacted, {} deleted, epoch {}",
            self.index_blobs_compacted,
            self.index_blobs_deleted,
            match self.epoch_advanced {
                Some(e) => format!("advanced to {e}"),
                None => format!("{} (unchanged)", self.plan.epoch.write_epoch),
            }
        ));
        v
    }
}

impl fmt::Display for MaintenanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.plan)?;
        for l in self.summary_lines() {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

/// Records task runs in the schedule (rewritten after each task unless dry run).
struct Recorder {
    /// A handle for schedule writes (format and storage only; its index view is not used).
    repo: Repository,
    schedule: Schedule,
    dry_run: bool,
}

impl Recorder {
    async fn record(&mut self, task: &str, start: DateTime<Utc>) -> Result<()> {
        let end = self.repo.clock().now();
        self.schedule.report_run(
            task,
            RunInfo {
                start,
                end,
                success: true,
                error: String::new(),
                extra: Vec::new(),
            },
        );
        if !self.dry_run {
            schedule::write_schedule(&self.repo, &self.schedule).await?;
        }
        Ok(())
    }
}

/// kopia `findSafeDropTime`: from successful `snapshot-gc` runs (latest first), the first
/// earlier run whose end is more than `margin_between_snapshot_gc` before the latest run's
/// start gives `start − drop_content_from_index_extra_margin`. Needs two successful runs.
pub fn find_safe_drop_time(runs: &[RunInfo], safety: &SafetyParams) -> Option<DateTime<Utc>> {
    let mut ok: Vec<&RunInfo> = runs.iter().filter(|r| r.success).collect();
    if ok.len() <= 1 {
        return None;
    }
    ok.sort_by_key(|r| std::cmp::Reverse(r.start));
    let latest = ok.first()?.start;
    ok.iter()
        .skip(1)
        .find(|r| latest - r.end > TimeDelta::seconds(safety.margin_between_snapshot_gc))
        .map(|r| r.start - TimeDelta::seconds(safety.drop_content_from_index_extra_margin))
}

fn should_full_rewrite(s: &Schedule, safety: &SafetyParams) -> bool {
    let last_rewrite = schedule::max_success_end(s, &[task::REWRITE_CONTENTS_FULL]);
    let last_delete = schedule::max_success_end(
        s,
        &[
            task::DELETE_ORPHANED_BLOBS_FULL,
            task::DELETE_ORPHANED_BLOBS_QUICK,
        ],
    );
    match last_rewrite {
        None => true,
        Some(_) if safety.min_rewrite_to_orphan_deletion_delay == 0 => true,
        Some(r) => last_delete.is_some_and(|d| d >= r),
    }
}

fn next_blob_delete_time(s: &Schedule, safety: &SafetyParams) -> Option<DateTime<Utc>> {
    schedule::max_success_end(
        s,
        &[task::REWRITE_CONTENTS_FULL, task::REWRITE_CONTENTS_QUICK],
    )
    .map(|t| t + TimeDelta::seconds(safety.min_rewrite_to_orphan_deletion_delay))
}

async fn list_many(repo: &Repository, prefixes: &[&str]) -> Result<Vec<BlobMetadata>> {
    let mut out = Vec::new();
    for p in prefixes {
        out.extend(repo.storage().list(p).await?);
    }
    Ok(out)
}

async fn delete_blobs(repo: &Repository, blobs: &[BlobId]) -> Result<()> {
    for b in blobs {
        repo.storage().delete(b).await?;
    }
    Ok(())
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Cancelled(format!("maintenance task failed: {e}"))
}

/// Runs quick or full maintenance (or plans it, with `dry_run`).
pub async fn run_maintenance(
    repo: &Repository,
    opts: &MaintenanceOptions,
) -> Result<MaintenanceReport> {
    let started = Instant::now();
    // Ownership is decided on the current manifests, not on the caller's (maybe stale) view.
    let mut fresh = repo.clone();
    fresh.refresh().await?;
    let repo = &fresh;
    let lease = if opts.dry_run {
        // A dry run never claims ownership, but still reports a refusal.
        let me = format!("{}@{}", opts.username, opts.hostname);
        match schedule::load_params(repo).await?.0 {
            Some(p) if !opts.force && !p.is_owned_by(&me) => {
                return Err(Error::NotMaintenanceOwner { owner: p.owner, me });
            }
            _ => None,
        }
    } else {
        Some(MaintenanceLease::acquire(repo, &opts.username, &opts.hostname, opts.force).await?)
    };
    let mode = if opts.full { Mode::Full } else { Mode::Quick };
    let mut repo = repo.clone();
    let clock = repo.clock().clone();
    let mut sched = schedule::read_schedule(&repo).await?;
    let start = match &lease {
        None => clock.now(),
        Some(lease) => begin_run(&repo, &mut sched, lease.params(), mode).await?,
    };
    repo.refresh().await?;
    let acting_as = format!("{}@{}", opts.username, opts.hostname);
    let plan = MaintenancePlan {
        mode,
        safety: opts.safety,
        start,
        gc: Step::default(),
        drop_deleted: Step::default(),
        rewrite: Step::default(),
        delete: Step::default(),
        epoch: EpochPlan::default(),
        logs: Vec::new(),
    };
    let mut report = MaintenanceReport::new(plan, opts.dry_run, acting_as);
    let mut rec = Recorder {
        repo: repo.clone(),
        schedule: sched,
        dry_run: opts.dry_run,
    };
    if mode == Mode::Full {
        let lease_ref = lease.as_ref();
        full_content_steps(&mut repo, &mut rec, opts, lease_ref, &mut report).await?;
        epoch_steps(&repo, &mut rec, opts, &mut report).await?;
        cleanup_logs(&repo, &mut rec, lease_ref, opts, &mut report).await?;
    } else {
        epoch_steps(&repo, &mut rec, opts, &mut report).await?;
    }
    report.duration = started.elapsed();
    Ok(report)
}

/// Writes the next due times, reads back `MaintenanceStartTime`, checks clock skew.
async fn begin_run(
    repo: &Repository,
    sched: &mut Schedule,
    params: &MaintenanceParams,
    mode: Mode,
) -> Result<DateTime<Utc>> {
    let now = repo.clock().now();
    sched.next_quick_maintenance = now + TimeDelta::nanoseconds(params.quick.interval);
    if mode == Mode::Full {
        sched.next_full_maintenance = now + TimeDelta::nanoseconds(params.full.interval);
    }
    schedule::write_schedule(repo, sched).await?;
    let meta = repo
        .storage()
        .get_metadata(&BlobId::from(SCHEDULE_BLOB_ID))
        .await?;
    let skew = (meta.timestamp - now).abs();
    if skew > schedule::MAX_CLOCK_SKEW {
        return Err(Error::Config(format!(
            "clock skew detected: local clock is out of sync with repository timestamp by more than {}s (local: {now}, repository: {}); refusing to run maintenance",
            schedule::MAX_CLOCK_SKEW.num_seconds(),
            meta.timestamp
        )));
    }
    Ok(meta.timestamp)
}

/// GC, drop deleted, rewrite, delete unreferenced blobs.
async fn full_content_steps(
    repo: &mut Repository,
    rec: &mut Recorder,
    opts: &MaintenanceOptions,
    lease: Option<&MaintenanceLease>,
    report: &mut MaintenanceReport,
) -> Result<()> {
    let safety = opts.safety;
    let start = report.plan.start;
    let rt = tokio::runtime::Handle::current();

    // 0. A lost index blob leaves packs whose contents no index lists (snapshots vanished
    // from the listing). GC, rewrite and deletion would judge such a repository by the
    // index alone and destroy what `arkiv index recover` can still bring back: stop first.
    refuse_if_unindexed(repo).await?;

    // 1. snapshot GC
    let gc_start = repo.clock().now();
    let reachable = gc::find_reachable(repo).await?;
    let gc_plan = gc::plan_gc(
        repo,
        &reachable,
        start,
        safety.min_content_age_subject_to_gc,
    )?;
    drop(reachable);
    let overlay = rewrite::GcOverlay {
        marked: gc_plan.mark_deleted.iter().copied().collect(),
        undeleted: gc_plan.undelete.iter().copied().collect(),
    };
    if let Some(lease) = lease {
        let (marked, undeleted) = apply_gc(repo, lease, &gc_plan, &rt).await?;
        report.contents_marked_deleted = marked;
        report.contents_undeleted = undeleted;
        repo.refresh().await?;
    }
    report.plan.gc = Step::Planned(gc_plan);
    rec.record(task::SNAPSHOT_GC, gc_start).await?;
    let dry_overlay = opts.dry_run.then_some(&overlay);

    // 2. drop deleted contents (deletion watermark)
    let safe_drop = if safety.require_two_gc_cycles {
        find_safe_drop_time(rec.schedule.runs_of(task::SNAPSHOT_GC), &safety)
    } else {
        Some(repo.clock().now())
    };
    let current_wm = repo.indexes().deletion_watermark();
    let mut effective_wm = current_wm;
    match safe_drop {
        None => {
            report.plan.drop_deleted = Step::Skipped(
                "fewer than two snapshot GC runs far enough apart (deleted contents are dropped only after a second GC could undelete them)".into(),
            );
        }
        Some(t) if current_wm.is_some_and(|w| w >= t.timestamp()) => {
            report.plan.drop_deleted =
                Step::Skipped(format!("watermark already at or past {}", t.to_rfc3339()));
        }
        Some(t) => {
            let step_start = repo.clock().now();
            if lease.is_some() {
                repo.storage()
                    .put(
                        &epoch::deletion_watermark_id(t.timestamp()),
                        Bytes::from_static(epoch::DELETION_WATERMARK_CONTENT),
                    )
                    .await?;
                repo.refresh().await?;
            }
            effective_wm = Some(t.timestamp());
            report.watermark = Some(t);
            report.plan.drop_deleted = Step::Planned(t);
            rec.record(task::DROP_DELETED_CONTENTS_FULL, step_start)
                .await?;
        }
    }

    // 3. rewrite short packs
    let now = repo.clock().now();
    let mut rewritten: HashSet<BlobId> = HashSet::new();
    if should_full_rewrite(&rec.schedule, &safety) {
        let step_start = repo.clock().now();
        let usage =
            rewrite::pack_usage(repo, dry_overlay, effective_wm, now, safety.rewrite_min_age)?;
        let packs = list_many(repo, &["p", "q"]).await?;
        let max_pack = repo.config().effective_max_pack_size();
        let plan = rewrite::plan_rewrite(&packs, &usage, max_pack);
        drop(usage);
        rewritten = plan.packs.iter().map(|p| p.pack.clone()).collect();
        if let (Some(lease), false) = (lease, plan.packs.is_empty()) {
            let n = apply_rewrite(repo, lease, &rewritten, &rt).await?;
            report.contents_rewritten = n;
            report.packs_rewritten = plan.packs.len() as u64;
            repo.refresh().await?;
        }
        let copied = !plan.packs.is_empty();
        report.plan.rewrite = Step::Planned(plan);
        if copied {
            rec.record(task::REWRITE_CONTENTS_FULL, step_start).await?;
        }
    } else {
        report.plan.rewrite =
            Step::Skipped("the previous rewrite's orphaned packs have not been deleted yet".into());
    }

    // 4. delete unreferenced blobs
    let now = repo.clock().now();
    match next_blob_delete_time(&rec.schedule, &safety) {
        Some(t) if now < t => {
            report.plan.delete = Step::Skipped(format!(
                "a content rewrite finished less than {}s ago; clients may still read the old packs until {}",
                safety.min_rewrite_to_orphan_deletion_delay,
                t.to_rfc3339()
            ));
        }
        _ => {
            let step_start = repo.clock().now();
            let usage =
                rewrite::pack_usage(repo, dry_overlay, effective_wm, now, safety.rewrite_min_age)?;
            let candidates = list_many(repo, &["p", "q", "s"]).await?;
            let sessions = rewrite::active_sessions(repo).await?;
            // Read after the candidates and markers were listed: a writer whose packs were
            // listed either still had its marker then, or had already written its index blob.
            let mut fresh = repo.clone();
            fresh.refresh().await?;
            let late_packs = packs_of_new_index_blobs(repo, &fresh)?;
            let dry = opts.dry_run;
            let referenced = |b: &BlobId| {
                (usage.contains_key(b) && !(dry && rewritten.contains(b))) || late_packs.contains(b)
            };
            let plan = rewrite::plan_delete(
                &candidates,
                &referenced,
                &sessions,
                start,
                safety.blob_delete_min_age,
                safety
                    .session_expiration_age
                    .max(LIVE_SESSION_MIN_PROTECTION),
            );
            drop(usage);
            refuse_if_index_damaged(&fresh, &candidates, &plan, &sessions).await?;
            if lease.is_some() {
                let ids: Vec<BlobId> = plan.blobs.iter().map(|b| b.0.clone()).collect();
                delete_blobs(repo, &ids).await?;
                report.blobs_deleted += ids.len() as u64;
                report.bytes_reclaimed += plan.bytes();
            }
            report.plan.delete = Step::Planned(plan);
            rec.record(task::DELETE_ORPHANED_BLOBS_FULL, step_start)
                .await?;
        }
    }
    Ok(())
}

/// However short the safety margins (`--safety none`), packs of a writer whose session
/// marker is younger than this are kept: a backup running alongside maintenance must not lose
/// the packs its index blob is about to name.
pub const LIVE_SESSION_MIN_PROTECTION: i64 = 12 * 3600;

/// Packs named by index blobs that `fresh` sees and `repo` did not load (other writers').
fn packs_of_new_index_blobs(repo: &Repository, fresh: &Repository) -> Result<HashSet<BlobId>> {
    let known: HashSet<&BlobId> = repo
        .indexes()
        .indexes()
        .iter()
        .map(|i| &i.blob_id)
        .collect();
    let mut out = HashSet::new();
    for idx in fresh.indexes().indexes() {
        if known.contains(&idx.blob_id) {
            continue;
        }
        for info in idx.reader.iter() {
            let info = info.map_err(|e| Error::format(format!("index blob {}", idx.blob_id), e))?;
            out.insert(info.pack_blob_id);
        }
    }
    Ok(out)
}

/// Stops full maintenance before its first step when packs hold contents no index blob
/// lists (see [`crate::content::recover::find_unindexed`]; packs of live sessions are a
/// writer's own and not counted).
async fn refuse_if_unindexed(repo: &Repository) -> Result<()> {
    let plan = crate::content::recover::find_unindexed(repo, &Default::default()).await?;
    let Some((pack, entries)) = plan.unindexed.iter().next() else {
        return Ok(());
    };
    Err(Error::Corrupt(format!(
        "index damaged: {} pack blob(s) hold {} content(s) ({} manifest(s)) that no index blob lists, first {pack} ({} content(s)); refusing to run full maintenance. Run `arkiv index recover`",
        plan.unindexed.len(),
        plan.entries(),
        plan.manifests(),
        entries.len()
    )))
}

/// Stops blob deletion when a pack about to be deleted holds contents that no index blob
/// lists (live, deleted or dropped): an index blob was lost, and deleting the pack would
/// destroy data `arkiv index recover` can still bring back. Packs of sessions with a marker
/// are a writer's own leftovers and are judged by the session rules instead.
async fn refuse_if_index_damaged(
    fresh: &Repository,
    candidates: &[BlobMetadata],
    plan: &rewrite::DeletePlan,
    sessions: &std::collections::HashMap<String, DateTime<Utc>>,
) -> Result<()> {
    let doomed: HashSet<&BlobId> = plan.blobs.iter().map(|b| &b.0).collect();
    for m in candidates {
        let id = m.id.as_str();
        if !doomed.contains(&m.id) || !(id.starts_with('p') || id.starts_with('q')) {
            continue;
        }
        if rewrite::session_id_of(id).is_some_and(|s| sessions.contains_key(s)) {
            continue;
        }
        let lost = match crate::content::recover::unindexed_in_pack(
            fresh.content_reader(),
            fresh.indexes(),
            m,
        )
        .await
        {
            Ok(lost) => lost,
            Err(e) if e.kind() == crate::ErrorKind::Corrupt => {
                // Unreadable and unreferenced: nothing recoverable is lost by deleting it.
                tracing::warn!("deleting unreadable unreferenced pack {id}: {e}");
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(first) = lost.first() {
            let manifests = lost
                .iter()
                .filter(|i| i.content_id.prefix() == Some(b'm'))
                .count();
            return Err(Error::Corrupt(format!(
                "index damaged: pack blob {id} holds {} content(s) ({manifests} manifest(s), first {}) that no index blob lists; refusing to delete it. Run `arkiv index recover`",
                lost.len(),
                first.content_id
            )));
        }
    }
    Ok(())
}

async fn apply_gc(
    repo: &Repository,
    _lease: &MaintenanceLease,
    plan: &gc::GcPlan,
    rt: &tokio::runtime::Handle,
) -> Result<(u64, u64)> {
    if plan.mark_deleted.is_empty() && plan.undelete.is_empty() {
        return Ok((0, 0));
    }
    let (user, host) = identity_parts(_lease.acting_as());
    let cw = ContentWriter::new(repo.clone(), rt.clone(), &user, &host)?;
    let repo2 = repo.clone();
    let mark = plan.mark_deleted.clone();
    let undelete = plan.undelete.clone();
    tokio::task::spawn_blocking(move || -> Result<(u64, u64)> {
        let (mut m, mut u) = (0u64, 0u64);
        for id in &mark {
            if let Some(info) = repo2.content_info(id)? {
                if !info.deleted {
                    cw.mark_deleted(&info)?;
                    m += 1;
                    if cw.pending_index_entries() >= FLUSH_EVERY {
                        cw.flush()?;
                    }
                }
            }
        }
        for id in &undelete {
            if let Some(info) = repo2.content_info(id)? {
                if info.deleted {
                    cw.copy_content(&info, false)?;
                    u += 1;
                }
            }
        }
        cw.flush()?;
        Ok((m, u))
    })
    .await
    .map_err(join_err)?
}

async fn apply_rewrite(
    repo: &Repository,
    lease: &MaintenanceLease,
    packs: &HashSet<BlobId>,
    rt: &tokio::runtime::Handle,
) -> Result<u64> {
    let (user, host) = identity_parts(lease.acting_as());
    let cw = ContentWriter::new(repo.clone(), rt.clone(), &user, &host)?;
    let repo2 = repo.clone();
    let packs = packs.clone();
    tokio::task::spawn_blocking(move || rewrite::apply_rewrite(&repo2, &cw, &packs, FLUSH_EVERY))
        .await
        .map_err(join_err)?
}

/// Splits a `user@host` identity at its last `@` (no `@`: all user, empty host).
pub fn identity_parts(user_at_host: &str) -> (String, String) {
    match user_at_host.rsplit_once('@') {
        Some((u, h)) => (u.to_owned(), h.to_owned()),
        None => (user_at_host.to_owned(), String::new()),
    }
}

/// Epoch maintenance: compact single, advance; full: range, cleanup markers, superseded.
async fn epoch_steps(
    repo: &Repository,
    rec: &mut Recorder,
    opts: &MaintenanceOptions,
    report: &mut MaintenanceReport,
) -> Result<()> {
    if !repo.config().epoch_parameters.enabled {
        return Ok(());
    }
    let p = compaction::EpochParams::of(repo);
    let apply = !opts.dry_run;
    let mut st = compaction::epoch_state(repo).await?;
    report.plan.epoch.write_epoch = st.write_epoch;

    let t = repo.clock().now();
    if let Some((e, inputs)) = compaction::plan_compact_single(&st) {
        let ids: Vec<BlobId> = inputs.iter().map(|b| b.id.clone()).collect();
        if apply {
            compaction::write_compaction(repo, &ids, &epoch::single_epoch_compaction_prefix(e))
                .await?;
        }
        report.index_blobs_compacted += ids.len() as u64;
        report.plan.epoch.compact_single = Some((e, ids));
    }
    rec.record(task::EPOCH_COMPACT_SINGLE, t).await?;

    let t = repo.clock().now();
    if let Some(next) = compaction::plan_advance(&st, &p) {
        if apply {
            repo.storage()
                .put(
                    &epoch::epoch_marker_id(next),
                    Bytes::from_static(epoch::EPOCH_MARKER_CONTENT),
                )
                .await?;
        }
        report.epoch_advanced = Some(next);
        report.plan.epoch.advance = Some(next);
    }
    rec.record(task::EPOCH_ADVANCE, t).await?;
    if opts.full {
        if apply {
            st = compaction::epoch_state(repo).await?;
        }
        let t = repo.clock().now();
        if let Some((a, b, inputs)) = compaction::plan_range(&st, &p) {
            let ids: Vec<BlobId> = inputs.iter().map(|b| b.id.clone()).collect();
            if apply {
                compaction::write_compaction(repo, &ids, &epoch::range_checkpoint_prefix(a, b))
                    .await?;
            }
            report.index_blobs_compacted += ids.len() as u64;
            report.plan.epoch.range = Some((a, b, ids));
        }
        rec.record(task::EPOCH_GENERATE_RANGE, t).await?;
        if apply {
            st = compaction::epoch_state(repo).await?;
        }
        let t = repo.clock().now();
        let markers = compaction::plan_cleanup_markers(&st, &p);
        if apply {
            delete_blobs(repo, &markers).await?;
        }
        report.index_blobs_deleted += markers.len() as u64;
        report.plan.epoch.cleanup_markers = markers;
        rec.record(task::EPOCH_CLEANUP_MARKERS, t).await?;

        let t = repo.clock().now();
        let superseded = compaction::plan_delete_superseded(&st, &p);
        if apply {
            let bytes: u64 = st
                .uncompacted
                .values()
                .flatten()
                .filter(|b| superseded.contains(&b.id))
                .map(|b| b.length)
                .sum();
            delete_blobs(repo, &superseded).await?;
            report.bytes_reclaimed += bytes;
        }
        report.index_blobs_deleted += superseded.len() as u64;
        report.plan.epoch.delete_superseded = superseded;
        rec.record(task::EPOCH_DELETE_SUPERSEDED_INDEXES, t).await?;
    }
    Ok(())
}

/// kopia `CleanupLogs`: newest first, keep until the size, count or age limit is reached.
async fn cleanup_logs(
    repo: &Repository,
    rec: &mut Recorder,
    lease: Option<&MaintenanceLease>,
    _opts: &MaintenanceOptions,
    report: &mut MaintenanceReport,
) -> Result<()> {
    let t = repo.clock().now();
    let retention = match lease {
        Some(l) => l.params().log_retention.or_default(),
        None => schedule::load_params(repo)
            .await?
            .0
            .map(|p| p.log_retention.or_default())
            .unwrap_or_else(|| {
                MaintenanceParams::default_for_owner("")
                    .log_retention
                    .or_default()
            }),
    };
    let mut logs = repo.storage().list("_").await?;
    logs.sort_by_key(|m| std::cmp::Reverse(m.timestamp));
    let mut total = 0i64;
    let mut cut = logs.len();
    for (i, m) in logs.iter().enumerate() {
        total = total.saturating_add(i64::try_from(m.length).unwrap_or(i64::MAX));
        let too_big = retention.max_total_size > 0 && total > retention.max_total_size;
        let too_many =
            retention.max_count > 0 && i64::try_from(i).unwrap_or(i64::MAX) >= retention.max_count;
        let too_old =
            retention.max_age > 0 && (t - m.timestamp) > TimeDelta::nanoseconds(retention.max_age);
        if too_big || too_many || too_old {
            cut = i;
            break;
        }
    }
    let doomed: Vec<(BlobId, u64)> = logs
        .get(cut..)
        .unwrap_or_default()
        .iter()
        .map(|m| (m.id.clone(), m.length))
        .collect();
    if lease.is_some() {
        let ids: Vec<BlobId> = doomed.iter().map(|d| d.0.clone()).collect();
        delete_blobs(repo, &ids).await?;
        report.bytes_reclaimed += doomed.iter().map(|d| d.1).sum::<u64>();
    }
    report.plan.logs = doomed;
    rec.record(task::CLEANUP_LOGS, t).await?;
    Ok(())
}

/// Parameters and schedule, for `maintenance info`.
#[derive(Debug, Clone)]
pub struct MaintenanceInfo {
    /// The parameters (None: no manifest yet).
    pub params: Option<MaintenanceParams>,
    /// The schedule.
    pub schedule: Schedule,
}

/// Reads the maintenance parameters and schedule.
pub async fn maintenance_info(repo: &Repository) -> Result<MaintenanceInfo> {
    Ok(MaintenanceInfo {
        params: schedule::load_params(repo).await?.0,
        schedule: schedule::read_schedule(repo).await?,
    })
}

impl fmt::Display for MaintenanceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(p) = &self.params else {
            return writeln!(f, "Owner: (none: maintenance parameters not set)");
        };
        writeln!(f, "Owner: {}", p.owner)?;
        for (name, cycle, next) in [
            ("Quick", &p.quick, self.schedule.next_quick_maintenance),
            ("Full", &p.full, self.schedule.next_full_maintenance),
        ] {
            writeln!(f, "{name} Cycle:")?;
            writeln!(f, "  scheduled: {}", cycle.enabled)?;
            writeln!(
                f,
                "  interval: {}",
                arkiv_format::gojson::duration::format(cycle.interval)
            )?;
            writeln!(f, "  next run: {}", next.to_rfc3339())?;
        }
        writeln!(f, "Recent Maintenance Runs:")?;
        if let Some(runs) = &self.schedule.runs {
            for (task, list) in runs {
                writeln!(f, "  {task}:")?;
                for r in list.iter().take(5) {
                    writeln!(
                        f,
                        "    {} ({}s) {}",
                        r.start.to_rfc3339(),
                        (r.end - r.start).num_seconds(),
                        if r.success {
                            "SUCCESS".to_owned()
                        } else {
                            format!("ERROR: {}", r.error)
                        }
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Makes `owner` (`user@host`) the maintenance owner, as `username@hostname`.
pub async fn set_owner(
    repo: &Repository,
    owner: &str,
    username: &str,
    hostname: &str,
) -> Result<()> {
    let mut params = schedule::load_params(repo)
        .await?
        .0
        .unwrap_or_else(|| MaintenanceParams::default_for_owner(owner));
    params.owner = owner.to_owned();
    schedule::store_params(repo, &params, username, hostname).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn run(start_h: i64, end_h: i64, success: bool) -> RunInfo {
        let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        RunInfo {
            start: t0 + TimeDelta::hours(start_h),
            end: t0 + TimeDelta::hours(end_h),
            success,
            error: String::new(),
            extra: Vec::new(),
        }
    }

    #[test]
    fn safe_drop_time_needs_two_gc_cycles_apart() {
        let s = SAFETY_FULL;
        assert_eq!(find_safe_drop_time(&[], &s), None);
        assert_eq!(find_safe_drop_time(&[run(0, 1, true)], &s), None);
        // only 3 h between the end of the earlier run and the start of the latest: too close
        assert_eq!(
            find_safe_drop_time(&[run(4, 5, true), run(0, 1, true)], &s),
            None
        );
        // failed runs do not count
        assert_eq!(
            find_safe_drop_time(&[run(10, 11, true), run(0, 1, false)], &s),
            None
        );
        let t = find_safe_drop_time(&[run(10, 11, true), run(8, 9, true), run(0, 1, true)], &s);
        assert_eq!(
            t,
            Some(run(-1, 0, true).start),
            "first earlier run more than 4 h before, minus 1 h"
        );
    }

    #[test]
    fn rewrite_and_delete_alternate_under_full_safety() {
        let mut s = Schedule::default();
        assert!(should_full_rewrite(&s, &SAFETY_FULL));
        s.report_run(task::REWRITE_CONTENTS_FULL, run(0, 1, true));
        assert!(!should_full_rewrite(&s, &SAFETY_FULL));
        assert!(should_full_rewrite(&s, &SAFETY_NONE));
        assert_eq!(
            next_blob_delete_time(&s, &SAFETY_FULL),
            Some(run(2, 2, true).start)
        );
        s.report_run(task::DELETE_ORPHANED_BLOBS_FULL, run(3, 3, true));
        assert!(should_full_rewrite(&s, &SAFETY_FULL));
    }

    #[test]
    fn summary_lines_name_the_counts() {
        let plan = MaintenancePlan {
            mode: Mode::Full,
            safety: SAFETY_FULL,
            start: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
            gc: Step::default(),
            drop_deleted: Step::default(),
            rewrite: Step::default(),
            delete: Step::default(),
            epoch: EpochPlan::default(),
            logs: Vec::new(),
        };
        let mut r = MaintenanceReport::new(plan, false, "maintenance@volsync".into());
        r.contents_marked_deleted = 3;
        r.blobs_deleted = 2;
        r.bytes_reclaimed = 1000;
        let lines = r.summary_lines();
        assert_eq!(
            lines[0],
            "MAINTENANCE_STATUS: full maintenance completed as maintenance@volsync"
        );
        assert!(lines[1].starts_with("MAINTENANCE_DURATION: "));
        assert!(lines.iter().any(|l| l.contains("3 marked deleted")));
        assert!(
            lines
                .iter()
                .any(|l| l.contains("2 deleted, 1000 bytes reclaimed"))
        );
    }
}
