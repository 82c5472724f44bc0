//! Orders in the console (issue 13 item 4): `/staff/orders` searches by
//! order number, WeChat transaction id, meter, room, buyer, campus-local
//! days and state, paged and limited to the operator's reach;
//! `/staff/orders/{id}` tells one order's story in time order.

use super::{Console, StaffError, StaffResult, fmt_seconds, html, html_with_status};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::{Query, State};
use domain::order::OrderState;
use domain::staff::{Action, Place};
use serde::Deserialize;
use store::story::{OrderSearch, Reach};

/// Orders on one page of results.
const PAGE_ROWS: i64 = 50;

/// Every state, in the order the search form lists them.
const STATES: [OrderState; 7] = [
    OrderState::Unpaid,
    OrderState::Charging,
    OrderState::Delayed,
    OrderState::Completed,
    OrderState::Closed,
    OrderState::Refunding,
    OrderState::Refunded,
];

/// A state's name in the page language.
pub(super) fn state_text(l: Lang, s: OrderState) -> String {
    l.t(&format!("order-state-{}", s.as_str()))
}

/// The search, from the query string. Empty fields match everything.
#[derive(Debug, Default, Deserialize)]
pub struct Search {
    #[serde(default)]
    no: String,
    #[serde(default)]
    transaction: String,
    #[serde(default)]
    meter: String,
    #[serde(default)]
    room: String,
    #[serde(default)]
    student: String,
    /// First day, `YYYY-MM-DD` (campus time).
    #[serde(default)]
    from: String,
    /// Last day, inclusive.
    #[serde(default)]
    to: String,
    #[serde(default)]
    state: String,
    /// Page, from 1.
    #[serde(default)]
    page: Option<i64>,
}

/// The start of campus-local day `s` plus `plus_days`, unix ms.
fn day_start(s: &str, plus_days: i64, tz: &jiff::tz::TimeZone) -> Option<i64> {
    let d: jiff::civil::Date = s.trim().parse().ok()?;
    let d = d.checked_add(jiff::Span::new().days(plus_days)).ok()?;
    d.to_datetime(jiff::civil::Time::midnight())
        .to_zoned_datetime(tz.clone())
        .ok()
        .map(|z| z.timestamp().as_millisecond())
}

impl Search {
    fn page(&self) -> i64 {
        self.page.unwrap_or(1).clamp(1, 10_000)
    }

    /// The store's search, or the catalog key of what is wrong with it
    /// (nothing is searched then).
    fn filter(&self, tz: &jiff::tz::TimeZone) -> Result<OrderSearch, &'static str> {
        let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let day = |s: &str, plus| match some(s) {
            None => Ok(None),
            Some(v) => day_start(&v, plus, tz)
                .map(Some)
                .ok_or("staff-orders-bad-date"),
        };
        let meter = match some(&self.meter) {
            None => None,
            Some(m) => Some(
                service::input::meter_number(&m)
                    .map_err(|_| "staff-orders-bad-meter")?
                    .to_string(),
            ),
        };
        let state = match some(&self.state) {
            None => None,
            Some(s) => Some(OrderState::parse(&s).ok_or("staff-orders-bad-state")?),
        };
        let from_ms = day(&self.from, 0)?;
        let until_ms = day(&self.to, 1)?;
        if let (Some(f), Some(u)) = (from_ms, until_ms)
            && f >= u
        {
            return Err("staff-orders-bad-range");
        }
        Ok(OrderSearch {
            out_trade_no: some(&self.no),
            transaction_id: some(&self.transaction),
            meter,
            room: some(&self.room),
            student: some(&self.student),
            from_ms,
            until_ms,
            state,
            offset: (self.page() - 1) * PAGE_ROWS,
            limit: PAGE_ROWS + 1,
        })
    }

    /// This search's query string for page `page`.
    fn link(&self, page: i64) -> String {
        let e = crate::url::encode;
        format!(
            "/staff/orders?no={}&transaction={}&meter={}&room={}&student={}&from={}&to={}&state={}&page={page}",
            e(&self.no),
            e(&self.transaction),
            e(&self.meter),
            e(&self.room),
            e(&self.student),
            e(&self.from),
            e(&self.to),
            e(&self.state),
        )
    }
}

/// One order as a list shows it.
pub(super) struct Row {
    pub(super) id: i64,
    pub(super) no: String,
    pub(super) created: String,
    pub(super) place: String,
    pub(super) meter: String,
    pub(super) buyer: String,
    pub(super) kwh: i64,
    pub(super) amount: String,
    pub(super) channel: String,
    pub(super) state: String,
    pub(super) state_code: &'static str,
}

/// Where a meter is, in the page language.
pub(super) fn place_text(l: Lang, p: &store::story::Place) -> String {
    let building = if l.tag().starts_with("zh") {
        &p.building_zh
    } else {
        &p.building_en
    };
    format!("{building} {}", p.room)
}

pub(super) fn row(l: Lang, tz: &jiff::tz::TimeZone, h: &store::story::Hit) -> Row {
    let o = &h.order;
    Row {
        id: o.id.get(),
        no: o.out_trade_no.clone(),
        created: fmt_seconds(o.created_at_ms, tz),
        place: place_text(l, &h.place),
        meter: h.place.address.clone(),
        buyer: match (&h.student_name, &o.operator) {
            (Some(n), _) if !n.is_empty() => n.clone(),
            (Some(_), _) => l.t("staff-orders-student"),
            (None, Some(op)) => l.t1("staff-orders-counter-by", "name", op.clone()),
            (None, None) => String::new(),
        },
        kwh: i64::from(o.kwh.get()),
        amount: o.amount_fen.to_string(),
        channel: l.t(&format!("staff-orders-channel-{}", o.channel.as_str())),
        state: state_text(l, o.state),
        state_code: o.state.as_str(),
    }
}

/// A state option of the search form.
struct StateOption {
    value: &'static str,
    label: String,
}

/// The search page.
#[derive(Template)]
#[template(path = "staff/orders.html")]
struct OrdersPage {
    l: Lang,
    frame: super::Frame,
    q: Search,
    states: Vec<StateOption>,
    rows: Vec<Row>,
    error: Option<String>,
    prev: Option<String>,
    next: Option<String>,
    page: i64,
}

/// `GET /staff/orders`.
pub async fn page(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ViewOrders as u8 }>,
    Query(q): Query<Search>,
) -> StaffResult {
    let l = op.l;
    let tz = crate::pages::campus_tz(&state);
    let reach = Reach::of(&op.operator);
    let (rows, error, more) = match q.filter(tz) {
        Ok(f) => {
            let found = store::story::search(state.db(), &f, &reach).await?;
            let more = found.len() > usize::try_from(PAGE_ROWS).unwrap_or(usize::MAX);
            let rows = found
                .iter()
                .take(usize::try_from(PAGE_ROWS).unwrap_or(usize::MAX))
                .map(|h| row(l, tz, h))
                .collect();
            (rows, None, more)
        }
        Err(key) => (Vec::new(), Some(l.t(key)), false),
    };
    let page = q.page();
    let failed = error.is_some();
    html_with_status(
        &OrdersPage {
            l,
            frame: op.frame("staff-orders-title", "/staff/orders"),
            states: STATES
                .into_iter()
                .map(|s| StateOption {
                    value: s.as_str(),
                    label: state_text(l, s),
                })
                .collect(),
            prev: (page > 1).then(|| q.link(page - 1)),
            next: more.then(|| q.link(page + 1)),
            page,
            rows,
            error,
            q,
        },
        failed,
    )
}

/// One event of the story as the page shows it.
struct EventRow {
    at: String,
    source: String,
    what: String,
    detail: String,
}

/// One ledger row as the page shows it.
struct LedgerLine {
    at: String,
    kind: String,
    debit: String,
    credit: String,
    amount: String,
}

/// The story page.
#[derive(Template)]
#[template(path = "staff/order.html")]
struct OrderPage {
    l: Lang,
    frame: super::Frame,
    o: Row,
    seq: String,
    transaction: String,
    refund_no: String,
    evidence: Vec<(String, String)>,
    job: String,
    events: Vec<EventRow>,
    ledger: Vec<LedgerLine>,
    open_flags: usize,
}

/// `GET /staff/orders/{id}`: the story; an order outside the operator's
/// reach is refused (403, audited) like any other place of theirs.
pub async fn story(
    State(state): State<AppState>,
    crate::pages::PathId(id): crate::pages::PathId,
    Console(op): Console<{ Action::ViewOrders as u8 }>,
) -> StaffResult {
    let order_id = domain::OrderId::new(id);
    let Some((area, place)) = store::story::place_of(state.db(), order_id).await? else {
        return Err(StaffError::NotFound);
    };
    op.require(
        &state,
        Action::ViewOrders,
        Place::Building(
            domain::AreaId::new(area),
            domain::BuildingId::new(place.building_id),
        ),
    )
    .await?;
    let reach = Reach::of(&op.operator);
    let Some(s) = store::story::story(state.db(), order_id, &reach).await? else {
        // In `can`'s scope but not the store's: the two rules disagree.
        return Err(StaffError::Forbidden);
    };
    let l = op.l;
    let tz = crate::pages::campus_tz(&state);
    let unknown = || l.t("staff-orders-unknown");
    let mut evidence = Vec::new();
    if let Some(e) = &s.evidence {
        evidence.push((
            l.t("staff-orders-meter-count"),
            e.purchase_count.map_or_else(unknown, |c| c.to_string()),
        ));
        evidence.push((
            l.t("staff-orders-meter-last-seq"),
            e.purchase_seq_last.to_string(),
        ));
        evidence.push((
            l.t("staff-orders-meter-remaining"),
            e.remaining_centikwh.map_or_else(unknown, |c| {
                format!(
                    "{} kWh ({})",
                    domain::CentiKwh::new(c),
                    e.remaining_at_ms
                        .map(|t| fmt_seconds(t, tz))
                        .unwrap_or_default()
                )
            }),
        ));
        evidence.push((
            l.t("staff-orders-meter-seen"),
            e.last_seen_at_ms
                .map_or_else(unknown, |t| fmt_seconds(t, tz)),
        ));
    }
    let job = s.job.as_ref().map_or_else(String::new, |j| {
        l.t2(
            &format!("staff-orders-job-{}", j.state),
            "attempts",
            j.attempts,
            "error",
            j.last_error.clone().unwrap_or_default(),
        )
    });
    let o = &s.hit.order;
    html(&OrderPage {
        l,
        frame: op.frame("staff-order-title", "/staff/orders"),
        seq: o.purchase_seq.map(|q| q.to_string()).unwrap_or_default(),
        transaction: o.transaction_id.clone().unwrap_or_default(),
        refund_no: o.refund_no.clone().unwrap_or_default(),
        o: row(l, tz, &s.hit),
        evidence,
        job,
        events: s
            .events
            .iter()
            .map(|e| EventRow {
                at: fmt_seconds(e.at_ms, tz),
                source: l.t(&format!("staff-story-{}", e.source.as_str())),
                what: e.what.clone(),
                detail: e.detail.clone(),
            })
            .collect(),
        ledger: s
            .ledger
            .iter()
            .map(|t| LedgerLine {
                at: fmt_seconds(t.created_at_ms, tz),
                kind: t.kind.clone(),
                debit: t.debit_account.clone(),
                credit: t.credit_account.clone(),
                amount: if t.unit == "fen" {
                    format!("¥{}", domain::Fen::new(t.amount))
                } else {
                    format!("{} kWh", domain::CentiKwh::new(t.amount))
                },
            })
            .collect(),
        open_flags: s
            .flags
            .iter()
            .filter(|f| f.resolved_at_ms.is_none())
            .count(),
    })
}
