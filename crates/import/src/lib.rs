//! Bulk import of the registry (issue 14 item 2): one documented template
//! per kind, reading XLSX and CSV (UTF-8, or GBK as Excel saves CSV on
//! Chinese Windows), and the row checks that need no database.
//!
//! Invariant: knows files and rows, not SQL and not HTTP. What a row means
//! against the database (`store::registry`) is checked there; here a row is
//! well formed or it is a [`RowError`] with the row number a spreadsheet
//! user sees (the header is row 1).

// Outside tests a panic is a bug we chose to keep: an `expect` with its
// reason under a local `allow`, or a type that makes the case impossible
// (crates/dormwatt/tests/workspace_lints.rs checks every crate says so).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod export;
mod read;
mod rows;
mod template;
#[cfg(test)]
mod tests;

pub use read::{Table, read_table};
pub use rows::{Building, Gateway, Meter, Mode, PROFILES, Records, Room, parse_table};
pub use template::{Column, columns, examples, header_of, template, write};

use serde::Serialize;

/// Most data rows one file may hold (a whole campus is a few thousand).
pub const ROWS_MAX: usize = 50_000;

/// What a file registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Buildings of an area.
    Buildings,
    /// Rooms of a building.
    Rooms,
    /// Gateways with their RS485 buses.
    Gateways,
    /// Meters, each in a room and on a bus.
    Meters,
}

impl Kind {
    /// Every kind, in the order a campus is registered.
    pub const ALL: [Kind; 4] = [Kind::Buildings, Kind::Rooms, Kind::Gateways, Kind::Meters];

    /// The name used on the command line and in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Buildings => "buildings",
            Kind::Rooms => "rooms",
            Kind::Gateways => "gateways",
            Kind::Meters => "meters",
        }
    }

    /// Parses [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A template's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// UTF-8 with a byte-order mark, CRLF (what Excel opens correctly).
    Csv,
    /// An Excel workbook with a bold, frozen header row.
    Xlsx,
}

/// Why a whole file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// Neither UTF-8 nor GBK/GB18030.
    #[error(
        "wrong encoding: the file is neither UTF-8 nor GBK text; save it as an Excel workbook, \"CSV UTF-8\" or CSV"
    )]
    WrongEncoding,
    /// No header row.
    #[error("the file is empty: the first row must be the header")]
    Empty,
    /// A header and nothing under it.
    #[error("the file has a header but no rows")]
    NoRows,
    /// A required column is not in the header.
    #[error("missing column {0}")]
    MissingColumn(String),
    /// The header fits no kind.
    #[error(
        "cannot tell what the file registers: the header has none of 电表编号/address, 模式/mode, 房间/room, 楼栋/building"
    )]
    UnknownKind,
    /// More than [`ROWS_MAX`] rows.
    #[error("the file has more than {ROWS_MAX} rows; split it")]
    TooManyRows,
    /// The workbook could not be read.
    #[error("not a readable XLSX workbook: {0}")]
    Xlsx(String),
    /// The CSV could not be read.
    #[error("not a readable CSV file: {0}")]
    Csv(String),
}

impl FileError {
    /// The error as a report line: a missing column is in the header (row
    /// 1), anything else is the file as a whole (row 0).
    pub fn as_row_error(&self) -> RowError {
        match self {
            FileError::MissingColumn(c) => RowError::new(1, c, "missing column"),
            other => RowError::new(0, "", other.to_string()),
        }
    }
}

/// One reason one row fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// The spreadsheet row (header = 1; 0 = the whole file).
    pub row: u32,
    /// The column's template header (`电表编号/address`), or empty.
    pub column: String,
    /// Why, in words.
    pub reason: String,
}

impl RowError {
    /// A new error.
    pub fn new(row: u32, column: &str, reason: impl Into<String>) -> Self {
        Self {
            row,
            column: column.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A dry run's answer: `{"rows": N, "ok": M, "errors": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Data rows read (blank rows are not counted).
    pub rows: usize,
    /// Rows without any error.
    pub ok: usize,
    /// Every error, by row.
    pub errors: Vec<RowError>,
}

impl Report {
    /// The report of `rows` rows with `errors` (in any order).
    pub fn new(rows: usize, mut errors: Vec<RowError>) -> Self {
        errors.sort_by_key(|e| e.row);
        let mut failing: Vec<u32> = errors.iter().map(|e| e.row).filter(|&r| r > 1).collect();
        failing.dedup();
        Self {
            rows,
            ok: rows.saturating_sub(failing.len()),
            errors,
        }
    }
}

/// A file read and checked without a database.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// Data rows read.
    pub rows: usize,
    /// The rows that passed, as records.
    pub records: Records,
    /// The rows that did not.
    pub errors: Vec<RowError>,
}

/// Reads a file (XLSX by its zip signature, else CSV in UTF-8 or GBK) and
/// checks its rows. `kind` is told from the header when not given.
pub fn parse(bytes: &[u8], kind: Option<Kind>) -> Result<Parsed, FileError> {
    parse_table(&read_table(bytes)?, kind)
}
