//! The daily-usage bar chart (S9) as server-side SVG: no script, no chart
//! library, a few kilobytes. Days that could not be read (S4) are drawn as a
//! red dashed column across the whole height with a "?" — visibly "unknown",
//! never a zero-height bar.

use crate::i18n::Lang;
use std::fmt::Write as _;

const W: i64 = 320;
const H: i64 = 160;
const LEFT: i64 = 30;
const RIGHT: i64 = 6;
const TOP: i64 = 12;
const BOTTOM: i64 = 22;

/// One column of the chart.
#[derive(Debug, Clone, Copy)]
pub struct Bar {
    /// Campus-local day number.
    pub day: i64,
    /// Usage, `None` when missing.
    pub usage_centikwh: Option<i64>,
}

/// Renders the chart for `bars` (oldest first).
pub fn usage_chart(bars: &[Bar], lang: Lang) -> String {
    let mut s = String::with_capacity(6000);
    let n = i64::try_from(bars.len()).unwrap_or(1).max(1);
    let max = bars
        .iter()
        .filter_map(|b| b.usage_centikwh)
        .max()
        .unwrap_or(0)
        .max(100);
    // A round top for the axis: the next whole kWh step of 1, 2, 5 × 10^k.
    let top = nice_ceiling(max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let _ = write!(
        s,
        "<svg id=usage-chart class=chart viewBox=\"0 0 {W} {H}\" role=img aria-label=\"{label}\" \
         xmlns=\"http://www.w3.org/2000/svg\" font-family=\"sans-serif\" font-size=\"9\">",
        label = lang.t("最近30天日用电量", "Daily usage, last 30 days"),
    );
    // Axis and gridlines at 0, ½ and full.
    for k in 0..=2_i64 {
        let y = TOP + plot_h - plot_h * k / 2;
        let v = top * k / 2;
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#eee\"/>\
             <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\" fill=\"#999\">{v}</text>",
            x2 = W - RIGHT,
            tx = LEFT - 3,
            ty = y + 3,
            v = domain::CentiKwh::new(v).get() / 100,
        );
    }
    let slot = plot_w * 100 / n; // in 1/100 px, to avoid drifting
    for (i, b) in bars.iter().enumerate() {
        let i = i64::try_from(i).unwrap_or(0);
        let x = LEFT * 100 + slot * i + slot / 8;
        let w = slot * 3 / 4;
        let date = domain::time::date_of_day_number(b.day);
        let md = format!("{:02}-{:02}", date.month(), date.day());
        match b.usage_centikwh {
            Some(u) => {
                let h = (plot_h * 100 * u / top).max(if u > 0 { 100 } else { 0 });
                let y = (TOP + plot_h) * 100 - h;
                let _ = write!(
                    s,
                    "<rect class=bar data-day=\"{md}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#07c160\" rx=\"1\">\
                     <title>{md}: {} kWh</title></rect>",
                    px(x),
                    px(y),
                    px(w),
                    px(h),
                    domain::CentiKwh::new(u)
                );
            }
            None => {
                let _ = write!(
                    s,
                    "<rect class=miss data-day=\"{md}\" x=\"{}\" y=\"{TOP}\" width=\"{}\" height=\"{plot_h}\" \
                     fill=\"#fff1f0\" stroke=\"#fa5151\" stroke-dasharray=\"2 2\"><title>{md}: {}</title></rect>\
                     <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#fa5151\">?</text>",
                    px(x),
                    px(w),
                    lang.t("未抄到", "not read"),
                    px(x + w / 2),
                    TOP + plot_h - 3,
                );
            }
        }
        // A date label every 5 days and on the last day.
        if i % 5 == 0 || i == n - 1 {
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#999\">{md}</text>",
                px(x + w / 2),
                H - 8
            );
        }
    }
    s.push_str("</svg>");
    let _ = write!(
        s,
        "<div class=legend><span><i style=\"background:#07c160\"></i>{}</span>\
         <span><i style=\"background:#fff1f0;border:1px dashed #fa5151\"></i>{}</span></div>",
        lang.t("日用电量 (kWh)", "Daily usage (kWh)"),
        lang.t("未抄到数据（不代表未用电）", "Not read (not zero use)"),
    );
    s
}

/// `v` hundredths as an SVG coordinate with two decimals.
fn px(v: i64) -> String {
    format!("{}.{:02}", v / 100, (v % 100).abs())
}

/// The smallest 1/2/5 × 10^k whole-kWh value ≥ `centikwh`, in 0.01 kWh.
fn nice_ceiling(centikwh: i64) -> i64 {
    let mut step = 100_i64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= centikwh {
                return step.saturating_mul(m);
            }
        }
        if step > i64::MAX / 100 {
            return centikwh;
        }
        step *= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_days_are_not_zero_bars() {
        let bars = [
            Bar {
                day: 20_000,
                usage_centikwh: Some(350),
            },
            Bar {
                day: 20_001,
                usage_centikwh: None,
            },
            Bar {
                day: 20_002,
                usage_centikwh: Some(0),
            },
        ];
        let svg = usage_chart(&bars, Lang::Zh);
        assert_eq!(svg.matches("class=bar ").count(), 2);
        assert_eq!(svg.matches("class=miss ").count(), 1);
        assert!(svg.contains("未抄到"));
    }

    #[test]
    fn ceilings() {
        assert_eq!(nice_ceiling(100), 100);
        assert_eq!(nice_ceiling(101), 200);
        assert_eq!(nice_ceiling(730), 1000);
        assert_eq!(nice_ceiling(1200), 2000);
    }
}
