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

use super::layout::{Shell, Tab, render};
use super::{CsrfField, Esc, PageError, PageResult, area_name};
use crate::AppState;
use crate::i18n::Lang;
use crate::session::CurrentStudent;
use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use std::convert::Infallible;
use std::fmt::Write as _;
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

/// A wait in words.
pub fn fmt_wait(lang: Lang, ms: i64) -> String {
    let min = (ms + MINUTE_MS - 1) / MINUTE_MS;
    if min >= 120 {
        let h = (min + 59) / 60;
        match lang {
            Lang::Zh => format!("{h} 小时"),
            Lang::En => format!("{h} hours"),
        }
    } else {
        match lang {
            Lang::Zh => format!("{} 分钟", min.max(1)),
            Lang::En => format!("{} minute(s)", min.max(1)),
        }
    }
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

/// `GET /bind`.
pub async fn page(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
    Query(q): Query<BindQuery>,
) -> PageResult {
    let has_any = !store::students::bindings(state.db(), student.id)
        .await?
        .is_empty();
    render_form(
        &state,
        lang,
        &student,
        q.first == Some(1) && !has_any,
        None,
        &BindForm::default(),
    )
    .await
}

async fn render_form(
    state: &AppState,
    lang: Lang,
    student: &CurrentStudent,
    first: bool,
    error: Option<&str>,
    prev: &BindForm,
) -> PageResult {
    let l = lang;
    let areas = store::campus::areas(state.db()).await?;
    let mut b = String::with_capacity(8192);
    if first {
        let _ = write!(
            b,
            "<div class=warnbox id=first-bind>{}</div>",
            l.t(
                "要正常使用，需要绑定电表。请填写下面的信息完成绑定。",
                "To use the service, bind your room's meter first: fill in the form below."
            )
        );
    }
    if student.is_snapshot {
        let _ = write!(
            b,
            "<div class=errbox>{}</div>",
            l.t(
                "当前为微信快照页身份，只能浏览，不能绑定电表或购电。请在微信中打开本页面。",
                "You are viewing a WeChat snapshot page: you can look, but not bind or pay. Open this page inside WeChat."
            )
        );
    }
    if let Some(e) = error {
        let _ = write!(b, "<div class=errbox id=bind-error>{}</div>", Esc(e));
    }
    let _ = write!(
        b,
        "<form class=card method=post action=\"/bind\">{csrf}<label for=area>{area}</label><select id=area name=area_id>",
        csrf = CsrfField(&student.csrf_token),
        area = l.t("所属区域", "Area (school)"),
    );
    for a in &areas {
        let _ = write!(
            b,
            "<option value=\"{}\"{}>{}</option>",
            a.id,
            if a.id == prev.area_id {
                " selected"
            } else {
                ""
            },
            Esc(area_name(l, &a.name_zh, &a.name_en))
        );
    }
    let _ = write!(
        b,
        "</select><label for=meter>{mlabel}</label>\
         <input type=text id=meter name=meter inputmode=numeric autocomplete=off maxlength=20 required \
          placeholder=\"{mph}\" value=\"{mval}\">\
         <details id=meter-help><summary>{how}</summary>{help}{svg}</details>\
         <label for=password>{plabel}</label>\
         <input type=password id=password name=password inputmode=numeric autocomplete=off maxlength=6 required placeholder=\"{pph}\">\
         <p class=muted>{pnote}</p>\
         <label class=check><input type=checkbox name=make_default value=1 checked>{mdef}</label>\
         <button class=btn type=submit id=bind-submit>{submit}</button></form>",
        mlabel = l.t("电表编号", "Meter number"),
        mph = l.t("12 位数字", "12 digits"),
        mval = Esc(&prev.meter),
        how = l.t("如何获取？", "How do I find my meter number?"),
        help = l.t(
            "<p>电表编号印在电表正面的铭牌上，标有“表号”或“No.”，共 12 位数字（见下图红框）。也可以向宿管或后勤服务大厅查询。</p>",
            "<p>The meter number is printed on the nameplate on the front of your room's meter, after “表号” or “No.”: 12 digits (the red box below). The dorm office or the service hall can also tell you.</p>"
        ),
        svg = NAMEPLATE_SVG,
        plabel = l.t("验证密码", "Verification password"),
        pph = l.t("6 位数字", "6 digits"),
        pnote = l.t(
            "验证密码默认为 6 个 0（000000），绑定后请及时修改。",
            "The verification password is 000000 by default; change it after binding."
        ),
        mdef = l.t("设为默认电表", "Make this my default meter"),
        submit = l.t("绑定电表", "Bind meter"),
    );
    let _ = write!(
        b,
        "<p class=muted>{}</p>",
        l.t(
            "同一宿舍的同学可以绑定同一块电表；有人新绑定时，已绑定的同学会收到消息。",
            "Roommates can bind the same meter; its existing binders get a message when someone new binds it."
        )
    );
    Ok(render(
        &Shell {
            lang,
            title: l.t("绑定电表", "Bind a meter"),
            student: Some(student),
            tab: Tab::Me,
            here: "/bind",
        },
        &b,
    )
    .into_response())
}

/// `POST /bind`.
pub async fn submit(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
    ClientIp(ip): ClientIp,
    Form(f): Form<BindForm>,
) -> PageResult {
    let l = lang;
    student.check_csrf(&f.csrf)?;
    if !student.may_act() {
        return Err(PageError::Snapshot);
    }
    let Ok(address) = domain::MeterAddress::parse(&f.meter) else {
        let msg = l.t(
            "电表编号为 12 位数字，请检查后重新输入。",
            "A meter number has 12 digits; please check it.",
        );
        return render_form(&state, lang, &student, false, Some(msg), &f).await;
    };
    let address = address.as_str().to_owned();
    let bound = store::students::bindings(state.db(), student.id).await?;
    if bound.len() >= BINDINGS_MAX && !bound.iter().any(|b| b.address == address) {
        return render_form(&state, lang, &student, false, Some(&too_many(lang)), &f).await;
    }
    let now = store::now_ms();
    let binder = bound.iter().any(|b| b.address == address);
    let attempt = match begin_attempt(&state, student.id, &address, &ip, binder, now).await? {
        Ok(id) => id,
        Err(wait) => {
            let msg = match lang {
                Lang::Zh => format!("尝试次数过多，请 {} 后再试。", fmt_wait(lang, wait)),
                Lang::En => format!("Too many attempts; try again in {}.", fmt_wait(lang, wait)),
            };
            return render_form(&state, lang, &student, false, Some(&msg), &f).await;
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
        let msg = l.t(
            "电表编号或验证密码错误，请检查后重试。",
            "Wrong meter number or verification password; please check and try again.",
        );
        return render_form(&state, lang, &student, false, Some(msg), &f).await;
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
        return render_form(&state, lang, &student, false, Some(&too_many(lang)), &f).await;
    };
    tracing::info!(
        student.id = student.id,
        meter.id = secret.meter_id,
        binding.id = outcome.binding_id,
        others_told = outcome.others_told,
        "meter bound"
    );
    Ok(Redirect::to("/overview?bound=1").into_response())
}

fn too_many(lang: Lang) -> String {
    match lang {
        Lang::Zh => format!("最多可绑定 {BINDINGS_MAX} 块电表，请先在“我的电表”中解除不用的电表。"),
        Lang::En => {
            format!("You can bind at most {BINDINGS_MAX} meters; unbind one in “My meters” first.")
        }
    }
}

/// A picture of a meter's nameplate with the number boxed in red: where to
/// look, drawn inline so it costs no extra request.
const NAMEPLATE_SVG: &str = r##"<svg class=chart viewBox="0 0 320 200" role=img aria-label="meter nameplate" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif"><rect x="40" y="6" width="240" height="188" rx="12" fill="#f5f5f5" stroke="#999"/><rect x="70" y="22" width="180" height="42" rx="4" fill="#1e3a2f"/><text x="160" y="52" fill="#7CFC9A" font-size="22" text-anchor="middle" font-family="monospace">0123.45 kWh</text><text x="160" y="84" font-size="11" text-anchor="middle" fill="#333">单相费控智能电能表 DDSY</text><text x="160" y="100" font-size="10" text-anchor="middle" fill="#666">220V 10(40)A 50Hz 1600imp/kWh</text><rect x="58" y="112" width="204" height="30" rx="4" fill="none" stroke="#fa5151" stroke-width="3"/><text x="160" y="132" font-size="14" text-anchor="middle" fill="#111" font-family="monospace">表号 No. 0000 1234 5678</text><text x="160" y="162" font-size="10" text-anchor="middle" fill="#666">RS485 · 恶性负载识别</text><circle cx="90" cy="178" r="5" fill="#07c160"/><circle cx="110" cy="178" r="5" fill="#fa5151"/><path d="M290 127 L268 127" stroke="#fa5151" stroke-width="3"/><path d="M268 127 l8 -5 v10z" fill="#fa5151"/></svg>"##;

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
