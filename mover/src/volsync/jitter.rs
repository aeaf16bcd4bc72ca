//! Start jitter: a delay before a backup touches the repository, so that the hourly jobs
//! of many applications do not all hit one NAS or bucket at `:00`.
//!
//! The delay has two parts, both opt-in (see [`super::features`]):
//! * a deterministic spread in `[0, spread)`: the first 8 bytes of SHA-256 of the snapshot
//!   identity (`user@host:path`) as a big-endian number, modulo the window in milliseconds —
//!   the same application always lands on the same offset, and different applications of a
//!   namespace land on different ones;
//! * a random part in `[0, max]` (uniform, milliseconds), new every run.
//!
//! The delay is logged before it starts, and a SIGTERM during it ends the run at once
//! (exit 143) without having touched anything.

use std::time::Duration;

use rand::Rng;
use sha2::{Digest, Sha256};

use super::Failure;
use super::features::JitterSettings;
use crate::cancel::CancellationToken;

/// The deterministic part of the delay for `identity` within `spread`.
pub fn spread_offset(identity: &str, spread: Duration) -> Duration {
    let window = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
    if window == 0 {
        return Duration::ZERO;
    }
    let digest = Sha256::digest(identity.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Duration::from_millis(u64::from_be_bytes(first) % window)
}

/// A random delay in `[0, max]`.
fn random_part(max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::thread_rng().gen_range(0..=max_ms))
}

/// Waits the jitter for `identity` (nothing when it is off), or until a stop.
pub(super) async fn wait(
    j: &JitterSettings,
    identity: &str,
    stop: &CancellationToken,
) -> Result<(), Failure> {
    if j.is_off() {
        return Ok(());
    }
    let fixed = spread_offset(identity, j.spread);
    let random = random_part(j.max_random);
    let total = fixed + random;
    println!(
        "INFO: start jitter: waiting {:.3}s before the backup ({:.3}s spread of {}s from the \
         identity {identity} + {:.3}s random of at most {}s)",
        total.as_secs_f64(),
        fixed.as_secs_f64(),
        j.spread.as_secs(),
        random.as_secs_f64(),
        j.max_random.as_secs()
    );
    tokio::select! {
        () = tokio::time::sleep(total) => Ok(()),
        () = stop.cancelled() => Err(Failure::terminated()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_stable_bounded_and_spreads() {
        let w = Duration::from_secs(60);
        let a = spread_offset("app@media:/data", w);
        assert_eq!(a, spread_offset("app@media:/data", w), "deterministic");
        let offsets: std::collections::BTreeSet<Duration> = (0..20)
            .map(|i| spread_offset(&format!("app{i}@media:/data"), w))
            .collect();
        assert!(offsets.iter().all(|d| *d < w));
        assert!(
            offsets.len() >= 18,
            "apps land on different offsets: {offsets:?}"
        );
        assert_eq!(spread_offset("x", Duration::ZERO), Duration::ZERO);
        // Known answer: sha256("app@media:/data")[..8] as big-endian, mod 60000 ms.
        let d = Sha256::digest(b"app@media:/data");
        let n = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        assert_eq!(a, Duration::from_millis(n % 60_000));
    }

    #[test]
    fn random_part_is_bounded() {
        let max = Duration::from_millis(1500);
        for _ in 0..200 {
            assert!(random_part(max) <= max);
        }
        assert_eq!(random_part(Duration::ZERO), Duration::ZERO);
    }
}
