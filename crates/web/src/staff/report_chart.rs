//! The reports' charts as server-side SVG (`templates/staff/report_*.html`
//! draw them): a stacked column per day (sales in yuan by channel, usage in
//! kWh by building) and a heat strip of read success (a row per bus, a cell
//! per day). Geometry only, in hundredths of a pixel like the student
//! chart (`pages::chart`, whose axis rounding and formatting this reuses);
//! values are hundredths (fen, 0.01 kWh) and the axis shows whole units.

use crate::pages::chart::{nice_ceiling, px};
use std::collections::BTreeMap;
use store::reports::Range;

const W: i64 = 720;
const H: i64 = 220;
const LEFT: i64 = 48;
const RIGHT: i64 = 8;
const TOP: i64 = 12;
const BOTTOM: i64 = 22;
/// Heat strip: the bus labels' column and a row's height.
const HEAT_LEFT: i64 = 120;
const HEAT_ROW: i64 = 14;

/// Series colours, reused in turn past the last.
const PALETTE: [&str; 10] = [
    "#07c160", "#1677ff", "#fa8c16", "#722ed1", "#13c2c2", "#eb2f96", "#a0d911", "#2f54eb",
    "#faad14", "#8c8c8c",
];

/// A stacked series (a channel, a building).
pub struct Series {
    /// Its name.
    pub label: String,
}

/// A legend entry.
pub struct LegendItem {
    /// The name.
    pub label: String,
    /// Its colour.
    pub color: &'static str,
}

/// A gridline with its axis value in whole units.
pub struct GridLine {
    /// Height, px.
    pub y: i64,
    /// Value in yuan or kWh: whole, or with two decimals when not.
    pub value: String,
}

/// One segment of a column.
pub struct Seg {
    /// Geometry, px with two decimals.
    pub x: String,
    /// Top.
    pub y: String,
    /// Width.
    pub w: String,
    /// Height.
    pub h: String,
    /// Fill.
    pub color: &'static str,
    /// Series name.
    pub series: String,
    /// The value, two decimals.
    pub value: String,
}

/// One day's column.
pub struct StackCol {
    /// `MM-DD`.
    pub md: String,
    /// Horizontal middle.
    pub mid: String,
    /// A date label under it.
    pub label: bool,
    /// Its segments, bottom first.
    pub segs: Vec<Seg>,
}

/// A stacked column chart.
pub struct StackChart {
    /// View box width.
    pub w: i64,
    /// View box height.
    pub h: i64,
    /// Plot left edge.
    pub left: i64,
    /// Plot right edge.
    pub right: i64,
    /// Baseline of the date labels.
    pub label_y: i64,
    /// Gridlines at 0, ½ and full.
    pub grid: Vec<GridLine>,
    /// One per day of the range, oldest first.
    pub cols: Vec<StackCol>,
    /// The series.
    pub legend: Vec<LegendItem>,
}

fn md(day: i64) -> String {
    let d = domain::time::date_of_day_number(day);
    format!("{:02}-{:02}", d.month(), d.day())
}

/// Hundredths as an axis label: `5`, `2.50`.
fn axis_text(v: i64) -> String {
    if v % 100 == 0 {
        (v / 100).to_string()
    } else {
        px(v)
    }
}

/// A date label every `n / 6` days, and on the last.
fn labelled(i: i64, n: i64) -> bool {
    let every = (n / 6).max(1);
    i % every == 0 || i == n - 1
}

/// Lays out the columns of `range` from `values` ((day, series index) →
/// hundredths; a missing key is zero).
pub fn stacked(
    range: Range,
    series: Vec<Series>,
    values: &BTreeMap<(i64, usize), i64>,
) -> StackChart {
    let n = range.days().max(1);
    let mut per_day: BTreeMap<i64, i64> = BTreeMap::new();
    for ((day, _), v) in values {
        *per_day.entry(*day).or_insert(0) += (*v).max(0);
    }
    let top = nice_ceiling(per_day.values().copied().max().unwrap_or(0).max(100));
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let slot = plot_w * 100 / n;
    let color = |i: usize| PALETTE[i % PALETTE.len()];
    let cols = (range.from..=range.to)
        .enumerate()
        .map(|(i, day)| {
            let i = i64::try_from(i).unwrap_or(0);
            let x = LEFT * 100 + slot * i + slot / 8;
            let w = (slot * 3 / 4).max(50);
            let mut base = (TOP + plot_h) * 100;
            let segs = series
                .iter()
                .enumerate()
                .filter_map(|(s, ser)| {
                    let v = values.get(&(day, s)).copied().unwrap_or(0).max(0);
                    if v == 0 {
                        return None;
                    }
                    let h = (plot_h * 100 * v / top).max(50);
                    base -= h;
                    Some(Seg {
                        x: px(x),
                        y: px(base),
                        w: px(w),
                        h: px(h),
                        color: color(s),
                        series: ser.label.clone(),
                        value: px(v),
                    })
                })
                .collect();
            StackCol {
                md: md(day),
                mid: px(x + w / 2),
                label: labelled(i, n),
                segs,
            }
        })
        .collect();
    StackChart {
        w: W,
        h: H,
        left: LEFT,
        right: W - RIGHT,
        label_y: H - 8,
        grid: (0..=2_i64)
            .map(|k| GridLine {
                y: TOP + plot_h - plot_h * k / 2,
                value: axis_text(top * k / 2),
            })
            .collect(),
        cols,
        legend: series
            .into_iter()
            .enumerate()
            .map(|(i, s)| LegendItem {
                label: s.label,
                color: color(i),
            })
            .collect(),
    }
}

/// One cell of the heat strip.
pub struct HeatCell {
    /// Geometry, px with two decimals.
    pub x: String,
    /// Width.
    pub w: String,
    /// Fill: green at 99 % and above down to red below 80 %; grey when
    /// nothing was due or the day is not in the report.
    pub fill: &'static str,
    /// `MM-DD`.
    pub md: String,
    /// The ratio, `99.50%`, or empty.
    pub ratio: String,
}

/// One bus's row.
pub struct HeatRow {
    /// `gateway / port`.
    pub label: String,
    /// Top, px.
    pub y: i64,
    /// Baseline of the label.
    pub text_y: i64,
    /// A cell per day.
    pub cells: Vec<HeatCell>,
}

/// A date under the strip.
pub struct DayLabel {
    /// Horizontal middle.
    pub x: String,
    /// `MM-DD`.
    pub md: String,
}

/// The heat strip.
pub struct HeatStrip {
    /// View box width.
    pub w: i64,
    /// View box height.
    pub h: i64,
    /// Row height, px.
    pub row_h: i64,
    /// Left edge of the cells (the labels end there).
    pub left: i64,
    /// Baseline of the date labels.
    pub label_y: i64,
    /// The rows.
    pub rows: Vec<HeatRow>,
    /// Some dates under it.
    pub days: Vec<DayLabel>,
}

/// The fill of a read-success ratio.
fn heat_fill(bp: Option<i64>) -> &'static str {
    match bp {
        None => "#eeeeee",
        Some(b) if b >= 9_900 => "#07c160",
        Some(b) if b >= 9_500 => "#95de64",
        Some(b) if b >= 8_000 => "#faad14",
        Some(_) => "#fa5151",
    }
}

/// Lays out `buses` (labels, rows in order) over `range` from `cells`
/// ((day, bus index) → ratio in basis points, `None`: nothing due).
pub fn heat(
    range: Range,
    buses: Vec<String>,
    cells: &BTreeMap<(i64, usize), Option<i64>>,
) -> HeatStrip {
    let n = range.days().max(1);
    let plot_w = W - HEAT_LEFT - RIGHT;
    let slot = plot_w * 100 / n;
    let rows_n = i64::try_from(buses.len()).unwrap_or(0);
    let h = TOP + rows_n * HEAT_ROW + BOTTOM;
    let rows = buses
        .into_iter()
        .enumerate()
        .map(|(b, label)| {
            let y = TOP + i64::try_from(b).unwrap_or(0) * HEAT_ROW;
            HeatRow {
                label,
                y,
                text_y: y + HEAT_ROW - 4,
                cells: (range.from..=range.to)
                    .enumerate()
                    .map(|(i, day)| {
                        let i = i64::try_from(i).unwrap_or(0);
                        let bp = cells.get(&(day, b)).copied().flatten();
                        HeatCell {
                            x: px(HEAT_LEFT * 100 + slot * i),
                            w: px((slot - 20).max(20)),
                            fill: heat_fill(bp),
                            md: md(day),
                            ratio: bp.map(|b| format!("{}%", px(b))).unwrap_or_default(),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let days = (range.from..=range.to)
        .enumerate()
        .filter(|(i, _)| labelled(i64::try_from(*i).unwrap_or(0), n))
        .map(|(i, day)| DayLabel {
            x: px(HEAT_LEFT * 100 + slot * i64::try_from(i).unwrap_or(0) + slot / 2),
            md: md(day),
        })
        .collect();
    HeatStrip {
        w: W,
        h,
        row_h: HEAT_ROW - 2,
        left: HEAT_LEFT,
        label_y: h - 8,
        rows,
        days,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_stack_to_the_day_total() {
        let range = Range::new(100, 102).unwrap();
        let mut v = BTreeMap::new();
        v.insert((100, 0), 300);
        v.insert((100, 1), 100);
        v.insert((102, 1), 200);
        let c = stacked(
            range,
            vec![Series { label: "A".into() }, Series { label: "B".into() }],
            &v,
        );
        assert_eq!(c.cols.len(), 3);
        assert_eq!(c.cols[0].segs.len(), 2);
        assert!(c.cols[1].segs.is_empty());
        // The axis tops at 5 (whole units) for a 4.00 day; the 3.00 segment
        // is 3/5 of the plot high.
        assert_eq!(c.grid[2].value, "5");
        assert_eq!(c.grid[1].value, "2.50");
        assert_eq!(
            c.cols[0].segs[0].h,
            px((H - TOP - BOTTOM) * 100 * 300 / 500)
        );
        assert_eq!(c.legend[1].color, PALETTE[1]);
    }

    #[test]
    fn heat_colours_follow_the_ratio() {
        let range = Range::new(10, 11).unwrap();
        let mut cells = BTreeMap::new();
        cells.insert((10, 0), Some(10_000));
        cells.insert((11, 0), Some(7_000));
        let h = heat(range, vec!["gw / 1".into()], &cells);
        assert_eq!(h.rows[0].cells[0].fill, "#07c160");
        assert_eq!(h.rows[0].cells[1].fill, "#fa5151");
        assert_eq!(h.rows[0].cells[1].ratio, "70.00%");
    }
}
