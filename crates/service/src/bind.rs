//! Binding a meter (S6–S8) and the guessing protection of its six-digit
//! password (reliability.md §4.4), for the student pages and, later, the
//! staff console.
//!
//! Throttling is counted from the `bind_attempt` audit rows (docs/SECURITY.md),
//! on five keys at once: the (meter number, student) pair, the meter number
//! by anyone (whether or not it exists, so throttling does not reveal which
//! numbers are real), the student, the client address, and all attempts.
//! Each key gets some free failures, then a wait up to a cap. Successes
//! never reset a count (otherwise "four wrong guesses, then re-bind my own
//! meter" repeats forever).
//!
//! A meter's strict lock-out is per (meter, student): an attacker's
//! failures lock out the attacker, not the meter's real owner. Across
//! students a meter only gets a slow fixed rate (one failure per hour after
//! ten a day), so an owner is delayed at most an hour, and students already
//! bound to the meter (changing its password) are exempt from it.
//!
//! The attempt is recorded *before* the slow hash and counted by every
//! concurrent request, so parallel requests cannot each get a guess; a
//! refused (throttled) attempt is removed again, so hammering a victim's
//! meter does not lengthen anyone's wait. A lock-out only ever blocks
//! binding, never an existing binder's purchases or views (§4.4 item 6).
//!
//! "No such meter" and "wrong password" give the same answer
//! ([`BindError::Wrong`]) and run the same password hash, so neither the
//! text nor the timing tells them apart (ASVS 6.3.8).

use crate::Service;
use crate::input::{NotTwelveDigits, meter_number};
use std::sync::OnceLock;
use store::students::{AttemptKey, Failures};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Most meters one student may bind (S8 wants several; a bound keeps a
/// hijacked account from collecting a building's meters).
pub const BINDINGS_MAX: usize = 8;

/// A throttling rule for one key.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Only failures younger than this count.
    pub window_ms: i64,
    /// Failures allowed before any wait.
    pub free: i64,
    /// The first wait; each further failure doubles it.
    pub base_ms: i64,
    /// The longest wait.
    pub cap_ms: i64,
    /// At this many failures the wait is the cap at once.
    pub hard: i64,
}

/// Per (meter number, student): the targeted attack (§4.4 item 2): 5 free,
/// then 1 min doubling to 24 h; ≥ 20 failures → 24 h each. About 45 guesses
/// a month per account, and only the guessing account is locked out.
pub const METER_STUDENT_RULE: Rule = Rule {
    window_ms: 30 * DAY_MS,
    free: 5,
    base_ms: MINUTE_MS,
    cap_ms: DAY_MS,
    hard: 20,
};
/// Per meter number, by anyone: 10 free failures a day, then one attempt
/// an hour — a slow rate across accounts, never a lock-out of its owner
/// for more than an hour. Binders of the meter are exempt.
pub const METER_RULE: Rule = Rule {
    window_ms: DAY_MS,
    free: 10,
    base_ms: HOUR_MS,
    cap_ms: HOUR_MS,
    hard: i64::MAX,
};
/// Per student: the spray attack across meters (§4.4 item 3): 10 failures
/// in 24 h disable binding for 24 h.
pub const STUDENT_RULE: Rule = Rule {
    window_ms: DAY_MS,
    free: 5,
    base_ms: 30_000,
    cap_ms: DAY_MS,
    hard: 10,
};
/// Per client address (§4.4 item 4). Gentler: a campus NAT puts many
/// students behind one address.
pub const IP_RULE: Rule = Rule {
    window_ms: DAY_MS,
    free: 10,
    base_ms: 10_000,
    cap_ms: HOUR_MS,
    hard: 100,
};
/// All attempts (§4.4 item 5): more than 300 failures in 10 minutes on the
/// whole campus is an attack in progress; binding then slows to one
/// attempt a minute until it stops (and the log says so).
pub const GLOBAL_RULE: Rule = Rule {
    window_ms: 10 * MINUTE_MS,
    free: 300,
    base_ms: MINUTE_MS,
    cap_ms: MINUTE_MS,
    hard: i64::MAX,
};

impl Rule {
    /// How long after the last failure the next attempt is allowed.
    pub fn wait_ms(&self, failures: i64) -> i64 {
        if failures < self.free {
            return 0;
        }
        if failures >= self.hard {
            return self.cap_ms;
        }
        let doublings = u32::try_from(failures - self.free)
            .unwrap_or(u32::MAX)
            .min(40);
        self.base_ms
            .saturating_mul(1_i64 << doublings)
            .min(self.cap_ms)
    }

    /// Milliseconds still to wait now (0: allowed).
    pub fn remaining_ms(&self, f: Failures, now_ms: i64) -> i64 {
        match f.last_at_ms {
            Some(last) => (last + self.wait_ms(f.count) - now_ms).max(0),
            None => 0,
        }
    }
}

/// Who is trying a meter's password, and from where.
#[derive(Debug, Clone, Copy)]
pub struct Guesser<'a> {
    /// The student.
    pub student_id: i64,
    /// The client address (the connection's peer, or what a trusted proxy forwards).
    pub ip: &'a str,
}

/// How long `who` must wait before the password attempt `attempt_id`
/// (already recorded, see [`store::students::record_attempt`]) on `address`
/// may be checked (0: go ahead). `binder`: the student is already bound to
/// this meter (changing its password), exempt from the per-meter rate.
async fn throttle_wait_ms(
    svc: &Service,
    who: Guesser<'_>,
    address: &str,
    binder: bool,
    attempt_id: i64,
    now_ms: i64,
) -> store::Result<i64> {
    let db = svc.db();
    let f = |key, rule: Rule| async move {
        let n = store::students::failures(db, key, now_ms - rule.window_ms, attempt_id).await?;
        Ok::<_, store::Error>(rule.remaining_ms(n, now_ms))
    };
    let student_id = who.student_id;
    let mut wait = f(
        AttemptKey::MeterStudent(address, student_id),
        METER_STUDENT_RULE,
    )
    .await?
    .max(f(AttemptKey::Student(student_id), STUDENT_RULE).await?)
    .max(f(AttemptKey::Ip(who.ip), IP_RULE).await?);
    if !binder {
        wait = wait.max(f(AttemptKey::Meter(address), METER_RULE).await?);
    }
    let global = f(AttemptKey::Global, GLOBAL_RULE).await?;
    if global > 0 {
        tracing::error!(
            "binding failures above the campus-wide alarm threshold: slowing all binding"
        );
    }
    Ok(wait.max(global))
}

/// A password attempt the throttle let through: settle it with
/// [`Attempt::succeeded`] once the password proved right (a failure stays
/// recorded as one).
#[derive(Debug)]
#[must_use = "a successful attempt must be settled"]
pub struct Attempt {
    id: i64,
}

impl Attempt {
    /// Records that the password was right.
    pub async fn succeeded(self, svc: &Service) -> store::Result<()> {
        store::students::settle_attempt(svc.db(), self.id, true).await
    }
}

/// Records an attempt before its password is checked and applies the
/// throttle: `Err(wait_ms)` (the attempt is removed again) or the
/// [`Attempt`] to settle after the check. Used by binding and by changing
/// a meter's password (`binder`: already bound to it).
pub async fn begin_attempt(
    svc: &Service,
    who: Guesser<'_>,
    address: &str,
    binder: bool,
    now_ms: i64,
) -> store::Result<Result<Attempt, i64>> {
    let id = store::students::record_attempt(
        svc.db(),
        &store::students::Attempt {
            student_id: who.student_id,
            meter_address: address,
            client_ip: who.ip,
            ok: false,
        },
        now_ms,
    )
    .await?;
    let wait = throttle_wait_ms(svc, who, address, binder, id, now_ms).await?;
    if wait > 0 {
        store::students::forget_attempt(svc.db(), id).await?;
        tracing::warn!(
            student.id = who.student_id,
            wait_ms = wait,
            "password attempt throttled"
        );
        return Ok(Err(wait));
    }
    Ok(Ok(Attempt { id }))
}

/// Verifies a password off the async threads (the hash is deliberately
/// slow). A missing meter is checked against a dummy hash, and a default
/// meter runs the hash too, so every answer takes about as long.
pub async fn verify_password(password: String, stored: Option<Option<String>>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY
        .get_or_init(|| domain::password::hash("135790", [7; 16]).unwrap_or_default())
        .clone();
    tokio::task::spawn_blocking(move || match stored {
        None => {
            let _ = domain::password::verify(&password, Some(&dummy));
            false
        }
        Some(None) => {
            let _ = domain::password::verify(&password, Some(&dummy));
            domain::password::verify(&password, None)
        }
        Some(Some(h)) => domain::password::verify(&password, Some(&h)),
    })
    .await
    .unwrap_or(false)
}

/// A student's request to bind a meter.
#[derive(Debug, Clone)]
pub struct BindRequest<'a> {
    /// Who, from where.
    pub who: Guesser<'a>,
    /// The area picked.
    pub area_id: i64,
    /// The meter number as typed.
    pub meter: &'a str,
    /// The meter's six-digit verification password as typed.
    pub password: &'a str,
    /// Make it the student's default meter.
    pub make_default: bool,
}

/// A meter bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The meter.
    pub meter_id: i64,
    /// The binding.
    pub binding_id: i64,
    /// Other binders of the meter who were told.
    pub others_told: u64,
}

/// Why a meter was not bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The number typed is not 12 digits.
    #[error(transparent)]
    NotTwelveDigits(#[from] NotTwelveDigits),
    /// The student already has [`BINDINGS_MAX`] other meters.
    #[error("at most {BINDINGS_MAX} meters per student")]
    TooManyMeters,
    /// Too many failed attempts: try again after this many milliseconds.
    #[error("too many attempts; wait {wait_ms} ms")]
    Throttled {
        /// How long to wait.
        wait_ms: i64,
    },
    /// No such meter in the area, or the wrong password: one answer for
    /// both on purpose.
    #[error("no such meter, or the wrong password")]
    Wrong,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Binds a meter for a student who knows its password, behind the
/// guessing protection of this module.
pub async fn bind(svc: &Service, req: &BindRequest<'_>) -> Result<Bound, BindError> {
    let address = meter_number(req.meter)?;
    let address = address.as_str();
    let student_id = req.who.student_id;
    let bound = store::students::bindings(svc.db(), student_id).await?;
    let binder = bound.iter().any(|b| b.address == address);
    if bound.len() >= BINDINGS_MAX && !binder {
        return Err(BindError::TooManyMeters);
    }
    let now = store::now_ms();
    let attempt = begin_attempt(svc, req.who, address, binder, now)
        .await?
        .map_err(|wait_ms| BindError::Throttled { wait_ms })?;
    let secret = store::students::meter_secret(svc.db(), req.area_id, address).await?;
    let ok = verify_password(
        req.password.to_owned(),
        secret.as_ref().map(|s| s.password_hash.clone()),
    )
    .await;
    let (true, Some(secret)) = (ok, secret) else {
        tracing::info!(student.id = student_id, "bind attempt failed");
        return Err(BindError::Wrong);
    };
    attempt.succeeded(svc).await?;
    let result = store::students::bind(
        svc.db(),
        student_id,
        secret.meter_id,
        req.make_default,
        BINDINGS_MAX,
        now,
    )
    .await?;
    let store::students::BindResult::Bound(outcome) = result else {
        return Err(BindError::TooManyMeters);
    };
    tracing::info!(
        student.id = student_id,
        meter.id = secret.meter_id,
        binding.id = outcome.binding_id,
        others_told = outcome.others_told,
        "meter bound"
    );
    Ok(Bound {
        meter_id: secret.meter_id,
        binding_id: outcome.binding_id,
        others_told: outcome.others_told,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_cap() {
        assert_eq!(METER_STUDENT_RULE.wait_ms(0), 0);
        assert_eq!(METER_STUDENT_RULE.wait_ms(4), 0);
        assert_eq!(METER_STUDENT_RULE.wait_ms(5), MINUTE_MS);
        assert_eq!(METER_STUDENT_RULE.wait_ms(6), 2 * MINUTE_MS);
        assert_eq!(METER_STUDENT_RULE.wait_ms(19), DAY_MS);
        assert_eq!(METER_STUDENT_RULE.wait_ms(1_000), DAY_MS);
        assert_eq!(STUDENT_RULE.wait_ms(10), DAY_MS);
        // Across students a meter only slows down, it never locks for long.
        assert_eq!(METER_RULE.wait_ms(9), 0);
        assert_eq!(METER_RULE.wait_ms(10), HOUR_MS);
        assert_eq!(METER_RULE.wait_ms(100_000), HOUR_MS);
        let f = Failures {
            count: 5,
            last_at_ms: Some(1_000),
        };
        assert_eq!(METER_STUDENT_RULE.remaining_ms(f, 1_000), MINUTE_MS);
        assert_eq!(METER_STUDENT_RULE.remaining_ms(f, 1_000 + MINUTE_MS), 0);
    }
}
