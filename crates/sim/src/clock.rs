//! The simulator's virtual clock.
//!
//! Every timed decision of the simulator (bus wire time, reply delay Td,
//! energy counting, auto-restore timers, offline windows, daily freezes) is
//! taken on this clock, never on the wall clock, so that a run can go faster
//! than real time and a test can measure bus timing exactly on the virtual
//! time line.
//!
//! Virtual time is kept in microseconds since the unix epoch: the bus timing
//! of protocol-notes §4 needs sub-millisecond precision (one byte at 9600 bps
//! is 1.15 ms).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// The longest single real-time sleep; a sleeper re-checks the clock at least
/// this often, which bounds the damage of a lost wake-up.
const REAL_SLEEP_MAX: Duration = Duration::from_secs(5);

/// A shared virtual clock with a speed factor.
///
/// `now = anchor_virtual + (real time since anchor) × speed`. Changing the
/// speed or jumping forward re-anchors the clock and wakes every sleeper, so
/// sleepers always wake at the right *virtual* instant. Speed 0 pauses the
/// clock: time then moves only by [`SimClock::advance`].
///
/// Cloning is cheap and every clone shows the same time.
#[derive(Debug, Clone)]
pub struct SimClock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// Bumped on every re-anchor so that sleepers recompute their deadline.
    changed: watch::Sender<u64>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    anchor_real: Instant,
    anchor_virtual_us: i64,
    speed: f64,
}

impl SimClock {
    /// A clock showing `start_ms` (unix milliseconds) now and running at
    /// `speed` × real time. A negative or non-finite speed is taken as 0.
    pub fn new(start_ms: i64, speed: f64) -> Self {
        let (changed, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    anchor_real: Instant::now(),
                    anchor_virtual_us: start_ms.saturating_mul(1000),
                    speed: sanitize_speed(speed),
                }),
                changed,
            }),
        }
    }

    /// A clock that starts at the current wall-clock time.
    pub fn starting_now(speed: f64) -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self::new(now_ms, speed)
    }

    fn state(&self) -> State {
        *self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Virtual now in unix microseconds.
    pub fn now_us(&self) -> i64 {
        let s = self.state();
        let real_us = s.anchor_real.elapsed().as_secs_f64() * 1e6;
        // f64 keeps microsecond precision for centuries of elapsed time.
        s.anchor_virtual_us + (real_us * s.speed) as i64
    }

    /// Virtual now in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.now_us().div_euclid(1000)
    }

    /// The speed factor (virtual seconds per real second).
    pub fn speed(&self) -> f64 {
        self.state().speed
    }

    /// Changes the speed from now on; the virtual time does not jump.
    pub fn set_speed(&self, speed: f64) {
        self.reanchor(|s, now_us| {
            s.anchor_virtual_us = now_us;
            s.speed = sanitize_speed(speed);
        });
    }

    /// Jumps the virtual clock forward by `by_ms` (negative values are
    /// ignored: meters count energy forward only, and a clock that went back
    /// would let a bus deadline pass twice).
    pub fn advance(&self, by_ms: i64) {
        let by_us = by_ms.max(0).saturating_mul(1000);
        self.reanchor(|s, now_us| s.anchor_virtual_us = now_us.saturating_add(by_us));
    }

    fn reanchor(&self, f: impl FnOnce(&mut State, i64)) {
        {
            let mut s = self
                .inner
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let real = Instant::now();
            let now_us =
                s.anchor_virtual_us + ((real - s.anchor_real).as_secs_f64() * 1e6 * s.speed) as i64;
            s.anchor_real = real;
            f(&mut s, now_us);
        }
        self.inner.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Sleeps until the virtual clock shows at least `deadline_us`.
    pub async fn sleep_until_us(&self, deadline_us: i64) {
        let mut changed = self.inner.changed.subscribe();
        loop {
            let s = self.state();
            let now_us = self.now_us();
            if now_us >= deadline_us {
                return;
            }
            if s.speed <= 0.0 {
                // Paused: only advance() or set_speed() can get us there.
                if changed.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let real_us = ((deadline_us - now_us) as f64 / s.speed).ceil();
            let real = Duration::from_micros(real_us as u64).min(REAL_SLEEP_MAX);
            tokio::select! {
                () = tokio::time::sleep(real) => {}
                r = changed.changed() => if r.is_err() { return },
            }
        }
    }

    /// Sleeps for `ms` milliseconds of virtual time.
    pub async fn sleep_ms(&self, ms: i64) {
        let deadline = self.now_us().saturating_add(ms.saturating_mul(1000));
        self.sleep_until_us(deadline).await;
    }
}

fn sanitize_speed(speed: f64) -> f64 {
    if speed.is_finite() && speed > 0.0 {
        speed
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_clock_moves_only_by_advance() {
        let c = SimClock::new(1_000_000, 0.0);
        assert_eq!(c.now_ms(), 1_000_000);
        c.advance(1500);
        assert_eq!(c.now_ms(), 1_001_500);
        c.advance(-10_000);
        assert_eq!(c.now_ms(), 1_001_500);
    }

    #[tokio::test]
    async fn paused_sleeper_wakes_on_advance() {
        let c = SimClock::new(0, 0.0);
        let c2 = c.clone();
        let t = tokio::spawn(async move { c2.sleep_ms(60_000).await });
        tokio::task::yield_now().await;
        assert!(!t.is_finished());
        c.advance(60_000);
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("sleeper woke")
            .expect("no panic");
    }

    #[tokio::test]
    async fn fast_clock_sleeps_less_real_time() {
        let c = SimClock::new(0, 1000.0);
        let real = Instant::now();
        c.sleep_ms(2_000).await;
        // 2 virtual seconds at 1000x are 2 real ms; allow generous slack.
        assert!(real.elapsed() < Duration::from_millis(1_000));
        assert!(c.now_ms() >= 2_000);
    }
}
