//! The bill (S13): daily usage of a meter for a chosen month; days that
//! could not be read are in red with the explanation of S4.

use super::layout::{Shell, Tab, render};
use super::{Esc, PageError, PageResult, kwh, parse_id};
use crate::AppState;
use crate::i18n::Lang;
use crate::session::CurrentStudent;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use std::fmt::Write as _;

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
    lang: Lang,
    student: CurrentStudent,
    Query(q): Query<BillQuery>,
) -> PageResult {
    let l = lang;
    let m = match q.meter.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => store::students::binding(state.db(), student.id, parse_id(id)?)
            .await?
            .ok_or(PageError::NotFound)?,
        None => match store::students::default_binding(state.db(), student.id).await? {
            Some(m) => m,
            None => return Ok(Redirect::to("/bind?first=1").into_response()),
        },
    };
    let tz = domain::time::campus_tz(&m.time_zone);
    let now = store::now_ms();
    let today = domain::time::local_date(now, &tz);
    let first = q
        .month
        .as_deref()
        .and_then(|s| jiff::civil::Date::strptime("%Y-%m-%d", format!("{s}-01")).ok())
        .filter(|d| d.year() >= 2000 && *d <= today)
        .unwrap_or_else(|| today.first_of_month());
    let last = first.last_of_month().min(today);
    let (from, to) = (
        domain::time::day_number(first),
        domain::time::day_number(last),
    );
    let rows = store::students::daily_usage(state.db(), m.meter_id, from, to).await?;
    let month_s = format!("{:04}-{:02}", first.year(), first.month());

    let bindings = store::students::bindings(state.db(), student.id).await?;
    let mut b = String::with_capacity(8192);
    let _ = write!(
        b,
        "<form class=card method=get action=\"/bill\" id=bill-form>"
    );
    if bindings.len() > 1 {
        let _ = write!(
            b,
            "<label for=meter>{}</label><select id=meter name=meter>",
            l.t("电表", "Meter")
        );
        for x in &bindings {
            let _ = write!(
                b,
                "<option value=\"{}\"{}>{}</option>",
                x.binding_id,
                if x.binding_id == m.binding_id {
                    " selected"
                } else {
                    ""
                },
                Esc(&super::overview::place(l, x))
            );
        }
        b.push_str("</select>");
    } else {
        let _ = write!(b, "<p>{}</p>", Esc(&super::overview::place(l, &m)));
    }
    let _ = write!(
        b,
        "<label for=month>{}</label><input type=month id=month name=month value=\"{}\" max=\"{:04}-{:02}\">\
         <button class=\"btn sec\" type=submit>{}</button></form>",
        l.t("月份", "Month"),
        month_s,
        today.year(),
        today.month(),
        l.t("查询", "Show"),
    );
    let total: i64 = rows.iter().filter_map(|r| r.usage_centikwh).sum();
    let _ = write!(
        b,
        "<div class=card><h2>{} {}</h2><table id=bill-table><thead><tr><th>{}</th><th class=num>{}</th></tr></thead><tbody>",
        month_s,
        l.t("日用电明细", "daily usage"),
        l.t("日期", "Date"),
        l.t("用电量 (kWh)", "Usage (kWh)"),
    );
    let mut it = rows.iter().peekable();
    let mut missing = 0;
    for day in from..=to {
        while it.peek().is_some_and(|r| r.day < day) {
            it.next();
        }
        let usage = it
            .peek()
            .filter(|r| r.day == day)
            .and_then(|r| r.usage_centikwh);
        let date = domain::time::date_of_day_number(day);
        match usage {
            Some(u) => {
                let _ = write!(
                    b,
                    "<tr><td>{:02}-{:02}</td><td class=num>{}</td></tr>",
                    date.month(),
                    date.day(),
                    kwh(u)
                );
            }
            // Today is still running: not missing, just not over.
            None if day == to && last == today => {
                let _ = write!(
                    b,
                    "<tr><td>{:02}-{:02}</td><td class=\"num muted\">{}</td></tr>",
                    date.month(),
                    date.day(),
                    l.t("今日统计中", "today, in progress")
                );
            }
            None => {
                missing += 1;
                let _ = write!(
                    b,
                    "<tr class=missing><td>{:02}-{:02}</td><td class=num>{}</td></tr>",
                    date.month(),
                    date.day(),
                    l.t("未抄到", "not read")
                );
            }
        }
    }
    let _ = write!(
        b,
        "</tbody><tfoot><tr><th>{}</th><th class=num id=bill-total>{}</th></tr></tfoot></table>",
        l.t("合计", "Total"),
        kwh(total)
    );
    if missing > 0 {
        let _ = write!(
            b,
            "<p class=missing id=missing-note>{}</p>",
            l.t(
                "因通讯延迟等问题，红色字体显示的为当日未抄到用电数据，并不代表当日无用电。",
                "Red rows are days whose reading could not be collected (communication delays and the like); they do not mean no electricity was used."
            )
        );
    }
    let _ = write!(
        b,
        "<p class=muted id=reference-note>{}</p></div>",
        l.t(
            "此处显示数据仅做参考，可能与实际数据存在偏差，请以实际发生数据为准。",
            "These figures are for reference only and may differ from the actual figures; the actual consumption prevails."
        )
    );
    let here = format!("/bill?month={month_s}");
    Ok(render(
        &Shell {
            lang,
            title: l.t("账单查询", "Bill"),
            student: Some(&student),
            tab: Tab::Home,
            here: &here,
        },
        &b,
    )
    .into_response())
}
