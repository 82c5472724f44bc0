//! The live building view (issue 14 item 4): `/staff/buildings` lists the
//! buildings of the operator's scope with their meter counts;
//! `/staff/buildings/{id}` draws every floor as a grid of rooms (online,
//! relay state and reason, present power, remaining energy, last reading
//! age) with the filters of [`Filter`], and `/staff/buildings/{id}.json`
//! answers the same cells for `staff.js` to refresh the grid in place.
//! Each cell links to its meter's page; for those who may control relays
//! the grid is also the selection of a bulk relay command
//! ([`super::relay`]). One store query per building
//! (`store::building_view::cells`), whatever its size.

use super::{Console, CurrentOperator, StaffError, StaffResult, age_text, html};
use crate::AppState;
use crate::i18n::Lang;
use crate::pages::area_name;
use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use domain::staff::{Action, Place};
use serde::{Deserialize, Serialize};
use store::building_view::{Cell, Filter};

/// One building of the index.
struct BuildingLine {
    id: i64,
    area: String,
    name: String,
    meters: i64,
    offline: i64,
    power_off: i64,
}

/// The index page.
#[derive(Template)]
#[template(path = "staff/buildings.html")]
struct IndexPage {
    l: Lang,
    frame: super::Frame,
    rows: Vec<BuildingLine>,
}

/// `GET /staff/buildings`: the buildings the operator may look at.
pub async fn index(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ViewMeters as u8 }>,
) -> StaffResult {
    let l = op.l;
    let areas = store::campus::areas(state.db()).await?;
    let mut rows: Vec<(String, BuildingLine)> = store::building_view::summaries(state.db())
        .await?
        .into_iter()
        .filter(|s| op.may(Action::ViewMeters, place_of(s.area_id, s.building_id)))
        .map(|s| {
            let area = areas
                .iter()
                .find(|a| a.id.get() == s.area_id)
                .map(|a| area_name(l, &a.name_zh, &a.name_en).to_owned())
                .unwrap_or_default();
            let name = area_name(l, &s.name_zh, &s.name_en).to_owned();
            (
                format!("{area} {name}"),
                BuildingLine {
                    id: s.building_id,
                    area,
                    name,
                    meters: s.meters,
                    offline: s.offline,
                    power_off: s.power_off,
                },
            )
        })
        .collect();
    rows.sort_by(|a, b| domain::natural::natural_cmp(&a.0, &b.0));
    html(&IndexPage {
        l,
        frame: op.frame("staff-bv-title", "/staff/buildings"),
        rows: rows.into_iter().map(|(_, r)| r).collect(),
    })
}

fn place_of(area_id: i64, building_id: i64) -> Place {
    Place::Building(
        domain::AreaId::new(area_id),
        domain::BuildingId::new(building_id),
    )
}

/// One room as the grid and its JSON show it, texts in the page language.
#[derive(Serialize)]
pub struct CellView {
    /// Meter row id (0: the room has no meter).
    pub meter: i64,
    /// Room number.
    pub room: String,
    /// CSS classes: online/offline, on/off, keep, pending.
    pub class: String,
    /// Online / offline / never seen.
    pub online: String,
    /// Relay state (and why it is open).
    pub relay: String,
    /// Present power.
    pub power: String,
    /// Remaining energy.
    pub remaining: String,
    /// Age of the last answer.
    pub age: String,
    /// The open relay command, if any ("拉闸：排队中").
    pub pending: String,
    /// Malicious-load trips today, when any.
    pub trips: String,
}

/// A floor of the grid.
struct FloorView {
    label: String,
    cells: Vec<CellView>,
}

/// A filter link.
struct FilterLink {
    value: &'static str,
    label: String,
    on: bool,
}

/// The building page.
#[derive(Template)]
#[template(path = "staff/building.html")]
struct BuildingPage {
    l: Lang,
    frame: super::Frame,
    id: i64,
    name: String,
    filters: Vec<FilterLink>,
    filter: String,
    floors: Vec<FloorView>,
    shown: usize,
    control: bool,
    actions: Vec<super::relay::ActionChoice>,
    reason_max: usize,
    notice: Option<String>,
    script: &'static str,
}

/// The building page's query.
#[derive(Debug, Default, Deserialize)]
pub struct ViewQuery {
    #[serde(default)]
    filter: String,
    #[serde(default)]
    queued: String,
}

/// The building of `{id}` or `{id}.json`, and whether JSON is asked.
fn parse_path(s: &str) -> Option<(i64, bool)> {
    let (id, json) = match s.strip_suffix(".json") {
        Some(id) => (id, true),
        None => (s, false),
    };
    crate::pages::parse_id(id).ok().map(|id| (id, json))
}

/// A cell in language `l` at `now_ms`.
pub fn cell_view(l: Lang, c: &Cell, now_ms: i64) -> CellView {
    let Some(meter) = c.meter_id else {
        return CellView {
            meter: 0,
            room: c.room.clone(),
            class: "empty".to_owned(),
            online: l.t("staff-bv-no-meter"),
            relay: String::new(),
            power: String::new(),
            remaining: String::new(),
            age: String::new(),
            pending: String::new(),
            trips: String::new(),
        };
    };
    let mut class = vec![if c.online == Some(true) {
        "online"
    } else {
        "offline"
    }];
    let relay = match c.relay_closed {
        Some(true) => {
            class.push("on");
            l.t("staff-lookup-relay-closed")
        }
        Some(false) => {
            class.push("off");
            let why = c
                .relay_reason
                .as_deref()
                .map(|r| super::relay::reason_text(l, r));
            match why {
                Some(w) => format!("{} · {w}", l.t("staff-lookup-relay-open")),
                None => l.t("staff-lookup-relay-open"),
            }
        }
        None => l.t("staff-lookup-unknown"),
    };
    let relay = if c.keep_power == Some(true) {
        class.push("keep");
        format!("{relay} · {}", l.t("staff-relay-keeping"))
    } else {
        relay
    };
    let pending = match (c.open_command.as_deref(), c.open_command_state.as_deref()) {
        (Some(a), Some(s)) => {
            class.push("pending");
            format!(
                "{}：{}",
                super::relay::action_text(l, a),
                super::relay::state_text(l, s)
            )
        }
        _ => String::new(),
    };
    CellView {
        meter,
        room: c.room.clone(),
        class: class.join(" "),
        online: l.t(match c.online {
            Some(true) => "staff-lookup-online",
            Some(false) if c.last_seen_at_ms.is_some() => "staff-lookup-offline",
            _ => "staff-lookup-never-seen",
        }),
        relay,
        power: c.power_w.map(|w| format!("{w} W")).unwrap_or_default(),
        remaining: c
            .remaining_centikwh
            .map(|r| format!("{} kWh", domain::CentiKwh::new(r)))
            .unwrap_or_default(),
        age: c
            .last_seen_at_ms
            .map(|t| age_text(l, t, now_ms))
            .unwrap_or_default(),
        pending,
        trips: if c.malicious_trips_today > 0 {
            l.t1("staff-bv-trips-today", "n", c.malicious_trips_today)
        } else {
            String::new()
        },
    }
}

/// The JSON of `/staff/buildings/{id}.json`.
#[derive(Serialize)]
struct Live {
    at: String,
    cells: Vec<CellView>,
}

/// `GET /staff/buildings/{id}` (the page) and `/staff/buildings/{id}.json`
/// (its cells).
pub async fn building(
    State(state): State<AppState>,
    op: CurrentOperator,
    Path(raw): Path<String>,
    Query(q): Query<ViewQuery>,
) -> StaffResult {
    let Some((id, json)) = parse_path(&raw) else {
        return Err(StaffError::NotFound);
    };
    let Some(b) = store::lookup::buildings(state.db())
        .await?
        .into_iter()
        .find(|b| b.id == id)
    else {
        return Err(StaffError::NotFound);
    };
    let place = place_of(b.area_id, b.id);
    op.require(&state, Action::ViewMeters, place).await?;
    let l = op.l;
    let tz = crate::pages::campus_tz(&state);
    let now = state.settings().staff.clock.now_ms();
    let today = domain::time::local_date(now, tz);
    let day_start = domain::time::day_start_ms(today, tz);
    let filter = Filter::parse(&q.filter);
    let mut cells: Vec<Cell> = store::building_view::cells(state.db(), id, day_start)
        .await?
        .into_iter()
        .filter(|c| filter.is_none_or(|f| c.passes(f, day_start)))
        .collect();
    cells.sort_by(|a, b| {
        a.floor
            .cmp(&b.floor)
            .then_with(|| domain::natural::natural_cmp(&a.room, &b.room))
    });
    if json {
        let live = Live {
            at: super::fmt_seconds(now, tz),
            cells: cells.iter().map(|c| cell_view(l, c, now)).collect(),
        };
        return Ok(([(header::CACHE_CONTROL, "no-store")], Json(live)).into_response());
    }
    let shown = cells.len();
    let mut floors: Vec<FloorView> = Vec::new();
    for c in &cells {
        if floors
            .last()
            .is_none_or(|f| f.label != floor_label(l, c.floor))
        {
            floors.push(FloorView {
                label: floor_label(l, c.floor),
                cells: Vec::new(),
            });
        }
        if let Some(f) = floors.last_mut() {
            f.cells.push(cell_view(l, c, now));
        }
    }
    let areas = store::campus::areas(state.db()).await?;
    let area = areas
        .iter()
        .find(|a| a.id.get() == b.area_id)
        .map(|a| area_name(l, &a.name_zh, &a.name_en).to_owned())
        .unwrap_or_default();
    html(&BuildingPage {
        l,
        id,
        name: format!("{area} · {}", area_name(l, &b.name_zh, &b.name_en)),
        filters: Filter::ALL
            .into_iter()
            .map(|f| FilterLink {
                value: f.as_str(),
                label: l.t(&format!("staff-bv-filter-{}", f.as_str().replace('_', "-"))),
                on: filter == Some(f),
            })
            .collect(),
        filter: filter.map(|f| f.as_str().to_owned()).unwrap_or_default(),
        floors,
        shown,
        control: op.may(Action::ControlRelay, place),
        actions: super::relay::action_choices(l),
        reason_max: store::relay::REASON_CHARS_MAX,
        notice: q
            .queued
            .parse::<i64>()
            .ok()
            .map(|n| l.t1("staff-relay-queued-notice", "n", n)),
        script: super::JS_PATH,
        frame: op.frame("staff-bv-building-title", "/staff/buildings"),
    })
}

fn floor_label(l: Lang, floor: i64) -> String {
    l.t1("staff-bv-floor", "n", floor)
}
