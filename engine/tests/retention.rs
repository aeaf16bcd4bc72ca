//! Retention over simulated time: snapshots of a tiny tree are taken at chosen instants of a
//! [`ManualClock`], policies are stored like `kopia policy set`, and expiry must keep exactly
//! what kopia's retention cases (TEST-VECTORS.md V-RET) keep.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arkiv_engine::OpenOptions;
use arkiv_engine::Repository;
use arkiv_engine::blob::BlobStorage;
use arkiv_engine::blob::memory::MemoryStorage;
use arkiv_engine::clock::ManualClock;
use arkiv_engine::content::writer::ContentWriter;
use arkiv_engine::initialize::{CreateOptions, create_repository};
use arkiv_engine::manifest::ManifestBatch;
use arkiv_engine::policy::{PolicyTarget, get_policy, set_policy};
use arkiv_engine::retention::{RetentionPlan, apply_expiry, expire_source, plan_expiry};
use arkiv_engine::snapshot::upload::{UploadOptions, UploadProgress, snapshot_directory};
use arkiv_format::gojson::time::parse as parse_go_time;
use arkiv_format::ids::ManifestId;
use arkiv_format::policy::{Policy, RetentionPolicy, policy_labels_for_source};
use arkiv_format::snapshot::{SourceInfo, snapshot_labels};
use chrono::{DateTime, Utc};

const PW: &str = "retention-test";

struct Env {
    clock: ManualClock,
    storage: Arc<MemoryStorage>,
    repo: Repository,
    tree: tempfile::TempDir,
}

async fn env() -> Env {
    let clock = ManualClock::new(t("2019-06-01T00:00:00Z"));
    let shared: arkiv_engine::clock::SharedClock = Arc::new(clock.clone());
    let storage = Arc::new(MemoryStorage::new(shared.clone()));
    let mut open = OpenOptions::default();
    open.clock = shared;
    let repo = create_repository(
        storage.clone(),
        PW,
        &CreateOptions::new("tester", "lab"),
        open,
    )
    .await
    .unwrap();
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("file.txt"), b"hello retention").unwrap();
    Env {
        clock,
        storage,
        repo,
        tree,
    }
}

fn t(s: &str) -> DateTime<Utc> {
    parse_go_time(s).unwrap()
}

fn source(path: &str) -> SourceInfo {
    SourceInfo {
        host: "lab".into(),
        user_name: "tester".into(),
        path: path.into(),
    }
}

impl Env {
    /// Snapshots the tiny tree as `src` at time `at`.
    async fn snap(&self, src: &SourceInfo, at: DateTime<Utc>) -> ManifestId {
        self.clock.set(at);
        let r = snapshot_directory(
            &self.repo,
            self.tree.path(),
            None,
            UploadOptions::new(src.clone()),
            Arc::new(UploadProgress::default()),
        )
        .await
        .unwrap();
        r.manifest_id
    }

    /// Rewrites snapshot `id` with `change` applied (new manifest, old one deleted), the way
    /// kopia updates a snapshot manifest (pins, checkpoints).
    async fn rewrite(
        &self,
        id: &ManifestId,
        change: impl FnOnce(&mut arkiv_format::snapshot::SnapshotManifest),
    ) -> ManifestId {
        let mut r = self.repo.clone();
        r.refresh().await.unwrap();
        let snap = r
            .snapshots()
            .await
            .unwrap()
            .into_iter()
            .find(|s| &s.id == id)
            .unwrap();
        let mut m = snap.manifest.clone();
        m.id = ManifestId::default();
        change(&mut m);
        let payload = m.encode().unwrap();
        let labels = snapshot_labels(&m.source, &m.tags);
        let now = self.clock.now_plus_ms();
        let cw = ContentWriter::new(
            r.clone(),
            tokio::runtime::Handle::current(),
            "tester",
            "lab",
        )
        .unwrap();
        let old = id.clone();
        tokio::task::spawn_blocking(move || {
            let mut b = ManifestBatch::default();
            b.delete(old, now);
            let id = b.put(labels, &payload, now).unwrap();
            b.commit(&cw).unwrap();
            cw.flush().unwrap();
            id
        })
        .await
        .unwrap()
    }

    /// An incomplete snapshot (checkpoint) of `src` started at `at`.
    async fn snap_incomplete(&self, src: &SourceInfo, at: DateTime<Utc>) -> ManifestId {
        let id = self.snap(src, at).await;
        self.rewrite(&id, |m| m.incomplete = "checkpoint".into())
            .await
    }

    /// Start times of the remaining snapshots of `src`, oldest first.
    async fn remaining(&self, src: &SourceInfo) -> Vec<DateTime<Utc>> {
        let mut r = self.repo.clone();
        r.refresh().await.unwrap();
        r.snapshots()
            .await
            .unwrap()
            .into_iter()
            .filter(|s| &s.manifest.source == src)
            .map(|s| s.manifest.start_time)
            .collect()
    }

    /// Every blob and its bytes.
    async fn dump(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for m in self.storage.list("").await.unwrap() {
            let b = self.storage.get(&m.id, None).await.unwrap();
            out.insert(m.id.to_string(), b.to_vec());
        }
        out
    }
}

trait ClockExt {
    fn now_plus_ms(&self) -> DateTime<Utc>;
}

impl ClockExt for ManualClock {
    /// Now + 1 ms, and moves the clock there (a rewrite must be strictly later).
    fn now_plus_ms(&self) -> DateTime<Utc> {
        use arkiv_engine::clock::Clock;
        self.advance(chrono::Duration::milliseconds(1));
        self.now()
    }
}

/// Stores `retention` as the path policy of `src` with `noParent`, so that nothing is inherited
/// (the V-RET cases are stated for exactly these settings, unset = unset).
async fn set_exact_policy(e: &Env, src: &SourceInfo, retention: RetentionPolicy) {
    set_policy(
        &e.repo,
        &PolicyTarget::Source(src.clone()),
        "tester",
        "lab",
        move |p| {
            p.retention = retention;
            p.no_parent = true;
        },
    )
    .await
    .unwrap();
}

/// One V-RET case: rows of ("[incomplete-]RFC3339", reasons). Snapshots are taken in time
/// order, the plan must show the reasons, and after applying it exactly the snapshots with
/// reasons remain; planning again deletes nothing and gives the same reasons.
async fn run_case(e: &Env, path: &str, retention: RetentionPolicy, rows: &[(&str, &[&str])]) {
    let src = source(path);
    set_exact_policy(e, &src, retention).await;
    let mut rows: Vec<(bool, DateTime<Utc>, Vec<String>)> = rows
        .iter()
        .map(|(ts, want)| {
            let inc = ts.starts_with("incomplete-");
            (
                inc,
                t(ts.trim_start_matches("incomplete-")),
                want.iter().map(|s| (*s).to_owned()).collect(),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.1);
    for (inc, at, _) in &rows {
        if *inc {
            e.snap_incomplete(&src, *at).await;
        } else {
            e.snap(&src, *at).await;
        }
    }
    let plan = plan_expiry(&e.repo, &src, &Utc).await.unwrap();
    let got: Vec<(DateTime<Utc>, Vec<String>)> = plan
        .decisions
        .iter()
        .map(|d| (d.start_time, d.reasons.clone()))
        .collect();
    let want: Vec<(DateTime<Utc>, Vec<String>)> =
        rows.iter().map(|(_, at, r)| (*at, r.clone())).collect();
    assert_eq!(got, want, "{path}\n{plan}");
    for d in &plan.decisions {
        assert_eq!(d.keep, !d.reasons.is_empty(), "{path}: {d:?}");
    }
    let deleted = apply_expiry(&e.repo, &plan, "tester", "lab").await.unwrap();
    let kept: Vec<DateTime<Utc>> = rows
        .iter()
        .filter(|r| !r.2.is_empty())
        .map(|r| r.1)
        .collect();
    assert_eq!(deleted, rows.len() - kept.len(), "{path}");
    assert_eq!(e.remaining(&src).await, kept, "{path}");
    // idempotent, like kopia's test which re-evaluates over the retained snapshots
    let again = plan_expiry(&e.repo, &src, &Utc).await.unwrap();
    assert_eq!(again.expired_count(), 0, "{path}\n{again}");
    let want_again: Vec<(DateTime<Utc>, Vec<String>)> = rows
        .iter()
        .filter(|r| !r.2.is_empty())
        .map(|(_, at, r)| (*at, r.clone()))
        .collect();
    let got_again: Vec<(DateTime<Utc>, Vec<String>)> = again
        .decisions
        .iter()
        .map(|d| (d.start_time, d.reasons.clone()))
        .collect();
    assert_eq!(got_again, want_again, "{path}");
}

fn keep(
    latest: Option<i64>,
    hourly: Option<i64>,
    daily: Option<i64>,
    weekly: Option<i64>,
    monthly: Option<i64>,
) -> RetentionPolicy {
    RetentionPolicy {
        keep_latest: latest,
        keep_hourly: hourly,
        keep_daily: daily,
        keep_weekly: weekly,
        keep_monthly: monthly,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v_ret_cases_over_simulated_time() {
    let e = env().await;
    let none: &[&str] = &[];
    run_case(
        &e,
        "/nothing-set",
        keep(None, None, None, None, None),
        &[
            ("2020-01-01T12:00:00Z", &["latest-4"]),
            ("2020-01-01T12:01:00Z", &["latest-3"]),
            ("2020-01-01T12:02:00Z", &["latest-2"]),
            ("2020-01-01T12:03:00Z", &["latest-1"]),
        ],
    )
    .await;
    run_case(
        &e,
        "/latest",
        keep(Some(3), None, None, None, None),
        &[
            ("2020-01-01T12:00:00Z", none),
            ("2020-01-01T12:01:00Z", &["latest-3"]),
            ("2020-01-01T12:02:00Z", &["latest-2"]),
            ("2020-01-01T12:03:00Z", &["latest-1"]),
        ],
    )
    .await;
    run_case(
        &e,
        "/daily",
        keep(None, None, Some(3), None, None),
        &[
            ("2020-01-01T12:00:00Z", none),
            ("2020-01-01T15:00:00Z", none),
            ("2020-01-02T12:00:00Z", none),
            ("2020-01-02T15:00:00Z", &["daily-3"]),
            ("2020-01-03T12:00:00Z", none),
            ("2020-01-03T15:00:00Z", &["daily-2"]),
            ("2020-01-04T12:00:00Z", none),
            ("2020-01-04T15:00:00Z", &["daily-1"]),
        ],
    )
    .await;
    run_case(
        &e,
        "/monthly",
        keep(None, None, None, None, Some(3)),
        &[
            ("2020-01-01T12:00:00Z", none),
            ("2020-01-01T15:00:00Z", none),
            ("2020-02-01T12:00:00Z", none),
            ("2020-02-02T15:00:00Z", &["monthly-3"]),
            ("2020-03-01T12:00:00Z", none),
            ("2020-03-02T15:00:00Z", &["monthly-2"]),
            ("2020-04-01T12:00:00Z", none),
            ("2020-04-02T15:00:00Z", &["monthly-1"]),
        ],
    )
    .await;
    run_case(
        &e,
        "/monthly-gap",
        keep(None, None, None, None, Some(3)),
        &[
            ("2020-01-01T12:00:00Z", none),
            ("2020-01-01T15:00:00Z", none),
            ("2020-03-02T15:00:00Z", &["monthly-2"]),
            ("2020-04-01T12:00:00Z", none),
            ("2020-04-02T15:00:00Z", &["monthly-1"]),
        ],
    )
    .await;
    run_case(
        &e,
        "/weekly",
        keep(None, None, None, Some(3), None),
        &[
            ("2020-01-01T12:00:00Z", none),
            ("2020-01-01T15:00:00Z", &["weekly-3"]),
            ("2020-01-08T12:00:00Z", none),
            ("2020-01-09T12:00:00Z", &["weekly-2"]),
            ("2020-01-15T12:00:00Z", &["weekly-1"]),
        ],
    )
    .await;
    run_case(
        &e,
        "/latest-incomplete",
        keep(Some(3), None, None, None, None),
        &[
            ("2020-04-02T15:00:00Z", &["latest-1"]),
            ("incomplete-2020-04-02T15:01:00Z", none),
            ("incomplete-2020-04-02T16:01:00Z", none),
            ("incomplete-2020-04-02T17:01:00Z", none),
            ("incomplete-2020-04-02T18:01:00Z", &["incomplete"]),
            ("incomplete-2020-04-02T19:01:00Z", &["incomplete"]),
            ("incomplete-2020-04-02T23:50:00Z", &["incomplete"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v_ret_larger_case_over_simulated_time() {
    let e = env().await;
    let mut rows: Vec<(String, Vec<&str>)> = Vec::new();
    for month in ["01", "02", "03", "04"] {
        for hm in ["12:00", "13:00", "14:00", "15:00"] {
            rows.push((format!("2020-{month}-01T{hm}:00Z"), vec![]));
        }
        for hm in ["12:00", "13:00", "15:00"] {
            rows.push((format!("2020-{month}-02T{hm}:00Z"), vec![]));
        }
    }
    for hm in [
        "15:01", "16:01", "17:01", "18:01", "19:01", "20:01", "21:01", "22:01", "23:01", "23:50",
    ] {
        rows.push((format!("incomplete-2020-04-02T{hm}:00Z"), vec![]));
    }
    let set = |rows: &mut Vec<(String, Vec<&'static str>)>, ts: &str, r: &[&'static str]| {
        let row = rows.iter_mut().find(|x| x.0 == ts).unwrap();
        row.1 = r.to_vec();
    };
    set(&mut rows, "2020-03-02T15:00:00Z", &["monthly-2"]);
    set(&mut rows, "2020-04-01T15:00:00Z", &["daily-2"]);
    set(&mut rows, "2020-04-02T12:00:00Z", &["latest-3", "hourly-3"]);
    set(&mut rows, "2020-04-02T13:00:00Z", &["latest-2", "hourly-2"]);
    set(
        &mut rows,
        "2020-04-02T15:00:00Z",
        &["latest-1", "hourly-1", "daily-1", "monthly-1"],
    );
    for hm in ["20:01", "21:01", "22:01", "23:01", "23:50"] {
        set(
            &mut rows,
            &format!("incomplete-2020-04-02T{hm}:00Z"),
            &["incomplete"],
        );
    }
    let rows: Vec<(&str, &[&str])> = rows.iter().map(|(a, b)| (a.as_str(), &b[..])).collect();
    run_case(
        &e,
        "/larger",
        keep(Some(3), Some(7), Some(5), None, Some(2)),
        &rows,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_protect_and_defaults_apply() {
    let e = env().await;
    let src = source("/data");
    // only latest 1 (inherits nothing else: noParent)
    set_exact_policy(&e, &src, keep(Some(1), None, None, None, None)).await;
    let first = e.snap(&src, t("2021-03-01T10:00:00Z")).await;
    e.snap(&src, t("2021-03-01T11:00:00Z")).await;
    e.snap(&src, t("2021-03-01T12:00:00Z")).await;
    e.rewrite(&first, |m| m.pins = vec!["keep-me".into()]).await;
    e.clock.set(t("2021-03-01T12:30:00Z"));
    let plan = expire_source(&e.repo, &src, "tester", "lab").await.unwrap();
    assert_eq!(plan.expired_count(), 1, "{plan}");
    assert_eq!(
        e.remaining(&src).await,
        [t("2021-03-01T10:00:00Z"), t("2021-03-01T12:00:00Z")]
    );
    let pinned = &plan.decisions[0];
    assert!(pinned.keep && pinned.reasons.is_empty());
    assert_eq!(pinned.pins, ["keep-me"]);

    // another source with no policy of its own: kopia's defaults from the global policy
    // (latest 10, hourly 48, …): 12 snapshots a minute apart in one hour → the 2 oldest go
    let other = source("/other");
    for i in 0..12 {
        e.snap(
            &other,
            t("2021-03-02T10:00:00Z") + chrono::Duration::minutes(i),
        )
        .await;
    }
    let plan = plan_expiry(&e.repo, &other, &Utc).await.unwrap();
    assert_eq!(plan.retention.keep_latest, Some(10));
    assert_eq!(plan.retention.keep_annual, Some(3));
    assert_eq!(plan.expired_count(), 2, "{plan}");
    assert_eq!(
        plan.decisions[11].reasons,
        [
            "latest-1",
            "hourly-1",
            "daily-1",
            "weekly-1",
            "monthly-1",
            "annual-1"
        ]
    );
    // expiring one source leaves the others alone
    assert_eq!(e.remaining(&src).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing() {
    let e = env().await;
    let src = source("/dry");
    set_exact_policy(&e, &src, keep(Some(2), None, None, None, None)).await;
    for h in 0..5 {
        e.snap(&src, t("2022-01-01T00:00:00Z") + chrono::Duration::hours(h))
            .await;
    }
    let before = e.dump().await;
    let plan = plan_expiry(&e.repo, &src, &Utc).await.unwrap();
    assert_eq!(plan.expired_count(), 3);
    let printed = plan.to_string();
    assert!(printed.starts_with(
        "Retention for tester@lab:/dry: latest 2, hourly (none), daily (none), weekly (none), monthly (none), annual (none)\n"
    ), "{printed}");
    assert!(printed.ends_with("2 kept, 3 to delete"), "{printed}");
    assert_eq!(printed.matches("  delete  ").count(), 3, "{printed}");
    assert_eq!(e.dump().await, before, "planning must not write");
    assert_eq!(e.remaining(&src).await.len(), 5);
    // an empty plan applies as a no-op without a write session
    let nothing = RetentionPlan {
        decisions: vec![],
        ..plan.clone()
    };
    assert_eq!(
        apply_expiry(&e.repo, &nothing, "tester", "lab")
            .await
            .unwrap(),
        0
    );
    assert_eq!(e.dump().await, before);
    assert_eq!(
        apply_expiry(&e.repo, &plan, "tester", "lab").await.unwrap(),
        3
    );
    assert_eq!(e.remaining(&src).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_policy_like_kopia_policy_set() {
    let e = env().await;
    let src = source("/p");
    let target = PolicyTarget::Source(src.clone());
    assert!(get_policy(&e.repo, &target).await.unwrap().is_none());
    let id1 = set_policy(&e.repo, &target, "tester", "lab", |p| {
        p.retention.keep_latest = Some(5)
    })
    .await
    .unwrap();
    // the second edit sees the first and replaces the manifest (new ID, old one deleted)
    let id2 = set_policy(&e.repo, &target, "tester", "lab", |p| {
        assert_eq!(p.retention.keep_latest, Some(5));
        p.retention.keep_daily = Some(2);
    })
    .await
    .unwrap();
    assert_ne!(id1, id2);
    let mut r = e.repo.clone();
    r.refresh().await.unwrap();
    let manifests = r.manifests().await.unwrap();
    assert!(!manifests.contains_key(&id1));
    let labels = policy_labels_for_source(&src);
    let matching: Vec<_> = manifests.values().filter(|m| m.matches(&labels)).collect();
    assert_eq!(matching.len(), 1);
    let entry = matching[0];
    assert_eq!(entry.labels.as_ref().unwrap(), &labels);
    // kopia-compatible payload: parses and re-encodes byte-exact
    let bytes = entry.data.as_ref().unwrap().get().as_bytes();
    let parsed = Policy::parse(bytes).unwrap();
    assert_eq!(parsed.encode().unwrap(), bytes);
    assert_eq!(
        std::str::from_utf8(bytes).unwrap(),
        r#"{"retention":{"keepLatest":5,"keepDaily":2},"files":{},"errorHandling":{},"scheduling":{},"compression":{},"metadataCompression":{},"splitter":{},"actions":{},"osSnapshots":{},"logging":{},"upload":{}}"#
    );
    let (gid, gp) = get_policy(&e.repo, &target).await.unwrap().unwrap();
    assert_eq!(gid, id2);
    assert_eq!(gp.retention.keep_daily, Some(2));
    // the global policy written at creation is replaced the same way
    let (g1, _) = get_policy(&e.repo, &PolicyTarget::Global)
        .await
        .unwrap()
        .unwrap();
    set_policy(&e.repo, &PolicyTarget::Global, "tester", "lab", |p| {
        p.retention.keep_latest = Some(1)
    })
    .await
    .unwrap();
    let (g2, gp) = get_policy(&e.repo, &PolicyTarget::Global)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(g1, g2);
    assert_eq!(gp.retention.keep_latest, Some(1));
    assert_eq!(gp.retention.keep_hourly, Some(48));
    // effective: path (latest 5, daily 2) over global (latest 1, hourly 48, …)
    let eff = arkiv_engine::policy::effective_policy(&e.repo, &src)
        .await
        .unwrap();
    assert_eq!(eff.retention.keep_latest, Some(5));
    assert_eq!(eff.retention.keep_daily, Some(2));
    assert_eq!(eff.retention.keep_hourly, Some(48));
}
