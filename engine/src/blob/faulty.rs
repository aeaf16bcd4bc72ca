//! A fault-injecting decorator for tests: scripted errors, delays and short reads.
//!
//! Faults are [`FaultRule`]s matched in the order they were added. A rule applies to one
//! operation (or all), to blob IDs (or list prefixes) starting with `id_prefix`, and a limited
//! number of times (or forever). For each call, every matching [`Fault::Delay`] rule sleeps
//! first; then the first matching error or truncation rule fires. Counters record how often
//! each operation was called and how many faults fired, so tests can assert that a retry layer
//! retried exactly as often as it should.
//!
//! A truncated read ([`Fault::Truncate`]) returns fewer bytes *without* an error, the way a
//! buggy proxy or a torn file would; callers that know the expected length must detect it.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arkiv_format::ids::BlobId;
use async_trait::async_trait;
use bytes::Bytes;

use super::{BlobMetadata, BlobStorage};
use crate::{Error, ErrorKind, Result};

/// A storage operation, as seen by fault rules and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`BlobStorage::get`]
    Get,
    /// [`BlobStorage::get_metadata`]
    GetMetadata,
    /// [`BlobStorage::put`]
    Put,
    /// [`BlobStorage::delete`]
    Delete,
    /// [`BlobStorage::list`]
    List,
}

impl Op {
    const ALL: [Op; 5] = [Op::Get, Op::GetMetadata, Op::Put, Op::Delete, Op::List];

    fn index(self) -> usize {
        match self {
            Op::Get => 0,
            Op::GetMetadata => 1,
            Op::Put => 2,
            Op::Delete => 3,
            Op::List => 4,
        }
    }

    /// The name used in error messages ("get", "put", ...).
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::GetMetadata => "get_metadata",
            Op::Put => "put",
            Op::Delete => "delete",
            Op::List => "list",
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Fail with an error of this kind, without calling the inner storage. Use
    /// [`ErrorKind::Transient`] for "retry me" and any other kind for permanent failures.
    Error(ErrorKind),
    /// Sleep this long, then go on (other rules may still fire).
    Delay(Duration),
    /// Call the inner storage, then keep only the first `n` bytes of a `get` result.
    /// Ignored by other operations.
    Truncate(usize),
}

/// One scripted fault.
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// Operation it applies to; `None` = all operations.
    pub op: Option<Op>,
    /// Applies to IDs (for `list`: to list prefixes) starting with this; `""` = all.
    pub id_prefix: String,
    /// What happens.
    pub fault: Fault,
    /// How many more times it fires; `None` = forever.
    pub remaining: Option<u64>,
}

impl FaultRule {
    /// A rule for `op` on IDs starting with `id_prefix` that fires forever (see [`Self::times`]).
    pub fn new(op: Option<Op>, id_prefix: &str, fault: Fault) -> Self {
        FaultRule {
            op,
            id_prefix: id_prefix.to_owned(),
            fault,
            remaining: None,
        }
    }

    /// Limits the rule to the next `n` matching calls.
    pub fn times(mut self, n: u64) -> Self {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, op: Op, target: &str) -> bool {
        self.op.is_none_or(|o| o == op)
            && target.starts_with(&self.id_prefix)
            && self.remaining != Some(0)
    }
}

/// The decorator. See the module docs.
#[derive(Debug)]
pub struct FaultyStorage<S> {
    inner: S,
    rules: Mutex<Vec<FaultRule>>,
    calls: [AtomicU64; 5],
    injected: AtomicU64,
}

impl<S: BlobStorage> FaultyStorage<S> {
    /// Wraps `inner` with no faults scripted (a transparent pass-through).
    pub fn new(inner: S) -> Self {
        FaultyStorage {
            inner,
            rules: Mutex::new(Vec::new()),
            calls: Default::default(),
            injected: AtomicU64::new(0),
        }
    }

    /// The wrapped storage (bypasses faults and counters).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Adds a rule after the existing ones.
    pub fn add(&self, rule: FaultRule) -> &Self {
        self.lock_rules().push(rule);
        self
    }

    /// `op` on IDs starting with `id_prefix` fails with `Transient` the next `n` times.
    pub fn fail_transient(&self, op: Op, id_prefix: &str, n: u64) -> &Self {
        self.add(FaultRule::new(Some(op), id_prefix, Fault::Error(ErrorKind::Transient)).times(n))
    }

    /// `op` on IDs starting with `id_prefix` always fails with `kind`.
    pub fn fail_permanently(&self, op: Op, id_prefix: &str, kind: ErrorKind) -> &Self {
        self.add(FaultRule::new(Some(op), id_prefix, Fault::Error(kind)))
    }

    /// `op` on IDs starting with `id_prefix` sleeps `delay` first, the next `n` times.
    pub fn delay(&self, op: Op, id_prefix: &str, delay: Duration, n: u64) -> &Self {
        self.add(FaultRule::new(Some(op), id_prefix, Fault::Delay(delay)).times(n))
    }

    /// The next `n` reads of IDs starting with `id_prefix` return at most `keep` bytes.
    pub fn truncate_reads(&self, id_prefix: &str, keep: usize, n: u64) -> &Self {
        self.add(FaultRule::new(Some(Op::Get), id_prefix, Fault::Truncate(keep)).times(n))
    }

    /// Removes every rule (counters are kept).
    pub fn clear_faults(&self) {
        self.lock_rules().clear();
    }

    /// How many times `op` was called (including calls that failed by injection).
    pub fn calls(&self, op: Op) -> u64 {
        self.calls[op.index()].load(Ordering::Relaxed)
    }

    /// Total calls over all operations.
    pub fn total_calls(&self) -> u64 {
        Op::ALL.iter().map(|o| self.calls(*o)).sum()
    }

    /// How many errors and truncations were injected (delays are not counted).
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn lock_rules(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the call, picks the faults for it (consuming their budgets), returns the total
    /// delay and the first error/truncation.
    fn plan(&self, op: Op, target: &str) -> (Duration, Option<Fault>) {
        self.calls[op.index()].fetch_add(1, Ordering::Relaxed);
        let mut delay = Duration::ZERO;
        let mut chosen = None;
        for rule in self.lock_rules().iter_mut() {
            if !rule.matches(op, target) {
                continue;
            }
            let fires = match rule.fault {
                Fault::Delay(d) => {
                    delay += d;
                    true
                }
                Fault::Truncate(_) if op != Op::Get => false,
                Fault::Error(_) | Fault::Truncate(_) if chosen.is_none() => {
                    chosen = Some(rule.fault.clone());
                    true
                }
                Fault::Error(_) | Fault::Truncate(_) => false,
            };
            if fires {
                if let Some(n) = rule.remaining.as_mut() {
                    *n -= 1;
                }
            }
        }
        if chosen.is_some() {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        (delay, chosen)
    }

    /// Applies delays and errors; returns the truncation length if one was chosen.
    async fn before(&self, op: Op, target: &str) -> Result<Option<usize>> {
        let (delay, fault) = self.plan(op, target);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            Some(Fault::Error(kind)) => Err(Error::Storage {
                storage: self.inner.describe(),
                op: op.name(),
                target: target.to_owned(),
                kind,
                message: format!("injected {kind:?} fault"),
            }),
            Some(Fault::Truncate(n)) => Ok(Some(n)),
            Some(Fault::Delay(_)) | None => Ok(None),
        }
    }
}

#[async_trait]
impl<S: BlobStorage> BlobStorage for FaultyStorage<S> {
    async fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Bytes> {
        let truncate = self.before(Op::Get, id.as_str()).await?;
        let data = self.inner.get(id, range).await?;
        Ok(match truncate {
            Some(n) if n < data.len() => data.slice(..n),
            _ => data,
        })
    }

    async fn get_metadata(&self, id: &BlobId) -> Result<BlobMetadata> {
        self.before(Op::GetMetadata, id.as_str()).await?;
        self.inner.get_metadata(id).await
    }

    async fn put(&self, id: &BlobId, data: Bytes) -> Result<()> {
        self.before(Op::Put, id.as_str()).await?;
        self.inner.put(id, data).await
    }

    async fn delete(&self, id: &BlobId) -> Result<()> {
        self.before(Op::Delete, id.as_str()).await?;
        self.inner.delete(id).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        self.before(Op::List, prefix).await?;
        self.inner.list(prefix).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::memory::MemoryStorage;

    #[tokio::test]
    async fn transient_then_success_and_counters() {
        let f = FaultyStorage::new(MemoryStorage::default());
        let id = BlobId::new("p1");
        f.fail_transient(Op::Put, "p", 2);
        for _ in 0..2 {
            let e = f
                .put(&id, Bytes::from_static(b"a"))
                .await
                .expect_err("fault");
            assert_eq!(e.kind(), ErrorKind::Transient);
            assert!(e.to_string().contains("put p1"), "{e}");
        }
        f.put(&id, Bytes::from_static(b"a")).await.expect("third");
        assert_eq!(f.calls(Op::Put), 3);
        assert_eq!(f.injected(), 2);
        assert_eq!(f.inner().len(), 1);
        // Rules for other prefixes and ops do not fire.
        f.fail_permanently(Op::Delete, "q", ErrorKind::PermissionDenied);
        f.delete(&id).await.expect("not matching q");
        let e = f.delete(&BlobId::new("q1")).await.expect_err("denied");
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert_eq!(f.total_calls(), 5);
    }

    #[tokio::test]
    async fn truncate_and_delay() {
        let f = FaultyStorage::new(MemoryStorage::default());
        let id = BlobId::new("x");
        f.put(&id, Bytes::from_static(b"0123456789"))
            .await
            .expect("put");
        f.truncate_reads("x", 4, 1);
        f.delay(Op::Get, "", Duration::from_millis(30), 1);
        let start = tokio::time::Instant::now();
        assert_eq!(f.get(&id, None).await.expect("get").len(), 4);
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(f.get(&id, None).await.expect("get").len(), 10);
        assert_eq!(f.injected(), 1);
        f.add(FaultRule::new(None, "", Fault::Error(ErrorKind::Auth)));
        let e = f.list("").await.expect_err("auth");
        assert_eq!(e.kind(), ErrorKind::Auth);
        f.clear_faults();
        assert_eq!(f.list("").await.expect("list").len(), 1);
    }
}
