//! Binding a meter (S6–S8) and the guessing protection of its six-digit
//! password (reliability.md §4.4).
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
//! "No such meter" and "wrong password" give the same message and run the
//! same password hash, so neither the text nor the timing tells them apart
//! (ASVS 6.3.8).

use super::buy::AreaOption;
use super::{Acting, Ctx, PageResult, Posted, Shell, Tab, area_name, csrf_forms, html, see};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use serde::Deserialize;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;
use store::students::{AttemptKey, Failures};

const MINUTE_MS: i64 = 60_000;
/// Most meters one student may bind (S8 wants several; a bound keeps a
/// hijacked account from collecting a building's meters).
pub const BINDINGS_MAX: usize = 8;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

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

/// The client address of the request (from the connection; dormwatt is
/// served directly or behind a proxy that the operator configures to keep
/// the address, so forwarded headers are not trusted).
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string()),
        ))
    }
}

/// How long `student` must wait before the password attempt `attempt_id`
/// (already recorded, see [`store::students::record_attempt`]) on `address`
/// from `ip` may be checked (0: go ahead). `binder`: the student is already
/// bound to this meter (changing its password), exempt from the per-meter
/// rate. Used by binding and by changing a meter's password.
pub async fn throttle_wait_ms(
    state: &AppState,
    student_id: i64,
    address: &str,
    ip: &str,
    binder: bool,
    attempt_id: i64,
    now_ms: i64,
) -> store::Result<i64> {
    let db = state.db();
    let f = |key, rule: Rule| async move {
        let n = store::students::failures(db, key, now_ms - rule.window_ms, attempt_id).await?;
        Ok::<_, store::Error>(rule.remaining_ms(n, now_ms))
    };
    let mut wait = f(
        AttemptKey::MeterStudent(address, student_id),
        METER_STUDENT_RULE,
    )
    .await?
    .max(f(AttemptKey::Student(student_id), STUDENT_RULE).await?)
    .max(f(AttemptKey::Ip(ip), IP_RULE).await?);
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

/// Records an attempt before its password is checked and applies the
/// throttle: `Err(wait_ms)` (the attempt is removed again) or `Ok(id)` to
/// settle with [`store::students::settle_attempt`] after the check.
pub async fn begin_attempt(
    state: &AppState,
    student_id: i64,
    address: &str,
    ip: &str,
    binder: bool,
    now_ms: i64,
) -> store::Result<Result<i64, i64>> {
    let id = store::students::record_attempt(
        state.db(),
        &store::students::Attempt {
            student_id,
            meter_address: address,
            client_ip: ip,
            ok: false,
        },
        now_ms,
    )
    .await?;
    let wait = throttle_wait_ms(state, student_id, address, ip, binder, id, now_ms).await?;
    if wait > 0 {
        store::students::forget_attempt(state.db(), id).await?;
        tracing::warn!(
            student.id = student_id,
            wait_ms = wait,
            "password attempt throttled"
        );
        return Ok(Err(wait));
    }
    Ok(Ok(id))
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

/// A wait in words, as long as it really is (issue 11 item 13): seconds
/// under a minute, whole minutes (rounded up) under two hours, else hours.
pub fn fmt_wait(lang: Lang, ms: i64) -> String {
    let s = (ms + 999) / 1000;
    if s < 60 {
        return lang.t1("wait-seconds", "n", s.max(1));
    }
    let min = (ms + MINUTE_MS - 1) / MINUTE_MS;
    if min >= 120 {
        lang.t1("wait-hours", "n", (min + 59) / 60)
    } else {
        lang.t1("wait-minutes", "n", min)
    }
}

/// "Too many attempts; try again in …".
pub fn too_many_attempts(lang: Lang, wait_ms: i64) -> String {
    lang.t1("too-many-attempts", "wait", fmt_wait(lang, wait_ms))
}

/// Query of the bind page.
#[derive(Debug, Deserialize)]
pub struct BindQuery {
    first: Option<u8>,
}

/// The bind form.
#[derive(Debug, Deserialize, Default)]
pub struct BindForm {
    csrf: String,
    area_id: i64,
    meter: String,
    password: String,
    make_default: Option<String>,
}
csrf_forms!(BindForm);

/// `GET /bind`.
pub async fn page(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<BindQuery>,
) -> PageResult {
    let has_any = !store::students::bindings(state.db(), ctx.student.id)
        .await?
        .is_empty();
    render_form(
        &state,
        &ctx,
        q.first == Some(1) && !has_any,
        None,
        &BindForm::default(),
    )
    .await
}

/// The bind page.
#[derive(Template)]
#[template(path = "bind.html")]
struct BindPage<'a> {
    l: Lang,
    shell: Shell<'a>,
    first: bool,
    snapshot: bool,
    error: Option<String>,
    areas: Vec<AreaOption>,
    meter: String,
    /// In the demo: real meter numbers of the demo campus to try.
    demo_meters: Vec<DemoMeter>,
}

/// A meter of the demo campus offered on the bind page (issue 11 item 4).
struct DemoMeter {
    address: String,
    place: String,
}

/// Demo meters offered per area.
const DEMO_METERS_PER_AREA: usize = 2;

/// In the demo, a few meters of the reference campus that exist in this
/// database (checked, so a changed seed never offers a dead number).
async fn demo_meters(state: &AppState, l: Lang) -> store::Result<Vec<DemoMeter>> {
    if !state.settings().demo_login {
        return Ok(Vec::new());
    }
    let plan = domain::campus::reference_plan();
    let mut out = Vec::new();
    for area in store::campus::areas(state.db()).await? {
        let Some(p) = plan.areas.iter().find(|a| a.code == area.code) else {
            continue;
        };
        let candidates = p
            .buildings
            .iter()
            .filter_map(|b| b.meters().next())
            .take(DEMO_METERS_PER_AREA);
        for c in candidates {
            if let Some(m) =
                store::campus::meter_by_address(state.db(), area.id.get(), c.address.as_str())
                    .await?
            {
                out.push(DemoMeter {
                    place: format!(
                        "{} · {} {}",
                        area_name(l, &m.area_name_zh, &m.area_name_en),
                        area_name(l, &m.building_name_zh, &m.building_name_en),
                        m.room
                    ),
                    address: m.address,
                });
            }
        }
    }
    Ok(out)
}

async fn render_form(
    state: &AppState,
    ctx: &Ctx,
    first: bool,
    error: Option<String>,
    prev: &BindForm,
) -> PageResult {
    let l = ctx.l;
    let areas = store::campus::areas(state.db()).await?;
    html(&BindPage {
        l,
        shell: Shell::new(l, "bind-title", Some(&ctx.student), Tab::Me, "/bind"),
        first,
        snapshot: ctx.student.is_snapshot,
        error,
        areas: areas
            .iter()
            .map(|a| AreaOption {
                id: a.id.get(),
                name: area_name(l, &a.name_zh, &a.name_en).to_owned(),
                selected: a.id.get() == prev.area_id,
            })
            .collect(),
        meter: prev.meter.clone(),
        demo_meters: demo_meters(state, l).await?,
    })
}

/// `POST /bind`.
pub async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Acting(Posted { ctx, form: f }): Acting<BindForm>,
) -> PageResult {
    let l = ctx.l;
    let student = &ctx.student;
    let Ok(address) = domain::MeterAddress::parse(&f.meter) else {
        return render_form(&state, &ctx, false, Some(l.t("bind-not-12-digits")), &f).await;
    };
    let address = address.as_str().to_owned();
    let bound = store::students::bindings(state.db(), student.id).await?;
    if bound.len() >= BINDINGS_MAX && !bound.iter().any(|b| b.address == address) {
        return render_form(&state, &ctx, false, Some(too_many(l)), &f).await;
    }
    let now = store::now_ms();
    let binder = bound.iter().any(|b| b.address == address);
    let attempt = match begin_attempt(&state, student.id, &address, &ip, binder, now).await? {
        Ok(id) => id,
        Err(wait) => {
            let msg = too_many_attempts(l, wait);
            return render_form(&state, &ctx, false, Some(msg), &f).await;
        }
    };
    let secret = store::students::meter_secret(state.db(), f.area_id, &address).await?;
    let ok = verify_password(
        f.password.clone(),
        secret.as_ref().map(|s| s.password_hash.clone()),
    )
    .await;
    if ok {
        store::students::settle_attempt(state.db(), attempt, true).await?;
    }
    let (true, Some(secret)) = (ok, secret) else {
        tracing::info!(student.id = student.id, "bind attempt failed");
        return render_form(&state, &ctx, false, Some(l.t("bind-wrong")), &f).await;
    };
    let result = store::students::bind(
        state.db(),
        student.id,
        secret.meter_id,
        f.make_default.is_some(),
        BINDINGS_MAX,
        &store::students::BindAlert {
            title: "电表有新用户绑定 / Someone bound your meter",
            body: "另一位微信用户刚刚绑定了您的电表。如果不是您的室友，请尽快修改电表验证密码：修改后，未验证新密码的其他绑定者会被解除绑定。\
                   / Another WeChat user has just bound your meter. If it was not a roommate, change the meter's verification password now: everyone else bound to it who does not know the new one is then unbound.",
        },
        now,
    )
    .await?;
    let store::students::BindResult::Bound(outcome) = result else {
        return render_form(&state, &ctx, false, Some(too_many(l)), &f).await;
    };
    tracing::info!(
        student.id = student.id,
        meter.id = secret.meter_id,
        binding.id = outcome.binding_id,
        others_told = outcome.others_told,
        "meter bound"
    );
    // A meter bound as the default opens on the overview; another one is
    // confirmed in "my meters", where it is listed (issue 11 item 12).
    if f.make_default.is_some() {
        see("/overview?bound=1")
    } else {
        see("/me/meters?done=bound")
    }
}

fn too_many(lang: Lang) -> String {
    lang.t1("bind-too-many", "max", BINDINGS_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_said_as_they_are() {
        let zh = Lang::ZH;
        assert_eq!(
            too_many_attempts(zh, 31_000),
            "尝试次数过多，请 31 秒后再试。"
        );
        assert_eq!(
            too_many_attempts(zh, 90_000),
            "尝试次数过多，请 2 分钟后再试。"
        );
        assert_eq!(
            too_many_attempts(zh, 3 * HOUR_MS),
            "尝试次数过多，请 3 小时后再试。"
        );
        let en = Lang::parse("en").expect("en");
        assert_eq!(
            too_many_attempts(en, 1_000),
            "Too many attempts; try again in 1 second."
        );
        assert_eq!(
            too_many_attempts(en, 60_000),
            "Too many attempts; try again in 1 minute."
        );
    }

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
