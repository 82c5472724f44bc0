//! Meter look-up for staff (issue 13 item 3): by area and nameplate number,
//! by building and room, type-ahead (`/staff/meters/suggest`, JSON, used by
//! `staff.js`; the forms work without it), the offline meters, and one
//! meter's page. Results are limited to the operator's scope; a meter page
//! outside it is refused (403, audited).

use super::{Console, CurrentOperator, StaffError, StaffResult, fmt_seconds, html};
use crate::AppState;
use crate::i18n::Lang;
use crate::pages::area_name;
use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use domain::staff::{Action, Place};
use serde::Deserialize;
use store::lookup::MeterHit;

/// Most rows a look-up page lists.
const LIST_ROWS: usize = 200;
/// Most suggestions the type-ahead answers.
const SUGGEST_ROWS: usize = 10;
/// Fewest characters before the type-ahead looks anything up.
const SUGGEST_CHARS_MIN: usize = 2;

/// Where a meter is, for `can`.
pub fn place(h: &MeterHit) -> Place {
    Place::Building(h.area_id, h.building_id)
}

/// The look-up query: one of area + number, building + room, `q`, or `offline=1`.
#[derive(Debug, Default, Deserialize)]
pub struct FindQuery {
    #[serde(default)]
    pub(super) area: String,
    #[serde(default)]
    pub(super) number: String,
    #[serde(default)]
    pub(super) building: String,
    #[serde(default)]
    pub(super) room: String,
    #[serde(default)]
    pub(super) q: String,
    #[serde(default)]
    pub(super) offline: String,
}

/// A meter row as the lists show it.
pub struct HitView {
    /// Meter row id.
    pub id: i64,
    /// Nameplate number.
    pub address: String,
    /// Area name.
    pub area: String,
    /// Building name.
    pub building: String,
    /// Room number.
    pub room: String,
    /// Online / offline / never seen, in the page language.
    pub online: String,
    /// Last answer, campus time.
    pub last_seen: String,
}

impl HitView {
    /// A look-up row in language `l`.
    pub fn new(l: Lang, h: &MeterHit, tz: &jiff::tz::TimeZone) -> Self {
        HitView {
            id: h.meter_id.get(),
            address: h.address.clone(),
            area: area_name(l, &h.area_name_zh, &h.area_name_en).to_owned(),
            building: area_name(l, &h.building_name_zh, &h.building_name_en).to_owned(),
            room: h.room.clone(),
            online: l.t(online_key(h.online)),
            last_seen: h
                .last_seen_at_ms
                .map(|ms| fmt_seconds(ms, tz))
                .unwrap_or_default(),
        }
    }
}

fn online_key(online: Option<bool>) -> &'static str {
    match online {
        Some(true) => "staff-lookup-online",
        Some(false) => "staff-lookup-offline",
        None => "staff-lookup-never-seen",
    }
}

/// An option of a picker.
pub struct Choice {
    /// Its value.
    pub value: String,
    /// Its label.
    pub label: String,
    /// Chosen now.
    pub on: bool,
}

/// The areas of the operator's scope, for the area picker.
pub async fn area_choices(
    state: &AppState,
    op: &CurrentOperator,
    chosen: &str,
) -> StaffResult<Vec<Choice>> {
    let l = op.l;
    Ok(store::campus::areas(state.db())
        .await?
        .into_iter()
        .filter(|a| op.operator.scope.has_area(a.id))
        .map(|a| Choice {
            on: a.id.get().to_string() == chosen,
            value: a.id.get().to_string(),
            label: area_name(l, &a.name_zh, &a.name_en).to_owned(),
        })
        .collect())
}

/// The buildings the operator may look meters up in, naturally ordered.
async fn building_choices(
    state: &AppState,
    op: &CurrentOperator,
    action: Action,
    chosen: &str,
) -> StaffResult<Vec<Choice>> {
    let l = op.l;
    let areas = store::campus::areas(state.db()).await?;
    let mut v: Vec<(String, Choice)> = store::lookup::buildings(state.db())
        .await?
        .into_iter()
        .filter(|b| {
            op.may(
                action,
                Place::Building(
                    domain::AreaId::new(b.area_id),
                    domain::BuildingId::new(b.id),
                ),
            )
        })
        .map(|b| {
            let area = areas
                .iter()
                .find(|a| a.id.get() == b.area_id)
                .map(|a| area_name(l, &a.name_zh, &a.name_en).to_owned())
                .unwrap_or_default();
            let name = area_name(l, &b.name_zh, &b.name_en).to_owned();
            (
                format!("{area} {name}"),
                Choice {
                    on: b.id.to_string() == chosen,
                    value: b.id.to_string(),
                    label: format!("{area} · {name}"),
                },
            )
        })
        .collect();
    v.sort_by(|a, b| domain::natural::natural_cmp(&a.0, &b.0));
    Ok(v.into_iter().map(|(_, c)| c).collect())
}

/// What a look-up found, already limited to the scope of `action`.
pub enum Found {
    /// Nothing asked.
    Nothing,
    /// These meters.
    Hits(Vec<MeterHit>),
    /// A refusal to show (a bad number, nothing found…), a catalog text.
    Message(String),
}

/// Runs the look-up of `q` for `op` (`action`: what the rows are for).
pub async fn find(
    state: &AppState,
    op: &CurrentOperator,
    q: &FindQuery,
    action: Action,
) -> StaffResult<Found> {
    let l = op.l;
    let db = state.db();
    let hits = if q.offline == "1" {
        store::lookup::offline(db, store::lookup::ROWS_MAX).await?
    } else if !q.number.trim().is_empty() {
        let Ok(area) = q.area.trim().parse::<i64>() else {
            return Ok(Found::Message(l.t("staff-lookup-pick-area")));
        };
        let Ok(number) = service::input::meter_number(&q.number) else {
            return Ok(Found::Message(l.t("staff-lookup-bad-number")));
        };
        store::lookup::by_address(db, area, number.as_str())
            .await?
            .into_iter()
            .collect()
    } else if !q.room.trim().is_empty() {
        let Ok(building) = q.building.trim().parse::<i64>() else {
            return Ok(Found::Message(l.t("staff-lookup-pick-building")));
        };
        store::lookup::by_room(db, building, &q.room).await?
    } else if !q.q.trim().is_empty() {
        let digits = service::input::normalise_digits(&q.q);
        let area = q.area.trim().parse::<i64>().ok();
        store::lookup::suggest(db, &digits, area, store::lookup::ROWS_MAX).await?
    } else {
        return Ok(Found::Nothing);
    };
    let mine: Vec<MeterHit> = hits
        .into_iter()
        .filter(|h| op.may(action, place(h)))
        .collect();
    if mine.is_empty() {
        return Ok(Found::Message(l.t("staff-lookup-none")));
    }
    Ok(Found::Hits(mine))
}

/// The look-up page.
#[derive(Template)]
#[template(path = "staff/meters.html")]
struct MetersPage {
    l: Lang,
    frame: super::Frame,
    areas: Vec<Choice>,
    buildings: Vec<Choice>,
    number: String,
    room: String,
    q: String,
    offline: bool,
    rows: Vec<HitView>,
    truncated: bool,
    message: Option<String>,
    script: &'static str,
}

/// `GET /staff/meters`: the look-up forms and what they found.
pub async fn page(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ViewMeters as u8 }>,
    Query(q): Query<FindQuery>,
) -> StaffResult {
    let l = op.l;
    let tz = crate::pages::campus_tz(&state);
    let (rows, message, truncated) = match find(&state, &op, &q, Action::ViewMeters).await? {
        Found::Nothing => (Vec::new(), None, false),
        Found::Message(m) => (Vec::new(), Some(m), false),
        Found::Hits(h) => (
            h.iter()
                .take(LIST_ROWS)
                .map(|h| HitView::new(l, h, tz))
                .collect(),
            None,
            h.len() > LIST_ROWS,
        ),
    };
    html(&MetersPage {
        l,
        areas: area_choices(&state, &op, &q.area).await?,
        buildings: building_choices(&state, &op, Action::ViewMeters, &q.building).await?,
        number: q.number.clone(),
        room: q.room.clone(),
        q: q.q.clone(),
        offline: q.offline == "1",
        rows,
        truncated,
        message,
        frame: op.frame("staff-lookup-title", "/staff/meters"),
        script: super::JS_PATH,
    })
}

/// One suggestion of the type-ahead.
#[derive(serde::Serialize)]
struct Suggestion {
    id: i64,
    address: String,
    area_id: i64,
    label: String,
}

/// `GET /staff/meters/suggest?q=…[&area=…]`: up to 10 meters of the
/// operator's scope whose number or room starts with `q`, as JSON.
pub async fn suggest(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ViewMeters as u8 }>,
    Query(q): Query<FindQuery>,
) -> StaffResult {
    let l = op.l;
    let typed = service::input::normalise_digits(&q.q);
    let mut out = Vec::new();
    if typed.chars().count() >= SUGGEST_CHARS_MIN {
        let area = q.area.trim().parse::<i64>().ok();
        for h in store::lookup::suggest(state.db(), &typed, area, store::lookup::ROWS_MAX).await? {
            if out.len() == SUGGEST_ROWS {
                break;
            }
            if !op.may(Action::ViewMeters, place(&h)) {
                continue;
            }
            out.push(Suggestion {
                id: h.meter_id.get(),
                label: format!(
                    "{} · {} {} · {}",
                    area_name(l, &h.area_name_zh, &h.area_name_en),
                    area_name(l, &h.building_name_zh, &h.building_name_en),
                    h.room,
                    h.address
                ),
                address: h.address,
                area_id: h.area_id.get(),
            });
        }
    }
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(out)).into_response())
}

/// A recent order as a meter's page lists it.
pub struct OrderLine {
    /// Order row id.
    pub id: i64,
    /// Order number.
    pub no: String,
    /// kWh.
    pub kwh: String,
    /// Amount, yuan.
    pub amount: String,
    /// Channel, in the page language.
    pub channel: String,
    /// State, in the page language.
    pub state: String,
    /// The stored state (a CSS class).
    pub state_class: String,
    /// Created, campus time.
    pub at: String,
}

/// A meter's recent orders in language `l`.
pub async fn order_lines(
    state: &AppState,
    l: Lang,
    meter: domain::MeterId,
    limit: i64,
) -> StaffResult<Vec<OrderLine>> {
    let tz = crate::pages::campus_tz(state);
    Ok(store::lookup::recent_orders(state.db(), meter, limit)
        .await?
        .into_iter()
        .map(|o| OrderLine {
            id: o.id.get(),
            no: o.out_trade_no.clone(),
            kwh: o.kwh.to_string(),
            amount: o.amount_fen.to_string(),
            channel: l.t(match o.channel {
                domain::order::Channel::Wechat => "staff-counter-channel-wechat",
                domain::order::Channel::Counter => "staff-counter-channel-counter",
            }),
            state: l.t(&format!("order-state-{}", o.state.as_str())),
            state_class: o.state.as_str().to_owned(),
            at: fmt_seconds(o.created_at_ms, tz),
        })
        .collect())
}

/// What a meter's panel shows (the meter page and the counter).
pub struct MeterPanel {
    /// Meter row id.
    pub id: i64,
    /// Nameplate number.
    pub address: String,
    /// Area name.
    pub area: String,
    /// Building name.
    pub building: String,
    /// Room number.
    pub room: String,
    /// Balance, kWh, or a dash.
    pub balance: String,
    /// Online state, in the page language.
    pub online: String,
    /// Relay state, in the page language.
    pub relay: String,
    /// Last read, campus time.
    pub last_read: String,
    /// Price, yuan per kWh.
    pub price: String,
}

/// The panel of meter `h`.
pub async fn panel(state: &AppState, l: Lang, h: &MeterHit) -> StaffResult<MeterPanel> {
    let tz = crate::pages::campus_tz(state);
    let info = store::campus::meter_by_id(state.db(), h.meter_id)
        .await?
        .ok_or(StaffError::NotFound)?;
    let st = store::meters::state(state.db(), h.meter_id.get()).await?;
    let relay = match st.as_ref().and_then(|s| s.relay_closed) {
        Some(true) => l.t("staff-lookup-relay-closed"),
        Some(false) => l.t("staff-lookup-relay-open"),
        None => l.t("staff-lookup-unknown"),
    };
    let balance = info
        .remaining_centikwh
        .map_or_else(|| "—".to_owned(), |c| c.to_string());
    Ok(MeterPanel {
        id: h.meter_id.get(),
        address: h.address.clone(),
        area: area_name(l, &h.area_name_zh, &h.area_name_en).to_owned(),
        building: area_name(l, &h.building_name_zh, &h.building_name_en).to_owned(),
        room: h.room.clone(),
        balance,
        online: l.t(online_key(st.as_ref().map(|s| s.online))),
        relay,
        last_read: info
            .remaining_at_ms
            .map(|ms| fmt_seconds(ms, tz))
            .unwrap_or_else(|| "—".to_owned()),
        price: info.unit_price_centifen_per_kwh.to_string(),
    })
}

/// One meter's page.
#[derive(Template)]
#[template(path = "staff/meter.html")]
struct MeterPage {
    l: Lang,
    frame: super::Frame,
    m: MeterPanel,
    orders: Vec<OrderLine>,
    password_link: bool,
    sell_link: bool,
    // Issue 14 items 4-5: relay control and history, the meter's history.
    relay: super::relay::MeterRelay,
    chart: crate::pages::chart::Chart,
    history: super::meter_history::MeterHistory,
    script: &'static str,
    /// The replace form is open to the operator (and the meter in service).
    replace_link: bool,
    /// The meter that replaced this one: (id, number).
    replaced_by: Option<(i64, String)>,
    /// The meter this one replaced: (id, number).
    replaces: Option<(i64, String)>,
    /// kWh carried to this meter, just after a replacement.
    replaced_notice: Option<String>,
}

/// `?replaced=<centikWh>` after a replacement.
#[derive(Debug, Default, Deserialize)]
pub struct MeterQuery {
    #[serde(default)]
    replaced: Option<i64>,
}

/// `GET /staff/meters/{id}`.
pub async fn meter(
    State(state): State<AppState>,
    op: CurrentOperator,
    crate::pages::PathId(id): crate::pages::PathId,
    Query(q): Query<MeterQuery>,
) -> StaffResult {
    let Some(h) = store::lookup::by_id(state.db(), id).await? else {
        return Err(StaffError::NotFound);
    };
    op.require(&state, Action::ViewMeters, place(&h)).await?;
    let l = op.l;
    let (chart, history) = super::meter_history::of(&state, l, h.meter_id.get()).await?;
    let (by, of) = store::replace::of_meter(state.db(), id).await?;
    let replaced_notice = match (&of, q.replaced) {
        (Some(r), Some(c)) => Some(l.t2(
            "staff-replace-done",
            "old",
            r.old_address.clone(),
            "kwh",
            domain::CentiKwh::new(c).to_string(),
        )),
        _ => None,
    };
    html(&MeterPage {
        replace_link: by.is_none() && op.may(Action::ReplaceMeter, place(&h)),
        replaced_by: by.map(|r| (r.new_meter_id, r.new_address)),
        replaces: of.map(|r| (r.old_meter_id, r.old_address)),
        replaced_notice,
        l,
        relay: super::relay::meter_relay(&state, &op, &h).await?,
        chart,
        history,
        script: super::JS_PATH,
        m: panel(&state, l, &h).await?,
        orders: order_lines(&state, l, h.meter_id, 10).await?,
        password_link: op.may(Action::ResetMeterPassword, place(&h)),
        sell_link: op.may(Action::SellAtCounter, place(&h)),
        frame: op.frame("staff-lookup-meter-title", "/staff/meters"),
    })
}
