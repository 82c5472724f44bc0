//! The head-end's notion of time. Production uses the wall clock; tests and
//! the benchmark hand in the simulator's virtual clock, so timeouts, poll
//! intervals and campus days all run on the same (possibly fast) time line
//! as the simulated buses.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed sleep future.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A source of "now" and of sleeps, in unix milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now, unix ms.
    fn now_ms(&self) -> i64;
    /// Sleeps for `ms` milliseconds of this clock's time.
    fn sleep_ms(&self, ms: i64) -> Sleep<'_>;
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        store::now_ms()
    }

    fn sleep_ms(&self, ms: i64) -> Sleep<'_> {
        let d = Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0));
        Box::pin(tokio::time::sleep(d))
    }
}
