//! The daily-usage bar chart (S9) as server-side SVG (`templates/chart.html`):
//! no script, no chart library, a few kilobytes. Days that could not be read
//! (S4) are drawn as a red dashed column across the whole height with a "?"
//! — visibly "unknown", never a zero-height bar. This module only computes
//! the geometry.

const W: i64 = 320;
const H: i64 = 160;
const LEFT: i64 = 30;
const RIGHT: i64 = 6;
const TOP: i64 = 12;
const BOTTOM: i64 = 22;

/// One column of the chart's input.
#[derive(Debug, Clone, Copy)]
pub struct Bar {
    /// Campus-local day number.
    pub day: i64,
    /// Usage, `None` when missing.
    pub usage_centikwh: Option<i64>,
}

/// A horizontal gridline with its axis value.
pub struct GridLine {
    /// Its height, px.
    pub y: i64,
    /// Its value, whole kWh.
    pub kwh: i64,
}

/// A drawn column.
pub struct Col {
    /// `MM-DD`.
    pub md: String,
    /// The usage, `None`: not read.
    pub usage: Option<domain::CentiKwh>,
    /// Geometry, px with two decimals.
    pub x: String,
    /// Top.
    pub y: String,
    /// Width.
    pub w: String,
    /// Height.
    pub h: String,
    /// Horizontal middle.
    pub mid: String,
    /// A date label under it.
    pub label: bool,
}

/// The chart as the template draws it.
pub struct Chart {
    /// View box width.
    pub w: i64,
    /// View box height.
    pub h: i64,
    /// Plot left edge.
    pub left: i64,
    /// Plot right edge.
    pub right: i64,
    /// Baseline of the "?" of a missing day.
    pub miss_y: i64,
    /// Baseline of the date labels.
    pub label_y: i64,
    /// Gridlines at 0, ½ and full.
    pub grid: Vec<GridLine>,
    /// The columns, oldest first.
    pub cols: Vec<Col>,
}

/// Lays out the chart for `bars` (oldest first).
pub fn usage_chart(bars: &[Bar]) -> Chart {
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
    let grid = (0..=2_i64)
        .map(|k| GridLine {
            y: TOP + plot_h - plot_h * k / 2,
            kwh: top * k / 2 / 100,
        })
        .collect();
    let slot = plot_w * 100 / n; // in 1/100 px, to avoid drifting
    let cols = bars
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let i = i64::try_from(i).unwrap_or(0);
            let x = LEFT * 100 + slot * i + slot / 8;
            let w = slot * 3 / 4;
            let date = domain::time::date_of_day_number(b.day);
            let (y, h) = match b.usage_centikwh {
                Some(u) => {
                    let h = (plot_h * 100 * u / top).max(if u > 0 { 100 } else { 0 });
                    ((TOP + plot_h) * 100 - h, h)
                }
                None => (TOP * 100, plot_h * 100),
            };
            Col {
                md: format!("{:02}-{:02}", date.month(), date.day()),
                usage: b.usage_centikwh.map(domain::CentiKwh::new),
                x: px(x),
                y: px(y),
                w: px(w),
                h: px(h),
                mid: px(x + w / 2),
                // A date label every 5 days and on the last day.
                label: i % 5 == 0 || i == n - 1,
            }
        })
        .collect();
    Chart {
        w: W,
        h: H,
        left: LEFT,
        right: W - RIGHT,
        miss_y: TOP + plot_h - 3,
        label_y: H - 8,
        grid,
        cols,
    }
}

/// `v` hundredths as an SVG coordinate with two decimals.
pub(crate) fn px(v: i64) -> String {
    format!("{}.{:02}", v / 100, (v % 100).abs())
}

/// The smallest 1/2/5 × 10^k whole-kWh value ≥ `centikwh`, in 0.01 kWh.
pub(crate) fn nice_ceiling(centikwh: i64) -> i64 {
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
        let c = usage_chart(&bars);
        assert_eq!(c.cols.iter().filter(|c| c.usage.is_some()).count(), 2);
        // A missing day spans the whole plot height.
        assert_eq!(c.cols[1].h, px((H - TOP - BOTTOM) * 100));
        // Zero use is a zero-height bar, not a missing one.
        assert_eq!(c.cols[2].h, "0.00");
    }

    #[test]
    fn ceilings() {
        assert_eq!(nice_ceiling(100), 100);
        assert_eq!(nice_ceiling(101), 200);
        assert_eq!(nice_ceiling(730), 1000);
        assert_eq!(nice_ceiling(1200), 2000);
    }
}
