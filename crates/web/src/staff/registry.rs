//! The registry in the console (issue 14 item 1): `/staff/registry` lists
//! areas, buildings, gateways with their buses, and meters; administrators
//! (`Action::ManageRegistry`) create buildings, rooms, gateways and meters,
//! edit a meter's profile, tariff and low-balance threshold, and retire a
//! meter.
//!
//! A create form is one row of the import template (`import::columns`):
//! it is written as a one-row CSV and goes through the same checks and
//! writes as a file import (`import::parse`, `store::registry::create`) —
//! a 12-digit BCD address, one meter per address, known building, room,
//! gateway and bus, a bus within its capacity — so the two cannot
//! disagree. Every change is audited and bumps the registry version in its
//! transaction, so running head-ends reload.

use super::{
    Console, CurrentOperator, IdPost, StaffError, StaffForm, StaffResult, html_with_status,
};
use crate::AppState;
use crate::i18n::Lang;
use crate::pages::PathId;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use domain::staff::Action;
use import::{Kind, Records, RowError};
use serde::Deserialize;
use store::registry::{Listing, MeterEdit, Outcome, RetireRefusal};

/// Most meters the page lists at once (choose a building for the rest).
const METERS_SHOWN_MAX: i64 = 500;

/// A gateway as the page shows it.
struct GatewayView {
    id: i64,
    host: String,
    port: String,
    name: String,
    building: String,
    mode: String,
    endpoint: String,
    /// `port · baud · meters/capacity`, one per bus.
    buses: Vec<String>,
}

/// A meter as the page shows it.
struct MeterView {
    id: i64,
    address: String,
    place: String,
    bus: String,
    profile: String,
    /// Yuan per kWh, or empty for the area's.
    price: String,
    low_balance_kwh: String,
    retired: bool,
}

/// A building option of the filter.
struct BuildingOption {
    id: i64,
    label: String,
    on: bool,
}

/// The registry page.
#[derive(Template)]
#[template(path = "staff/registry.html")]
struct RegistryPage {
    l: Lang,
    frame: super::Frame,
    listing: Listing,
    gateways: Vec<GatewayView>,
    meters: Vec<MeterView>,
    filter: Vec<BuildingOption>,
    /// Only some of the matching meters are listed.
    truncated: Option<String>,
    profiles: &'static [&'static str],
    errors: Vec<String>,
    notice: Option<String>,
}

/// Query of the registry page.
#[derive(Debug, Deserialize, Default)]
pub struct PageQuery {
    building: Option<String>,
    done: Option<String>,
}

/// 0.0001 yuan (centifen) per kWh as yuan with up to four decimals.
fn price_text(centifen: i64) -> String {
    let s = format!("{}.{:04}", centifen / 10_000, (centifen % 10_000).abs());
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// 0.01 kWh as kWh.
fn kwh_text(centikwh: i64) -> String {
    let s = format!("{}.{:02}", centikwh / 100, (centikwh % 100).abs());
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

async fn render(
    state: &AppState,
    op: &CurrentOperator,
    building: Option<i64>,
    errors: Vec<String>,
    notice: Option<String>,
) -> StaffResult {
    let l = op.l;
    let listing = store::registry::listing(state.db(), building, METERS_SHOWN_MAX).await?;
    let gateways = listing
        .gateways
        .iter()
        .map(|g| GatewayView {
            id: g.id,
            host: g.host.clone(),
            port: if g.port > 0 {
                g.port.to_string()
            } else {
                String::new()
            },
            name: g.name.clone(),
            building: g.building.clone(),
            mode: g.mode.clone(),
            endpoint: if g.mode == "dial" {
                format!("{}:{}", g.host, g.port)
            } else {
                String::new()
            },
            buses: g
                .buses
                .iter()
                .map(|b| {
                    l.t_args(
                        "staff-registry-bus",
                        &[
                            ("port", b.port.into()),
                            ("baud", b.baud.into()),
                            ("meters", b.meters.into()),
                            ("capacity", b.capacity.into()),
                        ],
                    )
                })
                .collect(),
        })
        .collect();
    let meters: Vec<MeterView> = listing
        .meters
        .iter()
        .map(|m| MeterView {
            id: m.id,
            address: m.address.clone(),
            place: format!("{} · {} {}", m.area, m.building, m.room),
            bus: match (&m.gateway, m.bus) {
                (Some(g), Some(b)) => format!("{g} / {b}"),
                _ => String::new(),
            },
            profile: m.profile.clone(),
            price: m
                .unit_price_centifen_per_kwh
                .map_or_else(String::new, price_text),
            low_balance_kwh: kwh_text(m.low_balance_centikwh),
            retired: m.retired_at_ms.is_some(),
        })
        .collect();
    let shown = i64::try_from(meters.len()).unwrap_or(i64::MAX);
    let truncated = (listing.meters_total > shown).then(|| {
        l.t2(
            "staff-registry-truncated",
            "shown",
            shown,
            "total",
            listing.meters_total,
        )
    });
    let filter = listing
        .buildings
        .iter()
        .map(|b| BuildingOption {
            id: b.id,
            label: format!("{} · {}", b.area, b.name_zh),
            on: Some(b.id) == building,
        })
        .collect();
    let failed = !errors.is_empty();
    html_with_status(
        &RegistryPage {
            l,
            frame: op.frame("staff-registry-title", "/staff/registry"),
            listing,
            gateways,
            meters,
            filter,
            truncated,
            profiles: import::PROFILES,
            errors,
            notice,
        },
        failed,
    )
}

/// `GET /staff/registry`.
pub async fn page(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ManageRegistry as u8 }>,
    Query(q): Query<PageQuery>,
) -> StaffResult {
    let building = q.building.as_deref().and_then(|b| b.trim().parse().ok());
    let notice = q.done.as_deref().and_then(|d| {
        let key = match d {
            "building" => "staff-registry-created-building",
            "room" => "staff-registry-created-room",
            "gateway" => "staff-registry-created-gateway",
            "meter" => "staff-registry-created-meter",
            "edited" => "staff-registry-edited",
            "gateway-edited" => "staff-registry-gateway-edited",
            "retired" => "staff-registry-retired",
            _ => return None,
        };
        Some(op.l.t(key))
    });
    render(&state, &op, building, Vec::new(), notice).await
}

/// The row errors as the page lists them: the column, then why.
fn error_lines(errors: &[RowError]) -> Vec<String> {
    errors
        .iter()
        .map(|e| {
            if e.column.is_empty() {
                e.reason.clone()
            } else {
                format!("{}: {}", e.column, e.reason)
            }
        })
        .collect()
}

/// `cells` (in template column order) as a one-row file of `kind`, read
/// back with the import's row checks.
fn one_row(kind: Kind, cells: &[&str]) -> Result<Records, Vec<RowError>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header: Vec<String> = import::columns(kind)
        .iter()
        .map(import::Column::header)
        .collect();
    let written = w
        .write_record(&header)
        .and_then(|()| w.write_record(cells.iter().map(|c| c.trim())));
    let bytes = written
        .map_err(|e| vec![RowError::new(0, "", e.to_string())])
        .and_then(|()| {
            w.into_inner()
                .map_err(|e| vec![RowError::new(0, "", e.to_string())])
        })?;
    match import::parse(&bytes, Some(kind)) {
        Err(e) => Err(vec![e.as_row_error()]),
        Ok(p) if !p.errors.is_empty() => Err(p.errors),
        Ok(p) => Ok(p.records),
    }
}

/// Creates the one row, or shows the page with why not.
async fn create(
    state: &AppState,
    op: &CurrentOperator,
    kind: Kind,
    done: &str,
    cells: &[&str],
) -> StaffResult<Response> {
    let records = match one_row(kind, cells) {
        Ok(r) => r,
        Err(errors) => return render(state, op, None, error_lines(&errors), None).await,
    };
    let now = state.settings().staff.clock.now_ms();
    match store::registry::create(state.db(), &records, &op.actor(), now).await {
        Ok(Outcome::Applied { .. }) => {
            Ok(Redirect::to(&format!("/staff/registry?done={done}")).into_response())
        }
        Ok(Outcome::Refused(errors)) => render(state, op, None, error_lines(&errors), None).await,
        Err(store::Error::Conflict(why)) => render(state, op, None, vec![why], None).await,
        Err(e) => Err(e.into()),
    }
}

/// The new building form.
// Every field defaults, so a body without them reaches the permission
// gate (an auditor gets 403, not 422) and then the row checks.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BuildingForm {
    csrf: String,
    area: String,
    name_zh: String,
    #[serde(default)]
    name_en: String,
}

/// The new room form.
// Every field defaults, so a body without them reaches the permission
// gate (an auditor gets 403, not 422) and then the row checks.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoomForm {
    csrf: String,
    area: String,
    building: String,
    number: String,
    floor: String,
}

/// The new gateway form.
// Every field defaults, so a body without them reaches the permission
// gate (an auditor gets 403, not 422) and then the row checks.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GatewayForm {
    csrf: String,
    area: String,
    building: String,
    name: String,
    mode: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    buses: String,
    #[serde(default)]
    baud: String,
}

/// The new meter form.
// Every field defaults, so a body without them reaches the permission
// gate (an auditor gets 403, not 422) and then the row checks.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MeterForm {
    csrf: String,
    address: String,
    area: String,
    building: String,
    room: String,
    gateway: String,
    bus: String,
    #[serde(default)]
    profile: String,
    #[serde(default)]
    unit_price: String,
    #[serde(default)]
    low_balance_kwh: String,
}

/// The meter edit form.
// Every field defaults, so a body without them reaches the permission
// gate (an auditor gets 403, not 422) and then the row checks.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EditForm {
    csrf: String,
    #[serde(default)]
    profile: String,
    #[serde(default)]
    unit_price: String,
    #[serde(default)]
    low_balance_kwh: String,
}

/// The gateway edit form.
// Every field defaults, so a body without them reaches the permission
// gate (an auditor gets 403, not 422) and then the row checks.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GatewayEditForm {
    csrf: String,
    mode: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
}

crate::pages::csrf_forms!(
    BuildingForm,
    RoomForm,
    GatewayForm,
    MeterForm,
    EditForm,
    GatewayEditForm
);

/// `POST /staff/registry/gateways/{id}`: a gateway's mode, host and port,
/// read with the import's rules for those columns (its own row with the
/// edited cells; nothing else of the row is used).
pub async fn edit_gateway(
    State(state): State<AppState>,
    PathId(id): PathId,
    f: StaffForm<GatewayEditForm, { Action::ManageRegistry as u8 }>,
) -> StaffResult<Response> {
    let StaffForm { op, form } = f;
    let listing = store::registry::listing(state.db(), None, 0).await?;
    let Some(g) = listing.gateways.iter().find(|g| g.id == id) else {
        return Err(StaffError::NotFound);
    };
    let Some(b) = listing.buildings.iter().find(|b| b.id == g.building_id) else {
        return Err(StaffError::NotFound);
    };
    let buses = g
        .buses
        .iter()
        .map(|b| b.port.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let baud = g.buses.first().map_or(2400, |b| b.baud).to_string();
    let cells = [
        b.area.as_str(),
        &b.name_zh,
        &g.name,
        &form.mode,
        &form.host,
        &form.port,
        &buses,
        &baud,
    ];
    let row = match one_row(Kind::Gateways, &cells) {
        Ok(Records::Gateways(rows)) if rows.len() == 1 => rows.into_iter().next(),
        Ok(_) => None,
        Err(errors) => return render(&state, &op, None, error_lines(&errors), None).await,
    };
    let Some(row) = row else {
        return Err(StaffError::NotFound);
    };
    let edit = store::registry::GatewayEdit {
        mode: row.mode.as_str().to_owned(),
        host: row.host,
        port: row.port,
    };
    let now = state.settings().staff.clock.now_ms();
    if !store::registry::edit_gateway(state.db(), id, &edit, &op.actor(), now).await? {
        return Err(StaffError::NotFound);
    }
    Ok(Redirect::to("/staff/registry?done=gateway-edited").into_response())
}

/// `POST /staff/registry/buildings`.
pub async fn create_building(
    State(state): State<AppState>,
    f: StaffForm<BuildingForm, { Action::ManageRegistry as u8 }>,
) -> StaffResult<Response> {
    let StaffForm { op, form: b } = f;
    let cells = [b.area.as_str(), &b.name_zh, &b.name_en];
    create(&state, &op, Kind::Buildings, "building", &cells).await
}

/// `POST /staff/registry/rooms`.
pub async fn create_room(
    State(state): State<AppState>,
    f: StaffForm<RoomForm, { Action::ManageRegistry as u8 }>,
) -> StaffResult<Response> {
    let StaffForm { op, form: r } = f;
    let cells = [r.area.as_str(), &r.building, &r.number, &r.floor];
    create(&state, &op, Kind::Rooms, "room", &cells).await
}

/// `POST /staff/registry/gateways`.
pub async fn create_gateway(
    State(state): State<AppState>,
    f: StaffForm<GatewayForm, { Action::ManageRegistry as u8 }>,
) -> StaffResult<Response> {
    let StaffForm { op, form: g } = f;
    let cells = [
        g.area.as_str(),
        &g.building,
        &g.name,
        &g.mode,
        &g.host,
        &g.port,
        &g.buses,
        &g.baud,
    ];
    create(&state, &op, Kind::Gateways, "gateway", &cells).await
}

/// `POST /staff/registry/meters`.
pub async fn create_meter(
    State(state): State<AppState>,
    f: StaffForm<MeterForm, { Action::ManageRegistry as u8 }>,
) -> StaffResult<Response> {
    let StaffForm { op, form: m } = f;
    let cells = [
        m.address.as_str(),
        &m.area,
        &m.building,
        &m.room,
        &m.gateway,
        &m.bus,
        &m.profile,
        &m.unit_price,
        &m.low_balance_kwh,
    ];
    create(&state, &op, Kind::Meters, "meter", &cells).await
}

/// `POST /staff/registry/meters/{id}`: a live meter's profile, tariff and
/// low-balance threshold (read with the import's rules for those columns).
pub async fn edit_meter(
    State(state): State<AppState>,
    PathId(id): PathId,
    f: StaffForm<EditForm, { Action::ManageRegistry as u8 }>,
) -> StaffResult<Response> {
    let StaffForm { op, form } = f;
    let Some(m) = store::registry::meter(state.db(), id).await? else {
        return Err(StaffError::NotFound);
    };
    if m.retired_at_ms.is_some() {
        let why = op.l.t("staff-registry-retired-already");
        return render(&state, &op, None, vec![why], None).await;
    }
    // The meter's own row with the edited cells: the import's parsing of
    // profile, price and threshold, nothing else of the row is used.
    let bus = m.bus.unwrap_or(1).to_string();
    let gateway = m.gateway.clone().unwrap_or_default();
    let cells = [
        m.address.as_str(),
        &m.area,
        &m.building,
        &m.room,
        &gateway,
        &bus,
        &form.profile,
        &form.unit_price,
        &form.low_balance_kwh,
    ];
    let parsed = match one_row(Kind::Meters, &cells) {
        Ok(Records::Meters(rows)) if rows.len() == 1 => rows,
        Ok(_) => return Err(StaffError::NotFound),
        Err(errors) => return render(&state, &op, None, error_lines(&errors), None).await,
    };
    let row = &parsed[0];
    let edit = MeterEdit {
        profile: row.profile.clone(),
        unit_price_centifen_per_kwh: row.unit_price_centifen_per_kwh,
        low_balance_centikwh: row.low_balance_centikwh,
    };
    let now = state.settings().staff.clock.now_ms();
    if !store::registry::edit_meter(state.db(), id, &edit, &op.actor(), now).await? {
        let why = op.l.t("staff-registry-retired-already");
        return render(&state, &op, None, vec![why], None).await;
    }
    Ok(Redirect::to(&format!(
        "/staff/registry?building={}&done=edited",
        m.building_id
    ))
    .into_response())
}

/// `POST /staff/registry/meters/{id}/retire`.
pub async fn retire_meter(
    State(state): State<AppState>,
    IdPost { id, op }: IdPost<{ Action::ManageRegistry as u8 }>,
) -> StaffResult<Response> {
    let Some(m) = store::registry::meter(state.db(), id).await? else {
        return Err(StaffError::NotFound);
    };
    let now = state.settings().staff.clock.now_ms();
    let key = match store::registry::retire_meter(state.db(), id, &op.actor(), now).await? {
        Ok(()) => {
            return Ok(Redirect::to(&format!(
                "/staff/registry?building={}&done=retired",
                m.building_id
            ))
            .into_response());
        }
        Err(RetireRefusal::Unknown) => "staff-registry-retired-already",
        Err(RetireRefusal::OrderInFlight) => "staff-registry-retire-in-flight",
        Err(RetireRefusal::PositiveBalance) => "staff-registry-retire-balance",
    };
    let why = op.l.t(key);
    render(&state, &op, Some(m.building_id), vec![why], None).await
}
