//! The overview ("综合首页", S9) of the student's default meter.

use super::chart::{Bar, usage_chart};
use super::layout::{Shell, Tab, render};
use super::{Esc, PageResult, area_name, fmt_time, kwh};
use crate::AppState;
use crate::i18n::Lang;
use crate::session::StudentWithDefaultMeter;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;
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
        return Ok(Redirect::to("/bind?first=1").into_response());
    };
    let tz = domain::time::campus_tz(&m.time_zone);
    let now = store::now_ms();
    let today_date = domain::time::local_date(now, &tz);
    let today = domain::time::day_number(today_date);
    let month_start = domain::time::day_number(today_date.first_of_month());
    let from = month_start.min(today - CHART_DAYS);
    let days = store::students::daily_usage(state.db(), m.meter_id, from, today).await?;
    let notices = latest_notices(&state, m.area_id).await?;

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
    let mut b = String::with_capacity(16_384);
    if q.bound == Some(1) {
        let _ = write!(
            b,
            "<div class=warnbox id=bound-ok><span class=ok>✔</span> {}</div>",
            l.t("绑定成功。", "Meter bound.")
        );
    }
    if m.password_is_default {
        let _ = write!(
            b,
            "<div class=warnbox id=default-password>{} <a href=\"/me/meters/{}/password\">{}</a></div>",
            l.t(
                "这块电表仍在使用默认验证密码 000000，任何人都可能绑定它。请及时修改。",
                "This meter still has the default password 000000: anyone could bind it. Please change it."
            ),
            m.binding_id,
            l.t("立即修改", "Change it now")
        );
    }
    let _ = write!(
        b,
        "<div class=card id=meter-card><div class=row><span>{place}</span><span class=muted>{no} {addr}</span></div>",
        place = Esc(&place(l, &m)),
        no = l.t("表号", "No."),
        addr = Esc(&m.address),
    );
    let _ = write!(
        b,
        "<div class=grid2><div><div class=muted>{rl}</div><div class=big id=remaining>{rv}<small> kWh</small></div>\
         <div class=muted id=remaining-at>{ra}</div></div>\
         <div><div class=muted>{ml}</div><div class=big id=month-usage>{mv}<small> kWh</small></div>{mm}</div></div>",
        rl = l.t("表内剩余", "Remaining"),
        rv = m
            .remaining_centikwh
            .map_or_else(|| "—".to_owned(), |r| kwh(r).to_string()),
        ra = match m.remaining_at_ms {
            Some(t) => format!("{} {}", l.t("抄表时间", "Read at"), fmt_time(t, &tz)),
            None => l.t("尚未抄到", "Not read yet").to_owned(),
        },
        ml = l.t("本月用电", "This month"),
        mv = kwh(month_usage),
        mm = if month_missing {
            format!(
                "<div class=\"muted missing\">{}</div>",
                l.t("含未抄到的日子", "some days not read")
            )
        } else {
            String::new()
        },
    );
    // Days left at the recent rate.
    if let (Some(r), Some(rate)) = (m.remaining_centikwh, rate)
        && rate > 0
    {
        let days_left = r.max(0) / rate;
        let _ = write!(
            b,
            "<p id=days-left>{} <b>{}</b> {} <span class=muted>({} {} kWh/{})</span></p>",
            l.t("按近期用量约可用", "At the recent rate this lasts about"),
            days_left,
            l.t("天", "days"),
            l.t("近 7 天日均", "7-day average"),
            kwh(rate),
            l.t("天", "day"),
        );
    }
    b.push_str(&relay_html(l, &m, now));
    let _ = write!(
        b,
        "<div class=grid2><a class=\"btn sec\" href=\"/bill\" id=link-bill>{}</a><a class=\"btn sec\" href=\"/records\" id=link-records>{}</a></div>\
         <a class=btn href=\"/buy/order?area_id={}&amp;meter={}\" id=link-buy>{}</a></div>",
        l.t("用电查询", "Bill"),
        l.t("购电记录", "Records"),
        m.area_id,
        Esc(&m.address),
        l.t("购电", "Buy electricity"),
    );
    let _ = write!(
        b,
        "<div class=card><h2>{}</h2>{}</div>",
        l.t("最近30天日用电量走势", "Daily usage, last 30 days"),
        usage_chart(&bars, l)
    );
    let _ = write!(
        b,
        "<div class=card id=notices><h2>{}</h2>",
        l.t("最新通知", "Latest notices")
    );
    if notices.is_empty() {
        let _ = write!(b, "<p class=muted>{}</p>", l.t("暂无通知", "No notices"));
    }
    for n in notices.iter() {
        let _ = write!(
            b,
            "<details class=row><summary>{} <span class=muted>{}</span></summary><p>{}</p></details>",
            Esc(&n.title),
            fmt_time(n.created_at_ms, &tz),
            Esc(&n.body)
        );
    }
    b.push_str("</div>");
    Ok(render(
        &Shell {
            lang,
            title: l.t("综合首页", "Overview"),
            student: Some(&student),
            tab: Tab::Home,
            here: "/overview",
        },
        &b,
    )
    .into_response())
}

/// How long the notices of an area are served from memory. Notices are
/// published a few times a term; every overview asking the database for
/// them would be most of the page's cost. A new notice shows within this.
const NOTICES_CACHE_MS: u64 = 10_000;
/// Most areas cached (bounded; an area count beyond it just skips caching).
const NOTICES_CACHE_AREAS_MAX: usize = 1_000;

/// Notices per area with the instant they were read.
pub type NoticeCache = Mutex<HashMap<i64, (Instant, Arc<Vec<store::students::Notice>>)>>;

async fn latest_notices(
    state: &AppState,
    area_id: i64,
) -> store::Result<Arc<Vec<store::students::Notice>>> {
    let cache = &state.pages_cache().notices;
    let ttl = Duration::from_millis(NOTICES_CACHE_MS);
    if let Ok(c) = cache.lock()
        && let Some((at, n)) = c.get(&area_id)
        && at.elapsed() < ttl
    {
        return Ok(n.clone());
    }
    let n = Arc::new(store::students::latest_notices(state.db(), area_id, NOTICES_MAX).await?);
    if let Ok(mut c) = cache.lock() {
        if c.len() >= NOTICES_CACHE_AREAS_MAX {
            c.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        if c.len() < NOTICES_CACHE_AREAS_MAX {
            c.insert(area_id, (Instant::now(), n.clone()));
        }
    }
    Ok(n)
}

/// "Area · building room".
pub fn place(l: Lang, m: &BoundMeter) -> String {
    format!(
        "{} · {} {}",
        area_name(l, &m.area_name_zh, &m.area_name_en),
        area_name(l, &m.building_name_zh, &m.building_name_en),
        m.room
    )
}

/// The relay state with the reason when power is off.
fn relay_html(l: Lang, m: &BoundMeter, now_ms: i64) -> String {
    let mut s = String::with_capacity(512);
    let _ = write!(
        s,
        "<div class=row id=relay><span>{}</span>",
        l.t("用电状态", "Power")
    );
    match m.relay_closed {
        Some(true) => {
            let _ = write!(s, "<span class=ok>{}", l.t("正常供电", "On"));
            if let Some(p) = m.power_w {
                let _ = write!(s, " · {p} W");
            }
            s.push_str("</span>");
        }
        Some(false) => {
            let reason = match m.relay_reason.as_deref() {
                Some("balance") => l
                    .t(
                        "电量用完，购电后自动恢复",
                        "Out of energy; restores after a purchase",
                    )
                    .to_owned(),
                Some("malicious_load") => {
                    let mut r = l
                        .t(
                            "检测到违规大功率电器（恶性负载）",
                            "Forbidden high-power appliance detected",
                        )
                        .to_owned();
                    if let Some(at) = m.relay_restore_at_ms.filter(|at| *at > now_ms) {
                        let min = (at - now_ms + 59_999) / 60_000;
                        let _ = match l {
                            Lang::Zh => write!(r, "，约 {min} 分钟后自动恢复"),
                            Lang::En => write!(r, "; restores by itself in about {min} min"),
                        };
                    }
                    r
                }
                Some("over_power") => l.t("超过功率限制", "Over the power limit").to_owned(),
                Some("staff") => l
                    .t(
                        "管理员已断电，请联系后勤服务大厅",
                        "Switched off by staff; contact the service hall",
                    )
                    .to_owned(),
                Some("lockout") => l
                    .t("当前时段停止供电", "Scheduled power-off hours")
                    .to_owned(),
                _ => l.t("原因未知", "Reason unknown").to_owned(),
            };
            let _ = write!(
                s,
                "<span class=err>{} · {}</span>",
                l.t("已断电", "Off"),
                Esc(&reason)
            );
        }
        None => {
            let _ = write!(s, "<span class=muted>{}</span>", l.t("未知", "Unknown"));
        }
    }
    if m.online == Some(false) {
        let _ = write!(
            s,
            " <span class=muted>({})</span>",
            l.t("电表暂时离线", "meter offline")
        );
    }
    s.push_str("</div>");
    s
}
