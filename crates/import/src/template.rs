//! The templates: columns per kind, example rows valid against the demo
//! campus (`dormwatt demo`), written as CSV or XLSX. docs/IMPORT.md
//! describes the same columns for people.

use crate::{Format, Kind};

/// One column of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// English name, also accepted alone as the header.
    pub key: &'static str,
    /// Chinese name, also accepted alone as the header.
    pub zh: &'static str,
    /// A row without it fails.
    pub required: bool,
    /// Written as a number in the XLSX template.
    pub number: bool,
}

impl Column {
    /// The template's header text, e.g. `楼栋/building`.
    pub fn header(&self) -> String {
        format!("{}/{}", self.zh, self.key)
    }
}

const fn col(key: &'static str, zh: &'static str, required: bool, number: bool) -> Column {
    Column {
        key,
        zh,
        required,
        number,
    }
}

const AREA: Column = col("area", "区域代码", true, false);
const BUILDING: Column = col("building", "楼栋", true, false);
const ROOM: Column = col("room", "房间", true, false);
const GATEWAY: Column = col("gateway", "网关", true, false);

const BUILDINGS: &[Column] = &[AREA, BUILDING, col("name_en", "英文名", false, false)];
const ROOMS: &[Column] = &[AREA, BUILDING, ROOM, col("floor", "楼层", true, true)];
const GATEWAYS: &[Column] = &[
    AREA,
    BUILDING,
    GATEWAY,
    col("mode", "模式", true, false),
    col("host", "主机", false, false),
    col("port", "端口", false, true),
    col("buses", "总线", true, false),
    col("baud", "波特率", false, true),
];
const METERS: &[Column] = &[
    col("address", "电表编号", true, false),
    AREA,
    BUILDING,
    ROOM,
    GATEWAY,
    col("bus", "总线", true, true),
    col("profile", "型号", false, false),
    col("unit_price", "电价", false, true),
    col("low_balance_kwh", "低余额提醒", false, true),
];

/// The columns of `kind`, in template order.
pub fn columns(kind: Kind) -> &'static [Column] {
    match kind {
        Kind::Buildings => BUILDINGS,
        Kind::Rooms => ROOMS,
        Kind::Gateways => GATEWAYS,
        Kind::Meters => METERS,
    }
}

/// The header of `kind`'s column `key` (`区域代码/area`), for errors found
/// elsewhere (the database checks).
pub fn header_of(kind: Kind, key: &str) -> String {
    columns(kind)
        .iter()
        .find(|c| c.key == key)
        .map_or_else(|| key.to_owned(), Column::header)
}

/// Example rows of `kind`, one cell per column. They are valid against the
/// demo campus when imported in [`Kind::ALL`]'s order (the meters go into
/// the example rooms 401 and 402).
pub fn examples(kind: Kind) -> &'static [&'static [&'static str]] {
    match kind {
        Kind::Buildings => &[&["cuc", "5号楼", "Building 5"], &["demo-east", "3号楼", ""]],
        Kind::Rooms => &[
            &["cuc", "4号楼", "401", "4"],
            &["cuc", "4号楼", "402", "4"],
            &["demo-east", "1号楼", "401", "4"],
        ],
        Kind::Gateways => &[
            &[
                "cuc",
                "4号楼",
                "cuc-b01-gw2",
                "dial",
                "127.0.0.1",
                "21100",
                "1,2",
                "2400",
            ],
            &[
                "demo-east",
                "1号楼",
                "demo-east-b01-gw2",
                "listen",
                "",
                "",
                "1",
                "9600",
            ],
        ],
        Kind::Meters => &[
            &[
                "201701010031",
                "cuc",
                "4号楼",
                "401",
                "cuc-b01-gw1",
                "1",
                "",
                "",
                "",
            ],
            &[
                "201701010032",
                "cuc",
                "4号楼",
                "402",
                "cuc-b01-gw1",
                "1",
                "dlt645-ref",
                "0.53",
                "5",
            ],
            &[
                "201702010025",
                "demo-east",
                "1号楼",
                "401",
                "demo-east-b01-gw1",
                "1",
                "",
                "",
                "",
            ],
        ],
    }
}

/// The template of `kind`: header row and example rows.
pub fn template(kind: Kind, format: Format) -> Result<Vec<u8>, String> {
    let header: Vec<String> = columns(kind).iter().map(Column::header).collect();
    match format {
        Format::Csv => csv_template(&header, examples(kind)),
        Format::Xlsx => xlsx_rows(kind, &header, examples(kind)).map_err(|e| e.to_string()),
    }
}

/// A file of `kind` with the template's header and `rows` (one cell per
/// column), as the templates are written: for generated example files
/// (`dormwatt import --example`).
pub fn write(kind: Kind, format: Format, rows: &[Vec<String>]) -> Result<Vec<u8>, String> {
    let header: Vec<String> = columns(kind).iter().map(Column::header).collect();
    let rows: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    let rows: Vec<&[&str]> = rows.iter().map(Vec::as_slice).collect();
    match format {
        Format::Csv => csv_template(&header, &rows),
        Format::Xlsx => xlsx_rows(kind, &header, &rows).map_err(|e| e.to_string()),
    }
}

fn csv_template(header: &[String], rows: &[&[&str]]) -> Result<Vec<u8>, String> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    w.write_record(header).map_err(|e| e.to_string())?;
    for row in rows {
        w.write_record(*row).map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

fn xlsx_rows(
    kind: Kind,
    header: &[String],
    rows: &[&[&str]],
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(kind.as_str())?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    // Text cells stay text when a user types a 12-digit address.
    let text = rust_xlsxwriter::Format::new().set_num_format("@");
    for (c, (title, column)) in header.iter().zip(columns(kind)).enumerate() {
        let c = u16::try_from(c).unwrap_or(u16::MAX);
        sheet.write_string_with_format(0, c, title, &bold)?;
        sheet.set_column_width(c, 18)?;
        if !column.number {
            sheet.set_column_format(c, &text)?;
        }
    }
    for (r, row) in rows.iter().enumerate() {
        let r = u32::try_from(r + 1).unwrap_or(u32::MAX);
        for (c, (cell, column)) in row.iter().zip(columns(kind)).enumerate() {
            let c = u16::try_from(c).unwrap_or(u16::MAX);
            match cell.parse::<f64>() {
                _ if cell.is_empty() => {}
                Ok(n) if column.number => {
                    sheet.write_number(r, c, n)?;
                }
                _ => {
                    sheet.write_string_with_format(r, c, *cell, &text)?;
                }
            }
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    book.save_to_buffer()
}
