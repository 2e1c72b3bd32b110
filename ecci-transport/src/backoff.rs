//! Reconnect delays: exponential with jitter, and the small random source behind the jitter
//! and client ids (no `rand` dependency for so little: splitmix64 seeded by getrandom).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::BackoffConfig;

/// A process-wide, non-cryptographic random number: splitmix64 over a counter, so calls in
/// one process never repeat, seeded by [`seed`] so that processes differ.
pub(crate) fn random_u64() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(seed);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut x = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// 64 bits that differ between processes, from the OS random source (getrandom). The clock
/// and the process id would not do: every container runs as pid 1 and many start in the
/// same instant, and colliding client ids make the broker kick one client off for the
/// other. Should the OS source fail, std's `RandomState` (keyed from the same source at
/// startup, or from its own fallback) hashes the clock instead.
fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one((nanos, std::process::id()))
}

/// The delays between attempts: exponential growth from [`BackoffConfig::initial`] to
/// [`BackoffConfig::max`], each delay less a random part of up to
/// [`BackoffConfig::jitter`] of it, so that clients cut off together do not all come back
/// in the same instant. The MQTT reconnects and `ecci-files`' HTTP retries both use it.
///
/// A silly configuration never panics: a multiplier below 1 (or NaN) counts as 1, a
/// growth past [`Duration`]'s range stops at the cap, a jitter outside `0.0..=1.0` (or
/// NaN) is clamped (NaN counts as 0).
///
/// ```
/// use std::time::Duration;
/// use ecci_transport::{Backoff, BackoffConfig};
/// let config = BackoffConfig { jitter: 0.0, ..BackoffConfig::default() };
/// let mut backoff = Backoff::new(config);
/// assert_eq!(backoff.next_delay(), Duration::from_millis(100));
/// assert_eq!(backoff.next_delay(), Duration::from_millis(200));
/// backoff.reset();
/// assert_eq!(backoff.next_delay(), Duration::from_millis(100));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    next: Duration,
}

impl Backoff {
    /// Starts at `config.initial`.
    pub fn new(config: BackoffConfig) -> Backoff {
        Backoff {
            next: config.initial,
            config,
        }
    }

    /// Back to the first delay, after a success (a connection, or progress).
    pub fn reset(&mut self) {
        self.next = self.config.initial;
    }

    /// Jumps to the longest delay, after a failure that retrying soon cannot cure.
    pub fn jump_to_max(&mut self) {
        self.next = self.config.max;
    }

    /// The delay before the next attempt: the current step, less up to `jitter` of it.
    pub fn next_delay(&mut self) -> Duration {
        let max = self.config.max;
        let step = self.next.min(max);
        let grown = step.as_secs_f64() * self.config.multiplier.max(1.0);
        self.next = Duration::try_from_secs_f64(grown).map_or(max, |d| d.min(max));
        let jitter = match self.config.jitter {
            j if j.is_nan() => 0.0,
            j => j.clamp(0.0, 1.0),
        };
        let r = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
        // Through f64 a step near `Duration::MAX` may round past it: keep the step then.
        Duration::try_from_secs_f64(step.as_secs_f64() * (1.0 - jitter * r))
            .map_or(step, |d| d.min(step))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_below_the_step() {
        let config = BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            multiplier: 2.0,
            jitter: 0.5,
        };
        let mut b = Backoff::new(config);
        let steps = [100, 200, 400, 800, 1000, 1000];
        for step in steps {
            let d = b.next_delay();
            let step = Duration::from_millis(step);
            assert!(d <= step && d >= step / 2, "{d:?} vs {step:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        b.jump_to_max();
        assert!(b.next_delay() >= Duration::from_millis(500));
    }

    #[test]
    fn silly_configs_never_panic() {
        for (multiplier, jitter) in [
            (f64::NAN, f64::NAN),
            (f64::INFINITY, 2.0),
            (1e300, -1.0),
            (-3.0, f64::INFINITY),
        ] {
            let mut b = Backoff::new(BackoffConfig {
                initial: Duration::from_millis(10),
                max: Duration::MAX,
                multiplier,
                jitter,
            });
            for _ in 0..5 {
                assert!(b.next_delay() <= Duration::MAX);
            }
        }
        let mut flat = Backoff::new(BackoffConfig {
            multiplier: f64::NAN,
            jitter: f64::NAN,
            ..BackoffConfig::default()
        });
        assert_eq!(flat.next_delay(), Duration::from_millis(100));
        assert_eq!(flat.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn random_numbers_differ() {
        assert_ne!(random_u64(), random_u64());
    }

    #[test]
    fn seeds_differ_even_with_the_same_pid_and_clock() {
        // Each call stands in for another process: same pid, near-same instant.
        assert_ne!(seed(), seed());
    }
}
