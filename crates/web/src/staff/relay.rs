//! Relay control in the console (issue 14 item 5, E3): trip, close,
//! keep-power (保电) and its release, with a mandatory reason, for one
//! meter (its page) or a selection of rooms (the building view, through a
//! confirmation page that names the count). A command is queued
//! (`store::relay::request`, audited in the same transaction) and the
//! head-end sends it and reads status word 3 back; its state is visible
//! on the meter's page and in the building view.
//!
//! Every meter of a request is looked up and checked against
//! `Action::ControlRelay` at its building before anything is queued: one
//! meter out of scope refuses the whole request (403, audited); bad input
//! (no reason, too long, unknown meter, no action, an empty or oversized
//! selection) is answered 422 with the reason and queues nothing.

use super::{CurrentOperator, StaffError, StaffForm, StaffResult, fmt_seconds, html_with_status};
use crate::AppState;
use crate::i18n::Lang;
use crate::pages::area_name;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect};
use domain::staff::Action;
use serde::Deserialize;
use store::lookup::MeterHit;
use store::relay::{BadReason, Command, Reason, RelayAction};

/// An action as a picker offers it.
pub struct ActionChoice {
    /// The posted value.
    pub value: &'static str,
    /// Its name in the page language.
    pub label: String,
}

/// Every relay action for a picker.
pub fn action_choices(l: Lang) -> Vec<ActionChoice> {
    RelayAction::ALL
        .into_iter()
        .map(|a| ActionChoice {
            value: a.as_str(),
            label: action_text(l, a.as_str()),
        })
        .collect()
}

/// A stored action's name in the page language.
pub fn action_text(l: Lang, a: &str) -> String {
    match a {
        "trip" => l.t("staff-relay-action-trip"),
        "close" => l.t("staff-relay-action-close"),
        "keep_power" => l.t("staff-relay-action-keep-power"),
        "keep_power_release" => l.t("staff-relay-action-keep-power-release"),
        other => other.to_owned(),
    }
}

/// A stored command state's name in the page language.
pub fn state_text(l: Lang, s: &str) -> String {
    match s {
        "queued" => l.t("staff-relay-state-queued"),
        "sending" => l.t("staff-relay-state-sending"),
        "done" => l.t("staff-relay-state-done"),
        "failed" => l.t("staff-relay-state-failed"),
        "cancelled" => l.t("staff-relay-state-cancelled"),
        other => other.to_owned(),
    }
}

/// Why a relay is open, in the page language.
pub fn reason_text(l: Lang, r: &str) -> String {
    match r {
        "balance" => l.t("staff-relay-why-balance"),
        "malicious_load" => l.t("staff-relay-why-malicious-load"),
        "over_power" => l.t("staff-relay-why-over-power"),
        "staff" => l.t("staff-relay-why-staff"),
        "lockout" => l.t("staff-relay-why-lockout"),
        other => other.to_owned(),
    }
}

/// The bulk sentence of the confirmation ("将对 12 个房间拉闸").
fn count_text(l: Lang, a: RelayAction, n: usize) -> String {
    let key = match a {
        RelayAction::Trip => "staff-relay-confirm-trip",
        RelayAction::Close => "staff-relay-confirm-close",
        RelayAction::KeepPower => "staff-relay-confirm-keep-power",
        RelayAction::KeepPowerRelease => "staff-relay-confirm-keep-power-release",
    };
    l.t1(key, "n", i64::try_from(n).unwrap_or(i64::MAX))
}

/// The posted relay form: pairs, since the meters are repeated `meter`
/// fields.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct RelayForm(Vec<(String, String)>);

impl RelayForm {
    fn get(&self, k: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.as_str())
    }

    fn all(&self, k: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

impl crate::pages::CsrfForm for RelayForm {
    fn csrf(&self) -> &str {
        self.get("csrf")
    }
}

/// A request read from its form, every meter in the operator's scope.
struct Asked {
    action: RelayAction,
    reason: Reason,
    meters: Vec<MeterHit>,
    back: String,
}

/// Where to go back to: a console path, else the building index.
fn back_of(f: &RelayForm) -> String {
    let b = f.get("back");
    if b.starts_with("/staff/") && !b.contains("//") && !b.contains('\\') && b.len() <= 200 {
        b.to_owned()
    } else {
        "/staff/buildings".to_owned()
    }
}

/// Reads and checks a posted request: `Ok(Err(text))` is bad input (the
/// page says why), `Err` a refusal (out of scope: 403, audited) or a
/// failure.
async fn read(
    state: &AppState,
    op: &CurrentOperator,
    f: &RelayForm,
) -> StaffResult<Result<Asked, String>> {
    let l = op.l;
    let Some(action) = RelayAction::parse(f.get("action")) else {
        return Ok(Err(l.t("staff-relay-bad-action")));
    };
    let reason = match Reason::parse(f.get("reason")) {
        Ok(r) => r,
        Err(BadReason::Missing) => return Ok(Err(l.t("staff-relay-bad-reason-missing"))),
        Err(BadReason::TooLong) => {
            return Ok(Err(l.t1(
                "staff-relay-bad-reason-too-long",
                "max",
                i64::try_from(store::relay::REASON_CHARS_MAX).unwrap_or(0),
            )));
        }
        Err(BadReason::Control) => return Ok(Err(l.t("staff-relay-bad-reason-control"))),
    };
    let mut ids: Vec<i64> = Vec::new();
    for m in f.all("meter") {
        let Ok(id) = crate::pages::parse_id(m.trim()) else {
            return Ok(Err(l.t("staff-relay-bad-meter")));
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
        if ids.len() > store::relay::BATCH_MAX {
            return Ok(Err(l.t1(
                "staff-relay-too-many",
                "max",
                i64::try_from(store::relay::BATCH_MAX).unwrap_or(0),
            )));
        }
    }
    if ids.is_empty() {
        return Ok(Err(l.t("staff-relay-none-selected")));
    }
    let mut meters = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(h) = store::lookup::by_id(state.db(), id).await? else {
            return Ok(Err(l.t("staff-relay-bad-meter")));
        };
        op.require(state, Action::ControlRelay, super::meters::place(&h))
            .await?;
        meters.push(h);
    }
    Ok(Ok(Asked {
        action,
        reason,
        meters,
        back: back_of(f),
    }))
}

/// A meter of the confirmation page.
struct Target {
    id: i64,
    place: String,
    address: String,
}

/// The confirmation page (or the page saying what is wrong).
#[derive(Template)]
#[template(path = "staff/relay_confirm.html")]
struct ConfirmPage {
    l: Lang,
    frame: super::Frame,
    error: Option<String>,
    sentence: String,
    action: String,
    reason: String,
    targets: Vec<Target>,
    back: String,
}

/// `POST /staff/relay/confirm`: names the count and the rooms, asks again.
pub async fn confirm(
    State(state): State<AppState>,
    StaffForm { op, form }: StaffForm<RelayForm, { Action::ControlRelay as u8 }>,
) -> StaffResult {
    let l = op.l;
    let asked = read(&state, &op, &form).await?;
    let page = match asked {
        Ok(a) => ConfirmPage {
            l,
            error: None,
            sentence: count_text(l, a.action, a.meters.len()),
            action: a.action.as_str().to_owned(),
            reason: a.reason.as_str().to_owned(),
            targets: a.meters.iter().map(|h| target(l, h)).collect(),
            back: a.back,
            frame: op.frame("staff-relay-confirm-title", "/staff/buildings"),
        },
        Err(why) => bad_page(&op, why, back_of(&form)),
    };
    let failed = page.error.is_some();
    html_with_status(&page, failed)
}

fn bad_page(op: &CurrentOperator, why: String, back: String) -> ConfirmPage {
    ConfirmPage {
        l: op.l,
        error: Some(why),
        sentence: String::new(),
        action: String::new(),
        reason: String::new(),
        targets: Vec::new(),
        back,
        frame: op.frame("staff-relay-confirm-title", "/staff/buildings"),
    }
}

fn target(l: Lang, h: &MeterHit) -> Target {
    Target {
        id: h.meter_id.get(),
        place: format!(
            "{} {}",
            area_name(l, &h.building_name_zh, &h.building_name_en),
            h.room
        ),
        address: h.address.clone(),
    }
}

/// `POST /staff/relay`: queues the command for every meter named, all or
/// nothing, and goes back (the building view says how many were queued).
pub async fn submit(
    State(state): State<AppState>,
    StaffForm { op, form }: StaffForm<RelayForm, { Action::ControlRelay as u8 }>,
) -> StaffResult {
    let a = match read(&state, &op, &form).await? {
        Ok(a) => a,
        Err(why) => return html_with_status(&bad_page(&op, why, back_of(&form)), true),
    };
    let ids: Vec<i64> = a.meters.iter().map(|h| h.meter_id.get()).collect();
    let now = state.settings().staff.clock.now_ms();
    let queued =
        store::relay::request(state.db(), &op.actor(), &ids, a.action, &a.reason, now).await?;
    tracing::info!(operator = %op.operator.name, action = a.action.as_str(), meters = queued.len(), "relay commands queued");
    let sep = if a.back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{}{sep}queued={}", a.back, queued.len())).into_response())
}

/// One command of a meter's relay history.
pub struct CommandLine {
    /// Row id.
    pub id: i64,
    /// The action, in the page language.
    pub action: String,
    /// Its reason.
    pub reason: String,
    /// Who asked.
    pub by: String,
    /// The stored state (a CSS class).
    pub state_class: &'static str,
    /// The state, in the page language.
    pub state: String,
    /// Status word 3 read back (hex) and the relay it shows.
    pub read_back: String,
    /// The last error.
    pub error: String,
    /// Asked, campus time.
    pub at: String,
    /// Last change, campus time.
    pub updated: String,
}

/// The relay part of a meter's page (`templates/staff/meter_relay.html`).
pub struct MeterRelay {
    /// Meter row id.
    pub meter: i64,
    /// The operator may queue commands for this meter.
    pub control: bool,
    /// The actions.
    pub actions: Vec<ActionChoice>,
    /// Keep-power on.
    pub keep_power: bool,
    /// Longest reason.
    pub reason_max: usize,
    /// The latest commands, newest first.
    pub commands: Vec<CommandLine>,
    /// Some command is still open (the page polls).
    pub open: bool,
}

/// Commands shown on a meter's page.
const HISTORY_ROWS: i64 = 20;

fn command_line(l: Lang, c: &Command, tz: &jiff::tz::TimeZone) -> CommandLine {
    let read_back = match (c.status_word, c.relay_closed) {
        (Some(w), Some(closed)) => format!(
            "{w:04X}H · {}",
            l.t(if closed {
                "staff-lookup-relay-closed"
            } else {
                "staff-lookup-relay-open"
            })
        ),
        (Some(w), None) => format!("{w:04X}H"),
        _ => String::new(),
    };
    CommandLine {
        id: c.id,
        action: action_text(l, c.action.as_str()),
        reason: c.reason.clone(),
        by: c.operator_name.clone(),
        state_class: c.state.as_str(),
        state: state_text(l, c.state.as_str()),
        read_back,
        error: c.error.clone().unwrap_or_default(),
        at: fmt_seconds(c.created_at_ms, tz),
        updated: fmt_seconds(c.updated_at_ms, tz),
    }
}

/// The relay part of meter `h`'s page for `op`.
pub async fn meter_relay(
    state: &AppState,
    op: &CurrentOperator,
    h: &MeterHit,
) -> StaffResult<MeterRelay> {
    let l = op.l;
    let tz = crate::pages::campus_tz(state);
    let id = h.meter_id.get();
    let commands = store::relay::of_meter(state.db(), id, HISTORY_ROWS).await?;
    Ok(MeterRelay {
        meter: id,
        control: op.may(Action::ControlRelay, super::meters::place(h)),
        actions: action_choices(l),
        keep_power: store::relay::keep_power(state.db(), id).await?,
        reason_max: store::relay::REASON_CHARS_MAX,
        open: commands.iter().any(|c| !c.state.is_final()),
        commands: commands.iter().map(|c| command_line(l, c, tz)).collect(),
    })
}

/// `GET /staff/meters/{id}/relay.json`: the meter's latest commands and
/// relay state, for the page to follow a command until it settles.
pub async fn meter_relay_json(
    State(state): State<AppState>,
    op: CurrentOperator,
    crate::pages::PathId(id): crate::pages::PathId,
) -> StaffResult {
    let Some(h) = store::lookup::by_id(state.db(), id).await? else {
        return Err(StaffError::NotFound);
    };
    op.require(&state, Action::ViewMeters, super::meters::place(&h))
        .await?;
    let l = op.l;
    let tz = crate::pages::campus_tz(&state);
    let commands = store::relay::of_meter(state.db(), id, HISTORY_ROWS).await?;
    let st = store::meters::state(state.db(), id).await?;
    let relay = match st.as_ref().and_then(|s| s.relay_closed) {
        Some(true) => l.t("staff-lookup-relay-closed"),
        Some(false) => l.t("staff-lookup-relay-open"),
        None => l.t("staff-lookup-unknown"),
    };
    let rows: Vec<serde_json::Value> = commands
        .iter()
        .map(|c| {
            let v = command_line(l, c, tz);
            serde_json::json!({
                "id": v.id, "state": v.state_class, "state_text": v.state,
                "read_back": v.read_back, "error": v.error, "updated": v.updated,
            })
        })
        .collect();
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({
            "relay": relay,
            "open": commands.iter().any(|c| !c.state.is_final()),
            "commands": rows,
        })),
    )
        .into_response())
}
