//! Campus policy in the console (issue 14 item 6, E4): `/staff/policy`.
//!
//! Per area (picked at the top) the page shows the price in force for the
//! area and each building, the price schedule (past, in force, upcoming)
//! and the low-balance thresholds; an operator who may
//! [`Action::ManagePolicy`] at the place schedules a price from a future
//! campus-local day on, withdraws a price not yet in force, and sets or
//! clears a threshold. The store refuses a price for today or the past
//! (`store::policy::schedule_price`), so an order already created keeps its
//! price; every change is audited by the store in its transaction.

use super::{
    Console, CurrentOperator, IdPost, StaffError, StaffForm, StaffResult, html_with_status,
};
use crate::AppState;
use crate::i18n::Lang;
use crate::pages::{area_name, fmt_local, fmt_price};
use askama::Template;
use axum::extract::{Query, State};
use domain::staff::{Action, Place};
use domain::{AreaId, BuildingId, CentiKwh, UnitPrice};
use serde::Deserialize;
use store::policy::{ScheduleError, Scope};

/// The highest unit price the form takes, 0.0001 元/kWh (100 元/kWh: a typo
/// guard, far above any tariff).
const PRICE_MAX_CENTIFEN_PER_KWH: i64 = 1_000_000;
/// The highest threshold the form takes, 0.01 kWh (1000 kWh).
const LOW_BALANCE_MAX_CENTIKWH: i64 = 100_000;

/// Parses a price in 元/kWh with at most four decimals (`0.6`, `0.5830`).
pub fn parse_price(s: &str) -> Option<UnitPrice> {
    let v = parse_fixed(s.trim(), 4)?;
    if v > PRICE_MAX_CENTIFEN_PER_KWH {
        return None;
    }
    UnitPrice::from_centifen_per_kwh(v)
}

/// Parses a threshold in kWh with at most two decimals; `Ok(None)` when blank.
pub fn parse_threshold(s: &str) -> Result<Option<CentiKwh>, ()> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    match parse_fixed(s, 2) {
        Some(v) if v <= LOW_BALANCE_MAX_CENTIKWH => Ok(Some(CentiKwh::new(v))),
        _ => Err(()),
    }
}

/// A non-negative decimal with at most `decimals` places, scaled to an integer.
fn parse_fixed(s: &str, decimals: usize) -> Option<i64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && frac.is_empty()
        || whole.len() > 9
        || frac.len() > decimals
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut frac_v: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..decimals {
        frac_v *= 10;
    }
    whole
        .checked_mul(10_i64.pow(u32::try_from(decimals).ok()?))?
        .checked_add(frac_v)
}

/// A scope picked in a form: `area` or `b:<building id>`.
pub(super) fn parse_scope(area_id: AreaId, s: &str) -> Option<Scope> {
    match s {
        "area" => Some(Scope {
            area_id,
            building_id: None,
        }),
        _ => {
            let b = s.strip_prefix("b:")?.parse().ok()?;
            Some(Scope {
                area_id,
                building_id: Some(b),
            })
        }
    }
}

/// Where a scope's change takes effect, for the permission check.
pub(super) fn place_of(scope: Scope) -> Place {
    match scope.building_id {
        Some(b) => Place::Building(scope.area_id, BuildingId::new(b)),
        None => Place::Area(scope.area_id),
    }
}

/// An area in the picker.
struct AreaChoice {
    id: i64,
    name: String,
    selected: bool,
}

/// A scope in a form's picker, with its price now.
struct ScopeRow {
    /// `area` or `b:<id>`.
    value: String,
    name: String,
    /// The price in force now (元/kWh).
    price_now: String,
    /// The next change: "0.60 from 2026-12-01".
    next: Option<String>,
    /// The low-balance threshold set for the scope (kWh), if any.
    low_balance: Option<String>,
}

/// One schedule row as listed.
struct PriceRow {
    id: i64,
    scope: String,
    price: String,
    from: String,
    by: String,
    /// `upcoming`, `in-force` or `superseded`.
    status: &'static str,
    status_text: String,
}

/// `GET /staff/policy`.
#[derive(Template)]
#[template(path = "staff/policy.html")]
struct PolicyPage {
    l: Lang,
    frame: super::Frame,
    areas: Vec<AreaChoice>,
    area_id: i64,
    area_default: String,
    scopes: Vec<ScopeRow>,
    rows: Vec<PriceRow>,
    manage: bool,
    /// The earliest date a new price may take effect (tomorrow), `YYYY-MM-DD`.
    min_date: String,
    error: Option<String>,
    notice: Option<String>,
    /// No-cut and power-off hours (`staff/policy_windows.html`).
    windows: super::policy_windows::Section,
    /// The free monthly allowance (super::policy_subsidy).
    subsidy: super::policy_subsidy::SubsidyPart,
}

/// Query of the page.
#[derive(Debug, Deserialize)]
pub struct PolicyQuery {
    area_id: Option<i64>,
    done: Option<String>,
}

/// `GET /staff/policy?area_id=…`.
pub async fn page(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ManagePolicy as u8 }>,
    Query(q): Query<PolicyQuery>,
) -> StaffResult {
    let notice = match q.done.as_deref() {
        Some("price") => Some(op.l.t("staff-policy-price-done")),
        Some("withdrawn") => Some(op.l.t("staff-policy-withdrawn")),
        Some("low") => Some(op.l.t("staff-policy-low-done")),
        Some("window") => Some(op.l.t("staff-policy-window-done")),
        Some("window-cleared") => Some(op.l.t("staff-policy-window-cleared")),
        Some("subsidy") => Some(op.l.t("staff-subsidy-done")),
        _ => None,
    };
    render(&state, &op, q.area_id, None, notice).await
}

pub(super) async fn render(
    state: &AppState,
    op: &CurrentOperator,
    area_id: Option<i64>,
    error: Option<String>,
    notice: Option<String>,
) -> StaffResult {
    let l = op.l;
    let areas: Vec<_> = store::campus::areas(state.db())
        .await?
        .into_iter()
        .filter(|a| op.may(Action::ManagePolicy, Place::Area(a.id)))
        .collect();
    let Some(area) = areas
        .iter()
        .find(|a| Some(a.id.get()) == area_id)
        .or_else(|| areas.first())
    else {
        return Err(StaffError::NotFound);
    };
    let tz = area.time_zone.tz();
    let now = state.settings().staff.clock.now_ms();
    let day = |ms| fmt_local(ms, tz, "%Y-%m-%d");
    let buildings: Vec<_> = store::notices::buildings(state.db())
        .await?
        .into_iter()
        .filter(|b| b.area_id == area.id.get())
        .collect();
    let schedule = store::policy::schedule(state.db(), area.id).await?;
    let policies = store::policy::policies(state.db(), area.id).await?;

    // The price of a scope at an instant, as the store resolves it for a
    // meter without its own tariff: the scope's latest row in force, a
    // building falling back to the area's, the area to its default.
    let latest = |building_id: Option<i64>, at: i64| {
        schedule
            .iter()
            .filter(|p| p.scope.building_id == building_id && p.effective_from_ms <= at)
            .max_by_key(|p| (p.effective_from_ms, p.id))
            .map(|p| p.unit_price)
    };
    let price_of = |building_id: Option<i64>, at: i64| {
        building_id
            .and_then(|b| latest(Some(b), at))
            .or_else(|| latest(None, at))
            .unwrap_or(area.unit_price_centifen_per_kwh)
    };
    let next_of = |building_id: Option<i64>| {
        let now_price = price_of(building_id, now);
        let mut instants: Vec<i64> = schedule
            .iter()
            .filter(|p| p.effective_from_ms > now)
            .filter(|p| p.scope.building_id.is_none() || p.scope.building_id == building_id)
            .map(|p| p.effective_from_ms)
            .collect();
        instants.sort_unstable();
        instants.into_iter().find_map(|t| {
            let p = price_of(building_id, t);
            (p != now_price)
                .then(|| l.t2("staff-policy-next", "price", fmt_price(p), "date", day(t)))
        })
    };
    let low_of = |building_id: Option<i64>| {
        policies
            .iter()
            .find(|p| p.scope.building_id == building_id)
            .and_then(|p| p.low_balance_centikwh)
            .map(|c| c.to_string())
    };
    let mut scopes = vec![ScopeRow {
        value: "area".to_owned(),
        name: l.t("staff-policy-whole-area"),
        price_now: fmt_price(price_of(None, now)),
        next: next_of(None),
        low_balance: low_of(None),
    }];
    scopes.extend(buildings.iter().map(|b| ScopeRow {
        value: format!("b:{}", b.id),
        name: area_name(l, &b.name_zh, &b.name_en).to_owned(),
        price_now: fmt_price(price_of(Some(b.id), now)),
        next: next_of(Some(b.id)),
        low_balance: low_of(Some(b.id)),
    }));

    let rows = schedule
        .iter()
        .map(|p| {
            let in_force = p.effective_from_ms <= now
                && !schedule.iter().any(|q| {
                    q.scope.building_id == p.scope.building_id
                        && q.effective_from_ms <= now
                        && (q.effective_from_ms, q.id) > (p.effective_from_ms, p.id)
                });
            let status = if p.effective_from_ms > now {
                "upcoming"
            } else if in_force {
                "in-force"
            } else {
                "superseded"
            };
            PriceRow {
                id: p.id,
                scope: match (&p.building_name_zh, &p.building_name_en) {
                    (Some(zh), Some(en)) => area_name(l, zh, en).to_owned(),
                    _ => l.t("staff-policy-whole-area"),
                },
                price: fmt_price(p.unit_price),
                from: day(p.effective_from_ms),
                by: p.operator_name.clone(),
                status,
                status_text: l.t(match status {
                    "upcoming" => "staff-policy-upcoming",
                    "in-force" => "staff-policy-in-force",
                    _ => "staff-policy-superseded",
                }),
            }
        })
        .collect();
    let subsidy = super::policy_subsidy::part(
        state,
        op,
        l,
        area.id,
        &area.time_zone,
        &buildings
            .iter()
            .map(|b| (b.id, b.name_zh.clone(), b.name_en.clone()))
            .collect::<Vec<_>>(),
        now,
    )
    .await?;
    let tomorrow = domain::time::local_date(now, tz).tomorrow().ok();
    let failed = error.is_some();
    let windows = super::policy_windows::section(state, l, area.id).await?;
    html_with_status(
        &PolicyPage {
            l,
            frame: op.frame("staff-policy-title", "/staff/policy"),
            areas: areas
                .iter()
                .map(|a| AreaChoice {
                    id: a.id.get(),
                    name: area_name(l, &a.name_zh, &a.name_en).to_owned(),
                    selected: a.id == area.id,
                })
                .collect(),
            area_id: area.id.get(),
            area_default: fmt_price(area.unit_price_centifen_per_kwh),
            scopes,
            rows,
            manage: op.may(Action::ManagePolicy, Place::Area(area.id)),
            min_date: tomorrow.map(|d| d.to_string()).unwrap_or_default(),
            error,
            notice,
            windows,
            subsidy,
        },
        failed,
    )
}

/// The new-price form. Every field but the token may be missing (then it
/// is refused as malformed), so that the form is read and the permission
/// asked before anything about its contents is said.
#[derive(Debug, Deserialize)]
pub struct PriceForm {
    csrf: String,
    #[serde(default)]
    area_id: i64,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    price: String,
    /// `YYYY-MM-DD`, campus-local: the price applies from that day's start.
    #[serde(default)]
    from: String,
}
crate::pages::csrf_forms!(PriceForm);

/// `POST /staff/policy/prices`: schedules a price from a future day on.
pub async fn schedule(
    State(state): State<AppState>,
    f: StaffForm<PriceForm, { Action::ManagePolicy as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let l = op.l;
    let area_id = AreaId::new(form.area_id);
    let refuse = |key: &str| Some(l.t(key));
    let Some(scope) = parse_scope(area_id, &form.scope) else {
        return render(
            &state,
            &op,
            Some(form.area_id),
            refuse("staff-policy-bad-scope"),
            None,
        )
        .await;
    };
    op.require(&state, Action::ManagePolicy, place_of(scope))
        .await?;
    let Some(price) = parse_price(&form.price) else {
        return render(
            &state,
            &op,
            Some(form.area_id),
            refuse("staff-policy-bad-price"),
            None,
        )
        .await;
    };
    let Some(area) = store::campus::areas(state.db())
        .await?
        .into_iter()
        .find(|a| a.id == area_id)
    else {
        return Err(StaffError::NotFound);
    };
    let Ok(date) = form.from.trim().parse::<jiff::civil::Date>() else {
        return render(
            &state,
            &op,
            Some(form.area_id),
            refuse("staff-policy-bad-date"),
            None,
        )
        .await;
    };
    let from_ms = domain::time::day_start_ms(date, area.time_zone.tz());
    let now = state.settings().staff.clock.now_ms();
    match store::policy::schedule_price(state.db(), scope, price, from_ms, &op.actor(), now).await {
        Ok(_) => super::see_with(
            &format!("/staff/policy?area_id={}&done=", form.area_id),
            "price",
        ),
        Err(ScheduleError::NotInFuture) => {
            render(
                &state,
                &op,
                Some(form.area_id),
                refuse("staff-policy-price-past"),
                None,
            )
            .await
        }
        Err(ScheduleError::NoSuchBuilding | ScheduleError::NoSuchArea) => {
            render(
                &state,
                &op,
                Some(form.area_id),
                refuse("staff-policy-bad-scope"),
                None,
            )
            .await
        }
        Err(ScheduleError::Store(e)) => Err(e.into()),
    }
}

/// `POST /staff/policy/prices/{id}/withdraw`: withdraws a price not yet in force.
pub async fn withdraw(
    State(state): State<AppState>,
    IdPost { id, op }: IdPost<{ Action::ManagePolicy as u8 }>,
) -> StaffResult {
    // The place is the row's: found first, checked, then withdrawn (the
    // store's delete carries the "not yet in force" condition itself).
    let Some(row) = store::policy::scheduled(state.db(), id).await? else {
        return Err(StaffError::NotFound);
    };
    op.require(&state, Action::ManagePolicy, place_of(row.scope))
        .await?;
    let now = state.settings().staff.clock.now_ms();
    match store::policy::withdraw_price(state.db(), id, &op.actor(), now).await {
        Ok(_) => super::see_with(
            &format!("/staff/policy?area_id={}&done=", row.scope.area_id.get()),
            "withdrawn",
        ),
        Err(store::Error::Conflict(_)) => {
            render(
                &state,
                &op,
                Some(row.scope.area_id.get()),
                Some(op.l.t("staff-policy-withdraw-late")),
                None,
            )
            .await
        }
        Err(store::Error::NotFound(_)) => Err(StaffError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// The low-balance form (fields may be missing, as in [`PriceForm`]).
#[derive(Debug, Deserialize)]
pub struct LowForm {
    csrf: String,
    #[serde(default)]
    area_id: i64,
    #[serde(default)]
    scope: String,
    /// kWh; blank clears the scope's threshold.
    #[serde(default)]
    kwh: String,
}
crate::pages::csrf_forms!(LowForm);

/// `POST /staff/policy/low-balance`: sets or clears a scope's threshold.
pub async fn low_balance(
    State(state): State<AppState>,
    f: StaffForm<LowForm, { Action::ManagePolicy as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let l = op.l;
    let Some(scope) = parse_scope(AreaId::new(form.area_id), &form.scope) else {
        return render(
            &state,
            &op,
            Some(form.area_id),
            Some(l.t("staff-policy-bad-scope")),
            None,
        )
        .await;
    };
    op.require(&state, Action::ManagePolicy, place_of(scope))
        .await?;
    let Ok(threshold) = parse_threshold(&form.kwh) else {
        return render(
            &state,
            &op,
            Some(form.area_id),
            Some(l.t("staff-policy-bad-kwh")),
            None,
        )
        .await;
    };
    let now = state.settings().staff.clock.now_ms();
    match store::policy::set_low_balance(state.db(), scope, threshold, &op.actor(), now).await {
        Ok(()) => super::see_with(
            &format!("/staff/policy?area_id={}&done=", form.area_id),
            "low",
        ),
        Err(ScheduleError::NoSuchBuilding | ScheduleError::NoSuchArea) => {
            render(
                &state,
                &op,
                Some(form.area_id),
                Some(l.t("staff-policy-bad-scope")),
                None,
            )
            .await
        }
        Err(ScheduleError::NotInFuture) => Err(StaffError::NotFound),
        Err(ScheduleError::Store(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_and_thresholds_parse_exactly() {
        assert_eq!(
            parse_price("0.6").map(UnitPrice::centifen_per_kwh),
            Some(6_000)
        );
        assert_eq!(
            parse_price(" 0.5830 ").map(UnitPrice::centifen_per_kwh),
            Some(5_830)
        );
        assert_eq!(
            parse_price("1").map(UnitPrice::centifen_per_kwh),
            Some(10_000)
        );
        assert_eq!(
            parse_price(".5").map(UnitPrice::centifen_per_kwh),
            Some(5_000)
        );
        for bad in [
            "", "0", "0.0", "-1", "0.12345", "abc", "1e3", "101", ".", "1.2.3",
        ] {
            assert_eq!(parse_price(bad), None, "{bad:?}");
        }
        assert_eq!(parse_threshold(""), Ok(None));
        assert_eq!(parse_threshold("5"), Ok(Some(CentiKwh::new(500))));
        assert_eq!(parse_threshold("0.25"), Ok(Some(CentiKwh::new(25))));
        assert!(parse_threshold("0.255").is_err());
        assert!(parse_threshold("1001").is_err());
        assert!(parse_threshold("-1").is_err());
    }

    #[test]
    fn a_scope_is_the_area_or_one_building() {
        let a = AreaId::new(3);
        assert_eq!(parse_scope(a, "area").unwrap().building_id, None);
        assert_eq!(parse_scope(a, "b:7").unwrap().building_id, Some(7));
        assert!(parse_scope(a, "b:x").is_none());
        assert!(parse_scope(a, "7").is_none());
    }
}
