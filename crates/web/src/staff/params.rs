//! Meter parameters in the console (issue 14 item 6 part 4, E4):
//! `/staff/policy/params`, linked from the campus policy page.
//!
//! An operator who may [`Action::ManagePolicy`] at a building picks it and
//! the values (power limit W, malicious-load step W, power-factor
//! threshold; blank leaves one as it is), sees a confirmation naming the
//! count ("将向 120 块电表写入参数"), and queues one write per meter of the
//! building (`store::meter_params::request`, audited in the same
//! transaction). The head-end writes and reads back (headend::params); the
//! page lists the building's latest writes per meter: queued, done, failed
//! with the meter's reply or the mismatch, cancelled. Bad input is answered
//! 422 with the reason and queues nothing; a building out of scope is 403,
//! audited.

use super::{Console, CurrentOperator, StaffForm, StaffResult, fmt_seconds, html_with_status};
use crate::AppState;
use crate::i18n::Lang;
use crate::pages::area_name;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use domain::staff::{Action, Place};
use serde::Deserialize;
use store::meter_params::{BadParams, ParamCommand, ParamSet};
use store::relay::CommandState;

/// Writes listed on the page.
const RESULT_ROWS: i64 = 500;

/// The posted form; every field may be missing (then refused as bad input).
#[derive(Debug, Deserialize)]
pub struct ParamsForm {
    csrf: String,
    #[serde(default)]
    building_id: String,
    #[serde(default)]
    power_limit_w: String,
    #[serde(default)]
    malicious_step_w: String,
    /// `0.850`: up to three decimals.
    #[serde(default)]
    malicious_pf: String,
}
crate::pages::csrf_forms!(ParamsForm);

/// The page's query: the building shown, and how many were just queued.
#[derive(Debug, Default, Deserialize)]
pub struct ParamsQuery {
    #[serde(default)]
    building_id: Option<i64>,
    #[serde(default)]
    queued: Option<usize>,
}

/// Whole watts; `Ok(None)` when blank.
fn parse_watts(s: &str) -> Result<Option<i64>, ()> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    s.parse().map(Some).map_err(|_| ())
}

/// A power factor `0.850` in thousandths; `Ok(None)` when blank.
pub fn parse_pf_milli(s: &str) -> Result<Option<i64>, ()> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.len() != 1
        || frac.len() > 3
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(());
    }
    let mut f: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| ())?
    };
    for _ in frac.len()..3 {
        f *= 10;
    }
    let w: i64 = whole.parse().map_err(|_| ())?;
    Ok(Some(w * 1000 + f))
}

fn bad_text(l: Lang, b: BadParams) -> String {
    l.t(match b {
        BadParams::Empty => "staff-params-bad-empty",
        BadParams::PowerLimit => "staff-params-bad-limit",
        BadParams::Step => "staff-params-bad-step",
        BadParams::PowerFactor => "staff-params-bad-pf",
    })
}

/// A building in the picker.
struct BuildingChoice {
    id: i64,
    name: String,
    selected: bool,
}

/// One write as listed.
struct ResultRow {
    meter: i64,
    place: String,
    address: String,
    state_class: &'static str,
    state: String,
    wanted: String,
    read: String,
    error: String,
    updated: String,
}

fn set_text(p: &ParamSet) -> String {
    let mut out = Vec::new();
    if let Some(w) = p.power_limit_w {
        out.push(format!("{w} W"));
    }
    if let Some(w) = p.malicious_step_w {
        out.push(format!("Δ{w} W"));
    }
    if let Some(m) = p.malicious_pf_milli {
        out.push(format!("PF {}.{:03}", m / 1000, m % 1000));
    }
    out.join(" · ")
}

/// The page: form, confirmation, or results.
#[derive(Template)]
#[template(path = "staff/policy_params.html")]
struct ParamsPage {
    l: Lang,
    frame: super::Frame,
    error: Option<String>,
    notice: Option<String>,
    buildings: Vec<BuildingChoice>,
    /// The confirmation step: the sentence naming the count.
    confirm: Option<String>,
    building_id: i64,
    power_limit_w: String,
    malicious_step_w: String,
    malicious_pf: String,
    rows: Vec<ResultRow>,
}

/// A building the operator may manage, with its place.
async fn building_place(state: &AppState, building_id: i64) -> StaffResult<Option<Place>> {
    Ok(store::lookup::buildings(state.db())
        .await?
        .into_iter()
        .find(|b| b.id == building_id)
        .map(|b| {
            Place::Building(
                domain::AreaId::new(b.area_id),
                domain::BuildingId::new(b.id),
            )
        }))
}

async fn render(
    state: &AppState,
    op: &CurrentOperator,
    building_id: Option<i64>,
    form: Option<&ParamsForm>,
    error: Option<String>,
    notice: Option<String>,
    confirm: Option<String>,
) -> StaffResult {
    let l = op.l;
    let mut buildings: Vec<BuildingChoice> = store::lookup::buildings(state.db())
        .await?
        .into_iter()
        .filter(|b| {
            op.may(
                Action::ManagePolicy,
                Place::Building(
                    domain::AreaId::new(b.area_id),
                    domain::BuildingId::new(b.id),
                ),
            )
        })
        .map(|b| BuildingChoice {
            id: b.id,
            name: area_name(l, &b.name_zh, &b.name_en).to_owned(),
            selected: Some(b.id) == building_id,
        })
        .collect();
    buildings.sort_by(|a, b| domain::natural::natural_cmp(&a.name, &b.name));
    let shown = building_id.filter(|id| buildings.iter().any(|b| b.id == *id));
    let mut rows = Vec::new();
    if let Some(b) = shown {
        let tz = crate::pages::campus_tz(state);
        let cmds: Vec<ParamCommand> =
            store::meter_params::of_building(state.db(), b, RESULT_ROWS).await?;
        for c in &cmds {
            let hit = store::lookup::by_id(state.db(), c.meter_id).await?;
            rows.push(ResultRow {
                meter: c.meter_id,
                place: hit
                    .as_ref()
                    .map(|h| {
                        format!(
                            "{} {}",
                            area_name(l, &h.building_name_zh, &h.building_name_en),
                            h.room
                        )
                    })
                    .unwrap_or_default(),
                address: hit.map(|h| h.address).unwrap_or_default(),
                state_class: c.state.as_str(),
                state: l.t(match c.state {
                    CommandState::Queued => "staff-params-state-queued",
                    CommandState::Sending => "staff-params-state-sending",
                    CommandState::Done => "staff-params-state-done",
                    CommandState::Failed => "staff-params-state-failed",
                    CommandState::Cancelled => "staff-params-state-cancelled",
                }),
                wanted: set_text(&c.wanted),
                read: set_text(&c.read),
                error: c.error.clone().unwrap_or_default(),
                updated: fmt_seconds(c.updated_at_ms, tz),
            });
        }
    }
    let failed = error.is_some();
    let field = |f: fn(&ParamsForm) -> &String| form.map(|x| f(x).clone()).unwrap_or_default();
    html_with_status(
        &ParamsPage {
            l,
            frame: op.frame("staff-params-title", "/staff/policy"),
            error,
            notice,
            buildings,
            confirm,
            building_id: shown.unwrap_or(0),
            power_limit_w: field(|f| &f.power_limit_w),
            malicious_step_w: field(|f| &f.malicious_step_w),
            malicious_pf: field(|f| &f.malicious_pf),
            rows,
        },
        failed,
    )
}

/// `GET /staff/policy/params`.
pub async fn page(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ManagePolicy as u8 }>,
    Query(q): Query<ParamsQuery>,
) -> StaffResult {
    let notice = q.queued.map(|n| {
        op.l.t1(
            "staff-params-queued",
            "n",
            i64::try_from(n).unwrap_or(i64::MAX),
        )
    });
    render(&state, &op, q.building_id, None, None, notice, None).await
}

/// A form read and checked: the building, its meters, the values.
struct Asked {
    building_id: i64,
    meters: Vec<i64>,
    params: ParamSet,
}

/// `Ok(Err(text))` is bad input; `Err` a refusal (403, audited) or failure.
async fn read(
    state: &AppState,
    op: &CurrentOperator,
    f: &ParamsForm,
) -> StaffResult<Result<Asked, String>> {
    let l = op.l;
    let Ok(building_id) = f.building_id.trim().parse::<i64>() else {
        return Ok(Err(l.t("staff-params-bad-building")));
    };
    let Some(place) = building_place(state, building_id).await? else {
        return Ok(Err(l.t("staff-params-bad-building")));
    };
    op.require(state, Action::ManagePolicy, place).await?;
    let (Ok(limit), Ok(step)) = (
        parse_watts(&f.power_limit_w),
        parse_watts(&f.malicious_step_w),
    ) else {
        return Ok(Err(l.t("staff-params-bad-number")));
    };
    let Ok(pf) = parse_pf_milli(&f.malicious_pf) else {
        return Ok(Err(l.t("staff-params-bad-pf")));
    };
    let params = ParamSet {
        power_limit_w: limit,
        malicious_step_w: step,
        malicious_pf_milli: pf,
    };
    if let Err(b) = params.validate() {
        return Ok(Err(bad_text(l, b)));
    }
    let meters = store::meter_params::meters_of_building(state.db(), building_id).await?;
    if meters.is_empty() {
        return Ok(Err(l.t("staff-params-no-meters")));
    }
    if meters.len() > store::meter_params::BATCH_MAX {
        return Ok(Err(l.t1(
            "staff-params-too-many",
            "max",
            i64::try_from(store::meter_params::BATCH_MAX).unwrap_or(0),
        )));
    }
    Ok(Ok(Asked {
        building_id,
        meters,
        params,
    }))
}

/// `POST /staff/policy/params/confirm`: names the count, asks again.
pub async fn confirm(
    State(state): State<AppState>,
    StaffForm { op, form }: StaffForm<ParamsForm, { Action::ManagePolicy as u8 }>,
) -> StaffResult {
    let building = form.building_id.trim().parse().ok();
    match read(&state, &op, &form).await? {
        Ok(a) => {
            let n = i64::try_from(a.meters.len()).unwrap_or(i64::MAX);
            let sentence = op.l.t1("staff-params-confirm-count", "n", n);
            render(
                &state,
                &op,
                Some(a.building_id),
                Some(&form),
                None,
                None,
                Some(sentence),
            )
            .await
        }
        Err(why) => render(&state, &op, building, Some(&form), Some(why), None, None).await,
    }
}

/// `POST /staff/policy/params`: queues one write per meter of the building,
/// all or nothing, then shows the building's results.
pub async fn submit(
    State(state): State<AppState>,
    StaffForm { op, form }: StaffForm<ParamsForm, { Action::ManagePolicy as u8 }>,
) -> StaffResult {
    let a = match read(&state, &op, &form).await? {
        Ok(a) => a,
        Err(why) => {
            let building = form.building_id.trim().parse().ok();
            return render(&state, &op, building, Some(&form), Some(why), None, None).await;
        }
    };
    let now = state.settings().staff.clock.now_ms();
    let queued =
        store::meter_params::request(state.db(), &op.actor(), &a.meters, &a.params, now).await?;
    tracing::info!(operator = %op.operator.name, building = a.building_id, meters = queued.len(), "meter parameter writes queued");
    Ok(Redirect::to(&format!(
        "/staff/policy/params?building_id={}&queued={}",
        a.building_id,
        queued.len()
    ))
    .into_response())
}
