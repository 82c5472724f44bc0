//! The bill (S13): daily usage of a meter for a chosen month; days that
//! could not be read are in red with the explanation of S4.

use super::{Ctx, PageError, PageResult, Shell, Tab, html, kwh, parse_id, see};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::{Query, State};
use serde::Deserialize;

/// Query of the bill.
#[derive(Debug, Deserialize)]
pub struct BillQuery {
    /// `YYYY-MM`; default this month.
    month: Option<String>,
    /// Binding id; default the default meter. A string so that a tampered
    /// value is "not found" like any other id, not a parse error.
    meter: Option<String>,
}

/// `GET /bill`.
pub async fn page(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<BillQuery>,
) -> PageResult {
    let l = ctx.l;
    let student = &ctx.student;
    let m = match q.meter.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => store::students::binding(state.db(), student.id, parse_id(id)?)
            .await?
            .ok_or(PageError::NotFound)?,
        None => match store::students::default_binding(state.db(), student.id).await? {
            Some(m) => m,
            None => return see("/bind?first=1"),
        },
    };
    let tz = m.time_zone.tz();
    let now = store::now_ms();
    let today = domain::time::local_date(now, tz);
    let first = q
        .month
        .as_deref()
        .and_then(|s| jiff::civil::Date::strptime("%Y-%m-%d", format!("{s}-01")).ok())
        .filter(|d| d.year() >= 2000 && *d <= today)
        .unwrap_or_else(|| today.first_of_month());
    let last = first.last_of_month().min(today);
    // Days before the meter's data starts were never to be read: they are
    // left out, not listed as missing (issue 11 item 10).
    let start_day = store::students::usage_start(state.db(), m.meter_id.get())
        .await?
        .ok_or(PageError::NotFound)?
        .first_day(tz);
    let (from, to) = (
        domain::time::day_number(first).max(start_day),
        domain::time::day_number(last),
    );
    let rows = store::students::daily_usage(state.db(), m.meter_id.get(), from, to).await?;
    let starts_in_or_after = (start_day > domain::time::day_number(first))
        .then(|| domain::time::date_of_day_number(start_day).to_string());
    let month_s = format!("{:04}-{:02}", first.year(), first.month());

    let mut bindings = store::students::bindings(state.db(), student.id).await?;
    super::sort_meters(&mut bindings);
    let total: i64 = rows.iter().filter_map(|r| r.usage_centikwh).sum();
    let mut it = rows.iter().peekable();
    let mut days = Vec::with_capacity(31);
    for day in from..=to {
        while it.peek().is_some_and(|r| r.day < day) {
            it.next();
        }
        let usage = it
            .peek()
            .filter(|r| r.day == day)
            .and_then(|r| r.usage_centikwh);
        let date = domain::time::date_of_day_number(day);
        days.push(BillDay {
            md: format!("{:02}-{:02}", date.month(), date.day()),
            usage: match usage {
                Some(u) => DayUsage::Read(kwh(u)),
                // Today is still running: not missing, just not over.
                None if day == to && last == today => DayUsage::Today,
                None => DayUsage::Missing,
            },
        });
    }
    let here = format!("/bill?month={month_s}");
    html(&BillPage {
        l,
        shell: Shell::new(l, "bill-title", Some(student), Tab::Home, &here),
        meters: bindings
            .iter()
            .map(|x| super::buy::AreaOption {
                id: x.binding_id,
                name: picker_label(l, x),
                selected: x.binding_id == m.binding_id,
            })
            .collect(),
        place: super::overview::place(l, &m),
        max_month: format!("{:04}-{:02}", today.year(), today.month()),
        starts: starts_in_or_after,
        min_month: {
            let d = domain::time::date_of_day_number(start_day).min(today);
            format!("{:04}-{:02}", d.year(), d.month())
        },
        total: kwh(total),
        month: month_s,
        days,
    })
}

/// A meter in the bill's picker: building and room first, so that two
/// meters of one area still differ where a narrow select cuts the text
/// (issue 11 item 7), then the area.
fn picker_label(l: Lang, m: &store::students::BoundMeter) -> String {
    format!(
        "{} {} · {}",
        super::area_name(l, &m.building_name_zh, &m.building_name_en),
        m.room,
        super::area_name(l, &m.area_name_zh, &m.area_name_en),
    )
}

/// The bill page.
#[derive(Template)]
#[template(path = "bill.html")]
struct BillPage<'a> {
    l: Lang,
    shell: Shell<'a>,
    /// The student's meters (a picker when more than one).
    meters: Vec<super::buy::AreaOption>,
    place: String,
    month: String,
    /// The month the meter's data starts (the picker's lower bound).
    min_month: String,
    max_month: String,
    days: Vec<BillDay>,
    /// The date the meter's data starts, when that is after the month's
    /// first day.
    starts: Option<String>,
    total: domain::CentiKwh,
}

/// One day of the bill.
struct BillDay {
    md: String,
    usage: DayUsage,
}

/// A day's usage.
enum DayUsage {
    Read(domain::CentiKwh),
    /// Today, still running.
    Today,
    /// Could not be read.
    Missing,
}
