//! The overview ("综合首页", S9) of the student's default meter.

use super::chart::{Bar, Chart, usage_chart};
use super::{PageResult, Shell, Tab, energy_or_dash, fmt_time, html, kwh};
use crate::AppState;
use crate::i18n::Lang;
use crate::session::StudentWithDefaultMeter;
use askama::Template;
use axum::extract::{Query, State};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::students::BoundMeter;

/// Days in the chart.
const CHART_DAYS: i64 = 30;
/// Days the "days left" estimate averages over.
const RATE_DAYS: i64 = 7;
/// Notices shown.
const NOTICES_MAX: i64 = 3;

/// Query of the overview.
#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    bound: Option<u8>,
}

/// `GET /`: the overview, or the binding prompt on a first visit (S6).
pub async fn home(
    state: State<AppState>,
    lang: Lang,
    sm: StudentWithDefaultMeter,
    q: Query<OverviewQuery>,
) -> PageResult {
    overview(state, lang, sm, q).await
}

/// `GET /overview`.
pub async fn overview(
    State(state): State<AppState>,
    lang: Lang,
    StudentWithDefaultMeter(student, m): StudentWithDefaultMeter,
    Query(q): Query<OverviewQuery>,
) -> PageResult {
    let Some(m) = m else {
        return super::see("/bind?first=1");
    };
    let tz = m.time_zone.tz();
    let now = store::now_ms();
    let today_date = domain::time::local_date(now, tz);
    let today = domain::time::day_number(today_date);
    let month_start = domain::time::day_number(today_date.first_of_month());
    let from = month_start.min(today - CHART_DAYS);
    let days = store::students::daily_usage(state.db(), m.meter_id.get(), from, today).await?;
    let notices = latest_notices(&state, m.meter_id.get(), now).await?;
    // Campus policy (issue 14 item 6): the price that applies and its next change.
    let price_next =
        store::policy::next_change(state.db(), m.meter_id, now, m.unit_price_centifen_per_kwh)
            .await?
            .map(|(p, at)| super::price_change_text(lang, p, at, tz));
    // Issue 14 item 6 part 3: the no-cut and power-off hours of the meter.
    let windows: Vec<String> = store::schedule::windows_of_meter(state.db(), m.meter_id.get())
        .await?
        .iter()
        .map(|w| crate::staff::policy_windows::student_text(lang, w))
        .collect();
    // The free monthly allowance of this month (issue 14 item 6).
    let this_month = format!("{:04}-{:02}", today_date.year(), today_date.month());
    let allowance = store::subsidy::of_room_of_meter(state.db(), m.meter_id, 1)
        .await?
        .into_iter()
        .find(|c| c.month == this_month)
        .map(|c| domain::CentiKwh::new(c.centikwh).to_string());

    let month_usage: i64 = days
        .iter()
        .filter(|d| d.day >= month_start)
        .filter_map(|d| d.usage_centikwh)
        .sum();
    let month_missing = days
        .iter()
        .any(|d| d.day >= month_start && d.usage_centikwh.is_none());
    // The chart: the 30 days before today, each present or missing.
    let mut bars = Vec::with_capacity(usize::try_from(CHART_DAYS).unwrap_or(30));
    let mut it = days.iter().peekable();
    for day in (today - CHART_DAYS)..today {
        while it.peek().is_some_and(|d| d.day < day) {
            it.next();
        }
        let usage = it
            .peek()
            .filter(|d| d.day == day)
            .and_then(|d| d.usage_centikwh);
        bars.push(Bar {
            day,
            usage_centikwh: usage,
        });
    }
    let recent: Vec<i64> = bars
        .iter()
        .rev()
        .take(usize::try_from(RATE_DAYS).unwrap_or(7))
        .filter_map(|b| b.usage_centikwh)
        .collect();
    let rate = if recent.is_empty() {
        None
    } else {
        Some(recent.iter().sum::<i64>() / i64::try_from(recent.len()).unwrap_or(1))
    };

    let l = lang;
    let days_left = match (m.remaining_centikwh, rate) {
        (Some(r), Some(rate)) if rate > 0 => Some(DaysLeft {
            days: r.get().max(0) / rate,
            rate: kwh(rate).to_string(),
        }),
        _ => None,
    };
    let notices = notices
        .iter()
        .map(|n| NoticeView {
            title: n.title.clone(),
            body: n.body.clone(),
            at: fmt_time(n.created_at_ms, tz),
        })
        .collect();
    let page = OverviewPage {
        l,
        shell: Shell::new(l, "overview-title", Some(&student), Tab::Home, "/overview"),
        bound: q.bound == Some(1),
        place: place(l, &m),
        remaining: energy_or_dash(m.remaining_centikwh),
        remaining_at: match m.remaining_at_ms {
            Some(t) => l.t1("read-at", "at", fmt_time(t, tz)),
            None => l.t("not-read-yet"),
        },
        month_usage: kwh(month_usage),
        month_missing,
        days_left,
        relay: relay(l, &m, now),
        balance: Balance::of(&m),
        offline: m.online == Some(false),
        chart: usage_chart(&bars),
        notices,
        price: super::fmt_price(m.unit_price_centifen_per_kwh),
        price_next,
        windows,
        allowance,
        m: &m,
    };
    html(&page)
}

/// The overview page.
#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage<'a> {
    l: Lang,
    shell: Shell<'a>,
    m: &'a BoundMeter,
    bound: bool,
    place: String,
    remaining: String,
    remaining_at: String,
    month_usage: domain::CentiKwh,
    month_missing: bool,
    days_left: Option<DaysLeft>,
    relay: Relay,
    balance: Balance,
    offline: bool,
    chart: Chart,
    notices: Vec<NoticeView>,
    /// The price in force now (元/kWh).
    price: String,
    /// Its next change: "自 12月1日起 0.60 元/kWh".
    price_next: Option<String>,
    /// "周一至周五 23:30–06:00（至次日） 定时断电", "每天 22:00–08:00 不因欠费断电".
    windows: Vec<String>,
    /// This month's free allowance (kWh), once credited.
    allowance: Option<String>,
}

/// "At the recent rate this lasts about N days".
struct DaysLeft {
    days: i64,
    rate: String,
}

/// A notice as shown.
struct NoticeView {
    title: String,
    body: String,
    at: String,
}

/// How much energy is left, for the warning (issue 11 item 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Enough, or not known.
    Fine,
    /// Below the meter's low-balance threshold (kWh in the message).
    Low(domain::CentiKwh),
    /// Used up, power still on: the meter runs into its overdraft, then
    /// trips; how much is overdrawn, when the head-end has read it.
    Overdraft(Option<domain::CentiKwh>),
    /// Used up and switched off.
    Empty,
}

impl Balance {
    /// The balance of a bound meter.
    pub fn of(m: &BoundMeter) -> Balance {
        match m.remaining_centikwh {
            Some(r) if r.get() <= 0 && m.relay_closed == Some(false) => Balance::Empty,
            Some(r) if r.get() <= 0 => Balance::Overdraft(m.overdraft_centikwh),
            Some(r) if r < m.low_balance_centikwh => Balance::Low(m.low_balance_centikwh),
            _ => Balance::Fine,
        }
    }

    /// Low, empty or in overdraft: shown in red with a buy button.
    pub fn is_low(&self) -> bool {
        *self != Balance::Fine
    }

    /// Whether the meter is running on its overdraft.
    pub fn is_overdraft(&self) -> bool {
        matches!(self, Balance::Overdraft(_))
    }

    /// The overdraft warning: with the amount when it is known, and what
    /// buying does — a purchase repays the overdraft first, so buying N kWh
    /// leaves N − overdraft (shown for the next ten kWh above it).
    pub fn overdraft_text(&self, l: &Lang) -> String {
        let l = *l;
        let Balance::Overdraft(Some(used)) = self else {
            return l.t("balance-overdraft");
        };
        let used = used.get().max(0);
        let buy_kwh = (used / 1_000 + 1) * 10;
        let left = domain::CentiKwh::new(buy_kwh * 100 - used);
        l.t_args(
            "balance-overdraft-amount",
            &[
                ("used", domain::CentiKwh::new(used).to_string().into()),
                ("buy", buy_kwh.into()),
                ("left", left.to_string().into()),
            ],
        )
    }
}

/// The relay as shown.
enum Relay {
    /// Power on, with the load when known.
    On(Option<i64>),
    /// Power off, with the reason in words.
    Off(String),
    /// Not known yet.
    Unknown,
}

/// How long the notices a meter's students see are served from memory. Notices are
/// published a few times a term; every overview asking the database for
/// them would be most of the page's cost. A new notice shows within this.
const NOTICES_CACHE_MS: u64 = 10_000;
/// Most meters cached (bounded; a count beyond it just skips caching).
const NOTICES_CACHE_AREAS_MAX: usize = 1_000;

/// Notices per meter (their target and schedule decide) with the instant
/// they were read.
pub type NoticeCache = Mutex<HashMap<i64, (Instant, Arc<Vec<store::students::Notice>>)>>;

async fn latest_notices(
    state: &AppState,
    meter_id: i64,
    now_ms: i64,
) -> store::Result<Arc<Vec<store::students::Notice>>> {
    let cache = &state.pages_cache().notices;
    let ttl = Duration::from_millis(NOTICES_CACHE_MS);
    if let Ok(c) = cache.lock()
        && let Some((at, n)) = c.get(&meter_id)
        && at.elapsed() < ttl
    {
        return Ok(n.clone());
    }
    let n =
        Arc::new(store::students::latest_notices(state.db(), meter_id, now_ms, NOTICES_MAX).await?);
    if let Ok(mut c) = cache.lock() {
        if c.len() >= NOTICES_CACHE_AREAS_MAX {
            c.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        if c.len() < NOTICES_CACHE_AREAS_MAX {
            c.insert(meter_id, (Instant::now(), n.clone()));
        }
    }
    Ok(n)
}

/// "Area · building room".
pub fn place(l: Lang, m: &BoundMeter) -> String {
    super::room_place(
        l,
        (&m.area_name_zh, &m.area_name_en),
        (&m.building_name_zh, &m.building_name_en),
        &m.room,
        " · ",
    )
}

/// The relay state with the reason when power is off.
fn relay(l: Lang, m: &BoundMeter, now_ms: i64) -> Relay {
    match m.relay_closed {
        Some(true) => Relay::On(m.power_w),
        Some(false) => Relay::Off(match m.relay_reason.as_deref() {
            Some("balance") => l.t("relay-reason-balance"),
            Some("malicious_load") => match m.relay_restore_at_ms.filter(|at| *at > now_ms) {
                Some(at) => l.t1(
                    "relay-reason-malicious-restores",
                    "min",
                    (at - now_ms + 59_999) / 60_000,
                ),
                None => l.t("relay-reason-malicious"),
            },
            Some("over_power") => l.t("relay-reason-over-power"),
            Some("staff") => l.t("relay-reason-staff"),
            Some("lockout") => l.t("relay-reason-lockout"),
            _ => l.t("relay-reason-unknown"),
        }),
        None => Relay::Unknown,
    }
}
