//! Binding a meter (S6–S8): the form and its answers. What a bind *does*
//! — the number check, the guessing protection of the six-digit password
//! (reliability.md §4.4), the binding and the alert to other binders — is
//! [`service::bind`]; this maps its outcomes to pages.

use super::buy::AreaOption;
use super::{Acting, Ctx, PageResult, Posted, Shell, Tab, area_name, csrf_forms, html, see};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use serde::Deserialize;
use service::bind::{BINDINGS_MAX, BindError, BindRequest, Guesser};
use std::convert::Infallible;
use std::net::SocketAddr;

pub use service::bind::verify_password;

const MINUTE_MS: i64 = 60_000;

/// The client address of the request: the connection's peer, or behind a
/// configured trusted proxy the address it forwards
/// ([`crate::server::forwarded_client`]).
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

/// [`service::bind::begin_attempt`] for a page handler (changing a meter's
/// password is throttled like binding).
pub async fn begin_attempt(
    state: &AppState,
    student_id: i64,
    address: &str,
    ip: &str,
    binder: bool,
    now_ms: i64,
) -> store::Result<Result<service::bind::Attempt, i64>> {
    let who = Guesser { student_id, ip };
    service::bind::begin_attempt(state.service(), who, address, binder, now_ms).await
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
    address: domain::MeterAddress,
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
                store::campus::meter_by_address(state.db(), area.id, &c.address).await?
            {
                out.push(DemoMeter {
                    place: super::room_place(
                        l,
                        (&m.area_name_zh, &m.area_name_en),
                        (&m.building_name_zh, &m.building_name_en),
                        &m.room,
                        " · ",
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
    let req = BindRequest {
        who: Guesser {
            student_id: ctx.student.id,
            ip: &ip,
        },
        area_id: f.area_id,
        meter: &f.meter,
        password: &f.password,
        make_default: f.make_default.is_some(),
    };
    let msg = match service::bind::bind(state.service(), &req).await {
        // A meter bound as the default opens on the overview; another one
        // is confirmed in "my meters", where it is listed (issue 11 item 12).
        Ok(_) if req.make_default => return see("/overview?bound=1"),
        Ok(_) => return see("/me/meters?done=bound"),
        Err(BindError::NotTwelveDigits(_)) => l.t("bind-not-12-digits"),
        Err(BindError::TooManyMeters) => too_many(l),
        Err(BindError::Throttled { wait_ms }) => too_many_attempts(l, wait_ms),
        Err(BindError::Wrong) => l.t("bind-wrong"),
        Err(BindError::Store(e)) => return Err(e.into()),
    };
    render_form(&state, &ctx, false, Some(msg), &f).await
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
            too_many_attempts(zh, 3 * 60 * MINUTE_MS),
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
}
