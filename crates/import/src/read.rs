//! Bytes → a table of text cells: XLSX (calamine) or CSV (UTF-8 or GBK).

use crate::{FileError, ROWS_MAX};
use calamine::{Data, Reader as _, Xlsx};

/// A file's cells as text, trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// The first row.
    pub header: Vec<String>,
    /// The other non-blank rows, each with its spreadsheet row number.
    pub rows: Vec<(u32, Vec<String>)>,
}

/// The local file header signature every zip (and so XLSX) starts with.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads XLSX when the bytes are a zip, CSV otherwise.
pub fn read_table(bytes: &[u8]) -> Result<Table, FileError> {
    if bytes.starts_with(ZIP_MAGIC) {
        read_xlsx(bytes)
    } else {
        read_csv(&decode(bytes)?)
    }
}

/// UTF-8 (with or without BOM), else GB18030 (a superset of GBK), else
/// [`FileError::WrongEncoding`].
fn decode(bytes: &[u8]) -> Result<String, FileError> {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(s.to_owned());
    }
    encoding_rs::GB18030
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|s| s.into_owned())
        .ok_or(FileError::WrongEncoding)
}

fn read_csv(text: &str) -> Result<Table, FileError> {
    // The reader counts a CRLF's line only when the next record starts.
    let text = text.replace("\r\n", "\n");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    // The reader's line skips the line breaks quoted inside cells but
    // counts empty lines (which it drops), as Excel numbers rows.
    for record in reader.records() {
        let record = record.map_err(|e| FileError::Csv(e.to_string()))?;
        let line = record.position().map_or(1, csv::Position::line);
        let index = usize::try_from(line)
            .unwrap_or(usize::MAX)
            .saturating_sub(1);
        rows.push((index, record.iter().map(str::to_owned).collect()));
        if rows.len() > ROWS_MAX + 1 {
            return Err(FileError::TooManyRows);
        }
    }
    table(rows.into_iter())
}

fn read_xlsx(bytes: &[u8]) -> Result<Table, FileError> {
    let bad = |e: calamine::XlsxError| FileError::Xlsx(e.to_string());
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).map_err(bad)?;
    let range = book
        .worksheet_range_at(0)
        .ok_or(FileError::Empty)?
        .map_err(bad)?;
    if range.height() > ROWS_MAX + 1 {
        return Err(FileError::TooManyRows);
    }
    // The range starts at the first used cell; rows above it are blank.
    let (first_row, first_col) = range.start().unwrap_or((0, 0));
    let pad = usize::try_from(first_col).unwrap_or(0);
    let rows = range.rows().enumerate().map(|(i, r)| {
        let row: Vec<String> = std::iter::repeat_n(String::new(), pad)
            .chain(r.iter().map(cell_text))
            .collect();
        (i + usize::try_from(first_row).unwrap_or(0), row)
    });
    table(rows)
}

/// A cell as the user sees it: whole numbers without a fraction or an
/// exponent, so a 12-digit address typed as a number stays 12 digits.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Data::Empty => String::new(),
        other => other.to_string(),
    }
}

/// The first non-blank row is the header; blank rows are dropped.
fn table(rows: impl Iterator<Item = (usize, Vec<String>)>) -> Result<Table, FileError> {
    let mut rows = rows
        .map(|(i, cells)| {
            let cells: Vec<String> = cells.iter().map(|c| c.trim().to_owned()).collect();
            (u32::try_from(i + 1).unwrap_or(u32::MAX), cells)
        })
        .filter(|(_, cells)| cells.iter().any(|c| !c.is_empty()));
    let (_, header) = rows.next().ok_or(FileError::Empty)?;
    Ok(Table {
        header,
        rows: rows.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_and_without_bom_and_gbk_decode_alike() {
        let text = "楼栋,房间\r\n4号楼,401\r\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        let bom = [UTF8_BOM, text.as_bytes()].concat();
        for bytes in [text.as_bytes(), &bom[..], &gbk[..]] {
            let t = read_table(bytes).unwrap();
            assert_eq!(t.header, ["楼栋", "房间"]);
            assert_eq!(t.rows, [(2, vec!["4号楼".to_owned(), "401".to_owned()])]);
        }
    }

    #[test]
    fn bytes_that_are_neither_utf8_nor_gbk_are_the_wrong_encoding() {
        // UTF-16LE, as Excel's "Unicode text" saves: a BOM and NULs.
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("楼栋".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(read_table(&utf16), Err(FileError::WrongEncoding));
    }

    #[test]
    fn blank_rows_are_skipped_and_row_numbers_stay_as_shown() {
        let t = read_table(b"\r\na,b\r\n,\r\n1,2\r\n").unwrap();
        assert_eq!(t.header, ["a", "b"]);
        assert_eq!(t.rows, [(4, vec!["1".to_owned(), "2".to_owned()])]);
        assert_eq!(read_table(b" , \r\n"), Err(FileError::Empty));
        let t = read_table(b"a,b\r\n\"x\r\ny\",1\r\n\r\n3,4\r\n").unwrap();
        assert_eq!(t.rows[1], (4, vec!["3".to_owned(), "4".to_owned()]));
    }

    #[test]
    fn a_whole_float_cell_reads_without_an_exponent() {
        assert_eq!(cell_text(&Data::Float(201_701_010_031.0)), "201701010031");
        assert_eq!(cell_text(&Data::Float(0.53)), "0.53");
        assert_eq!(cell_text(&Data::Int(7)), "7");
    }
}
