//! The writing side of the spreadsheet files (issue 14 item 7): a typed
//! table ([`Sheet`]) written as XLSX (numbers as numbers, money in yuan
//! with a `0.00` format, days as Excel dates, a bold header row, frozen
//! panes, column widths) or as CSV (UTF-8 with a byte-order mark, so Excel
//! on Chinese Windows opens the Chinese right), and an XLSX read back with
//! calamine into per-column totals ([`read_back`]), which is how the tests
//! and `dormwatt report --read` check an export.
//!
//! It lives here, next to the reading side, because it knows files and
//! cells only: what a report's columns are (and the SQL behind them) is the
//! caller's; the console and the command line build the same [`Sheet`].

use calamine::{Data, Reader as _, Xlsx};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, XlsxError};
use serde::Serialize;

/// How a column's cells are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Text.
    Text,
    /// A whole number that is counted (its column has a total).
    Int,
    /// A whole number that names something (a port): no total.
    Code,
    /// An amount in fen, written as yuan with two decimals.
    Yuan,
    /// Hundredths (0.01 kWh), written with two decimals.
    Hundredths,
    /// Basis points of a percent (10000 = 100 %), written as a percentage.
    Percent,
    /// A calendar day.
    Date,
    /// A local date and time.
    DateTime,
}

impl ColumnKind {
    /// Whether a total of the column means something (a ratio's does not).
    pub fn summed(self) -> bool {
        matches!(
            self,
            ColumnKind::Int | ColumnKind::Yuan | ColumnKind::Hundredths
        )
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// A stable name (`amount_yuan`): JSON keys.
    pub key: &'static str,
    /// The header row's text, in the reader's language.
    pub header: String,
    /// How its cells are written.
    pub kind: ColumnKind,
    /// Width in characters.
    pub width: u16,
}

/// One cell. Its column's kind says how a number is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// Nothing (a ratio with nothing due, a meter never seen).
    Empty,
    /// Text.
    Text(String),
    /// An integer: the count, the fen, the hundredths or the basis points.
    Num(i64),
    /// A civil date.
    Date {
        /// Year.
        y: i16,
        /// Month, 1–12.
        m: i8,
        /// Day, 1–31.
        d: i8,
    },
    /// A civil date and time (local, to the second).
    DateTime {
        /// Year.
        y: i16,
        /// Month.
        m: i8,
        /// Day.
        d: i8,
        /// Hour.
        hh: i8,
        /// Minute.
        mm: i8,
        /// Second.
        ss: i8,
    },
}

/// A table to export: a header row and data rows (no totals row: a total
/// is the reader's sum, so a machine reading the file adds nothing twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sheet {
    /// The worksheet's name (at most 31 characters).
    pub name: String,
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows, each with one cell per column.
    pub rows: Vec<Vec<Cell>>,
}

impl Sheet {
    /// Sum of each summed column ([`ColumnKind::summed`]), in its integer
    /// unit; `None` for the others.
    pub fn totals(&self) -> Vec<Option<i64>> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.kind.summed().then(|| {
                    self.rows
                        .iter()
                        .map(|r| match r.get(i) {
                            Some(Cell::Num(n)) => *n,
                            _ => 0,
                        })
                        .sum()
                })
            })
            .collect()
    }
}

/// Hundredths as text with two decimals (`-0.05`, `12.30`).
pub fn hundredths(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// A cell as text, the way CSV and the console show it.
pub fn text_of(kind: ColumnKind, cell: &Cell) -> String {
    match cell {
        Cell::Empty => String::new(),
        Cell::Text(s) => s.clone(),
        Cell::Num(n) => match kind {
            ColumnKind::Yuan | ColumnKind::Hundredths => hundredths(*n),
            ColumnKind::Percent => format!("{}%", hundredths(*n)),
            _ => n.to_string(),
        },
        Cell::Date { y, m, d } => format!("{y:04}-{m:02}-{d:02}"),
        Cell::DateTime {
            y,
            m,
            d,
            hh,
            mm,
            ss,
        } => format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}"),
    }
}

/// The sheet as CSV: UTF-8 with a byte-order mark, CRLF line ends (as
/// Excel writes them), the header row first.
pub fn to_csv(sheet: &Sheet) -> Result<Vec<u8>, String> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    w.write_record(sheet.columns.iter().map(|c| c.header.as_str()))
        .map_err(|e| e.to_string())?;
    for row in &sheet.rows {
        w.write_record(
            sheet
                .columns
                .iter()
                .zip(row)
                .map(|(c, cell)| text_of(c.kind, cell)),
        )
        .map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// The sheet as an XLSX workbook of one worksheet.
pub fn to_xlsx(sheet: &Sheet) -> Result<Vec<u8>, String> {
    xlsx(sheet).map_err(|e| e.to_string())
}

fn xlsx(s: &Sheet) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let ws = book.add_worksheet();
    // Excel refuses these in a sheet's name, and more than 31 characters.
    let name: String = s
        .name
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .take(31)
        .collect();
    ws.set_name(name)?;
    let bold = Format::new().set_bold();
    let formats: Vec<Format> = s
        .columns
        .iter()
        .map(|c| match c.kind {
            ColumnKind::Text => Format::new().set_num_format("@"),
            ColumnKind::Int | ColumnKind::Code => Format::new().set_num_format("0"),
            ColumnKind::Yuan | ColumnKind::Hundredths => Format::new().set_num_format("0.00"),
            ColumnKind::Percent => Format::new().set_num_format("0.00%"),
            ColumnKind::Date => Format::new().set_num_format("yyyy-mm-dd"),
            ColumnKind::DateTime => Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
        })
        .collect();
    for (c, col) in s.columns.iter().enumerate() {
        let c = u16::try_from(c).unwrap_or(u16::MAX);
        ws.write_string_with_format(0, c, &col.header, &bold)?;
        ws.set_column_width(c, col.width)?;
    }
    for (r, row) in s.rows.iter().enumerate() {
        let r = u32::try_from(r + 1).unwrap_or(u32::MAX);
        for (c, ((col, cell), f)) in s.columns.iter().zip(row).zip(&formats).enumerate() {
            let c = u16::try_from(c).unwrap_or(u16::MAX);
            // Integers below 2^53 are exact in a double; fen / 100 is the
            // nearest double to the yuan amount, which Excel shows exactly.
            #[expect(clippy::cast_precision_loss, reason = "counts and fen are < 2^53")]
            match cell {
                Cell::Empty => {}
                Cell::Text(t) => {
                    ws.write_string_with_format(r, c, t, f)?;
                }
                Cell::Num(n) => {
                    let v = match col.kind {
                        ColumnKind::Yuan | ColumnKind::Hundredths => *n as f64 / 100.0,
                        ColumnKind::Percent => *n as f64 / 10_000.0,
                        _ => *n as f64,
                    };
                    ws.write_number_with_format(r, c, v, f)?;
                }
                Cell::Date { y, m, d } => {
                    let dt = ExcelDateTime::from_ymd(
                        u16::try_from(*y).unwrap_or(1900),
                        u8::try_from(*m).unwrap_or(1),
                        u8::try_from(*d).unwrap_or(1),
                    )?;
                    ws.write_datetime_with_format(r, c, &dt, f)?;
                }
                Cell::DateTime {
                    y,
                    m,
                    d,
                    hh,
                    mm,
                    ss,
                } => {
                    let dt = ExcelDateTime::from_ymd(
                        u16::try_from(*y).unwrap_or(1900),
                        u8::try_from(*m).unwrap_or(1),
                        u8::try_from(*d).unwrap_or(1),
                    )?
                    .and_hms(
                        u16::try_from(*hh).unwrap_or(0),
                        u8::try_from(*mm).unwrap_or(0),
                        u8::try_from(*ss).unwrap_or(0),
                    )?;
                    ws.write_datetime_with_format(r, c, &dt, f)?;
                }
            }
        }
    }
    ws.set_freeze_panes(1, 0)?;
    book.save_to_buffer()
}

/// What a column of a workbook read back holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellsAre {
    /// Every non-empty cell is a number.
    Numbers,
    /// Every non-empty cell is a date or date-time (Excel's serial with a
    /// date format).
    Dates,
    /// Every non-empty cell is text.
    Text,
    /// Nothing but empty cells.
    Empty,
    /// A mix.
    Mixed,
}

/// One column of a workbook read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadColumn {
    /// The header row's text.
    pub header: String,
    /// What its cells are.
    pub cells: CellsAre,
    /// The sum of its numbers, rounded to hundredths (`None`: not numbers).
    pub sum: Option<f64>,
    /// The first and last date or date-time as `YYYY-MM-DD[THH:MM:SS]`.
    pub first: Option<String>,
    /// See `first`.
    pub last: Option<String>,
}

/// A workbook's first sheet read back: its name, data rows and columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadBack {
    /// The worksheet's name.
    pub sheet: String,
    /// Data rows (below the header).
    pub rows: usize,
    /// The columns, in order.
    pub columns: Vec<ReadColumn>,
}

impl ReadBack {
    /// The column headed `header`.
    pub fn column(&self, header: &str) -> Option<&ReadColumn> {
        self.columns.iter().find(|c| c.header == header)
    }
}

/// Reads an XLSX's first sheet with calamine, as a reader of the export
/// sees it: numbers, dates and text, and each numeric column's sum.
pub fn read_back(bytes: &[u8]) -> Result<ReadBack, String> {
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e: calamine::XlsxError| e.to_string())?;
    let sheet = book
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| "the workbook has no sheet".to_owned())?;
    let range = book
        .worksheet_range_at(0)
        .ok_or_else(|| "the workbook has no sheet".to_owned())?
        .map_err(|e| e.to_string())?;
    let mut rows = range.rows();
    let header: Vec<String> = rows
        .next()
        .map(|r| r.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let mut columns: Vec<ReadColumn> = header
        .into_iter()
        .map(|header| ReadColumn {
            header,
            cells: CellsAre::Empty,
            sum: None,
            first: None,
            last: None,
        })
        .collect();
    let mut n = 0;
    for row in rows {
        n += 1;
        for (col, cell) in columns.iter_mut().zip(row) {
            let is = match cell {
                Data::Empty => continue,
                Data::Int(i) => {
                    #[expect(clippy::cast_precision_loss, reason = "a sum to show")]
                    let v = *i as f64;
                    col.sum = Some(col.sum.unwrap_or(0.0) + v);
                    CellsAre::Numbers
                }
                Data::Float(f) => {
                    col.sum = Some(col.sum.unwrap_or(0.0) + f);
                    CellsAre::Numbers
                }
                Data::DateTime(d) => {
                    let (y, mo, da, h, mi, s, _) = d.to_ymd_hms_milli();
                    let text = Some(if (h, mi, s) == (0, 0, 0) {
                        format!("{y:04}-{mo:02}-{da:02}")
                    } else {
                        format!("{y:04}-{mo:02}-{da:02}T{h:02}:{mi:02}:{s:02}")
                    });
                    if col.first.is_none() {
                        col.first.clone_from(&text);
                    }
                    col.last = text;
                    CellsAre::Dates
                }
                Data::String(_) | Data::DateTimeIso(_) | Data::DurationIso(_) => CellsAre::Text,
                Data::Bool(_) | Data::Error(_) => CellsAre::Mixed,
            };
            col.cells = match col.cells {
                CellsAre::Empty => is,
                was if was == is => was,
                _ => CellsAre::Mixed,
            };
        }
    }
    for c in &mut columns {
        c.sum = c.sum.map(|s| (s * 100.0).round() / 100.0);
        if c.cells != CellsAre::Numbers {
            c.sum = None;
        }
    }
    Ok(ReadBack {
        sheet,
        rows: n,
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet() -> Sheet {
        let col = |key, header: &str, kind| Column {
            key,
            header: header.to_owned(),
            kind,
            width: 12,
        };
        Sheet {
            name: "销售".to_owned(),
            columns: vec![
                col("day", "日期", ColumnKind::Date),
                col("cashier", "收银员", ColumnKind::Text),
                col("orders", "笔数", ColumnKind::Int),
                col("amount_yuan", "金额（元）", ColumnKind::Yuan),
                col("ratio", "成功率", ColumnKind::Percent),
            ],
            rows: vec![
                vec![
                    Cell::Date {
                        y: 2026,
                        m: 11,
                        d: 30,
                    },
                    Cell::Text("张三".to_owned()),
                    Cell::Num(2),
                    Cell::Num(1234),
                    Cell::Num(9950),
                ],
                vec![
                    Cell::Date {
                        y: 2026,
                        m: 12,
                        d: 1,
                    },
                    Cell::Text(String::new()),
                    Cell::Num(1),
                    Cell::Num(5),
                    Cell::Empty,
                ],
            ],
        }
    }

    #[test]
    fn xlsx_reads_back_as_numbers_and_dates() {
        let s = sheet();
        assert_eq!(s.totals(), vec![None, None, Some(3), Some(1239), None]);
        let back = read_back(&to_xlsx(&s).unwrap()).unwrap();
        assert_eq!(back.sheet, "销售");
        assert_eq!(back.rows, 2);
        let day = back.column("日期").unwrap();
        assert_eq!(day.cells, CellsAre::Dates);
        assert_eq!(day.first.as_deref(), Some("2026-11-30"));
        assert_eq!(day.last.as_deref(), Some("2026-12-01"));
        assert_eq!(back.column("笔数").unwrap().cells, CellsAre::Numbers);
        assert_eq!(back.column("笔数").unwrap().sum, Some(3.0));
        assert_eq!(back.column("金额（元）").unwrap().sum, Some(12.39));
        assert_eq!(back.column("成功率").unwrap().cells, CellsAre::Numbers);
        assert_eq!(back.column("收银员").unwrap().cells, CellsAre::Text);
    }

    #[test]
    fn csv_has_a_bom_and_yuan() {
        let csv = String::from_utf8(to_csv(&sheet()).unwrap()).unwrap();
        assert!(csv.starts_with('\u{feff}'));
        let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
        assert_eq!(lines[0], "日期,收银员,笔数,金额（元）,成功率");
        assert_eq!(lines[1], "2026-11-30,张三,2,12.34,99.50%");
        assert_eq!(lines[2], "2026-12-01,,1,0.05,");
        assert_eq!(hundredths(-5), "-0.05");
    }
}
