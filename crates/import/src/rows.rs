//! A table → records of one kind, with every error a row has.

use crate::template::{Column, columns};
use crate::{FileError, Kind, Parsed, RowError, Table};
use domain::MeterAddress;
use std::collections::HashMap;

/// Meter profiles the head-end speaks (meter-profile.md).
pub const PROFILES: &[&str] = &["dlt645-ref"];
/// Bus speeds a DL/T 645 meter offers.
const BAUDS: [i64; 5] = [1200, 2400, 4800, 9600, 19200];
/// RS485 ports a gateway may have (the reference gateway has four).
const BUS_PORTS_MAX: i64 = 16;

/// A building to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Building {
    /// Spreadsheet row.
    pub row: u32,
    /// Area code.
    pub area: String,
    /// Chinese name, unique in the area.
    pub name_zh: String,
    /// English name (the Chinese one when left blank).
    pub name_en: String,
}

/// A room to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Spreadsheet row.
    pub row: u32,
    /// Area code.
    pub area: String,
    /// Building, by its Chinese name.
    pub building: String,
    /// Room number, unique in the building.
    pub number: String,
    /// Floor.
    pub floor: i64,
}

/// How a gateway is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// We connect to host:port.
    Dial,
    /// The gateway dials us and registers with its name.
    Listen,
}

impl Mode {
    /// The stored value (`gateway.mode`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Dial => "dial",
            Mode::Listen => "listen",
        }
    }
}

/// A gateway to create, with its buses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// Spreadsheet row.
    pub row: u32,
    /// Area code.
    pub area: String,
    /// Building, by its Chinese name.
    pub building: String,
    /// Name, unique on the platform.
    pub name: String,
    /// Dial or listen.
    pub mode: Mode,
    /// Host we dial (empty when listening).
    pub host: String,
    /// Port we dial (0 when listening).
    pub port: i64,
    /// RS485 port numbers, one bus each.
    pub buses: Vec<i64>,
    /// Speed of every bus, bit/s.
    pub baud: i64,
}

/// A meter to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meter {
    /// Spreadsheet row.
    pub row: u32,
    /// Nameplate address.
    pub address: MeterAddress,
    /// Area code.
    pub area: String,
    /// Building, by its Chinese name.
    pub building: String,
    /// Room number.
    pub room: String,
    /// Gateway name.
    pub gateway: String,
    /// RS485 port of the gateway.
    pub bus: i64,
    /// Meter profile.
    pub profile: String,
    /// Own tariff; `None`: the area's.
    pub unit_price_centifen_per_kwh: Option<i64>,
    /// Low-balance threshold; `None`: the default.
    pub low_balance_centikwh: Option<i64>,
}

/// The well-formed rows of a file, of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Records {
    /// Buildings.
    Buildings(Vec<Building>),
    /// Rooms.
    Rooms(Vec<Room>),
    /// Gateways.
    Gateways(Vec<Gateway>),
    /// Meters.
    Meters(Vec<Meter>),
}

impl Records {
    /// What the records register.
    pub fn kind(&self) -> Kind {
        match self {
            Records::Buildings(_) => Kind::Buildings,
            Records::Rooms(_) => Kind::Rooms,
            Records::Gateways(_) => Kind::Gateways,
            Records::Meters(_) => Kind::Meters,
        }
    }

    /// How many.
    pub fn len(&self) -> usize {
        match self {
            Records::Buildings(v) => v.len(),
            Records::Rooms(v) => v.len(),
            Records::Gateways(v) => v.len(),
            Records::Meters(v) => v.len(),
        }
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn matches(header: &str, c: &Column) -> bool {
    header
        .split(['/', '／'])
        .map(|p| p.trim().trim_end_matches('*'))
        .any(|p| p == c.zh || p.eq_ignore_ascii_case(c.key))
}

/// The kind whose telling column the header has.
fn detect(header: &[String]) -> Option<Kind> {
    [
        (Kind::Meters, "address"),
        (Kind::Gateways, "mode"),
        (Kind::Rooms, "room"),
        (Kind::Buildings, "building"),
    ]
    .into_iter()
    .find(|(kind, key)| {
        columns(*kind)
            .iter()
            .filter(|c| c.key == *key)
            .any(|c| header.iter().any(|h| matches(h, c)))
    })
    .map(|(kind, _)| kind)
}

/// One row's cells by template column, collecting its errors.
struct Cells<'a> {
    row: u32,
    cols: &'static [Column],
    values: Vec<&'a str>,
    errors: Vec<RowError>,
}

impl Cells<'_> {
    fn fail(&mut self, i: usize, reason: impl Into<String>) {
        self.errors
            .push(RowError::new(self.row, &self.cols[i].header(), reason));
    }

    /// The text of column `i`; a blank required cell is an error.
    fn text(&mut self, i: usize) -> String {
        let v = self.values[i];
        if v.is_empty() && self.cols[i].required {
            self.fail(i, "required");
        }
        v.to_owned()
    }

    /// A whole number in `min..=max`; `None` when blank or wrong.
    fn int(&mut self, i: usize, min: i64, max: i64) -> Option<i64> {
        let v = self.text(i);
        if v.is_empty() {
            return None;
        }
        match v.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(_) => {
                self.fail(i, format!("must be from {min} to {max}"));
                None
            }
            Err(_) => {
                self.fail(i, format!("'{v}' is not a whole number"));
                None
            }
        }
    }

    /// A non-negative decimal with at most `places` decimals, scaled to a
    /// whole number of its smallest unit.
    fn fixed(&mut self, i: usize, places: u32) -> Option<i64> {
        let v = self.text(i);
        if v.is_empty() {
            return None;
        }
        let n = fixed(&v, places);
        if n.is_none() {
            self.fail(
                i,
                format!("'{v}' is not a number with at most {places} decimals"),
            );
        }
        n
    }
}

fn fixed(s: &str, places: u32) -> Option<i64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > places as usize {
        return None;
    }
    let scale = 10i64.checked_pow(places)?;
    let frac_scaled = format!("{frac:0<width$}", width = places as usize);
    let frac_n: i64 = if places == 0 {
        0
    } else {
        frac_scaled.parse().ok()?
    };
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(scale)?
        .checked_add(frac_n)
}

fn building(c: &mut Cells<'_>) -> Building {
    let name_zh = c.text(1);
    let name_en = c.text(2);
    Building {
        row: c.row,
        area: c.text(0),
        name_en: if name_en.is_empty() {
            name_zh.clone()
        } else {
            name_en
        },
        name_zh,
    }
}

fn room(c: &mut Cells<'_>) -> Room {
    Room {
        row: c.row,
        area: c.text(0),
        building: c.text(1),
        number: c.text(2),
        floor: c.int(3, -10, 300).unwrap_or(0),
    }
}

fn gateway(c: &mut Cells<'_>) -> Gateway {
    let (area, building, name) = (c.text(0), c.text(1), c.text(2));
    let mode = match c.text(3).to_ascii_lowercase().as_str() {
        "dial" => Mode::Dial,
        "listen" => Mode::Listen,
        "" => Mode::Listen,
        other => {
            c.fail(3, format!("'{other}' is neither dial nor listen"));
            Mode::Listen
        }
    };
    let host = c.text(4);
    let port = c.int(5, 1, 65_535);
    if mode == Mode::Dial && host.is_empty() {
        c.fail(4, "required when the mode is dial");
    }
    if mode == Mode::Dial && port.is_none() && c.values[5].is_empty() {
        c.fail(5, "required when the mode is dial");
    }
    let list = c.text(6);
    let mut buses = Vec::new();
    for p in list
        .split([',', '，', ';', '；', '、', ' '])
        .filter(|p| !p.is_empty())
    {
        match p.parse::<i64>() {
            Ok(n) if (1..=BUS_PORTS_MAX).contains(&n) && !buses.contains(&n) => buses.push(n),
            _ => c.fail(
                6,
                format!("'{p}' is not a new port number from 1 to {BUS_PORTS_MAX}"),
            ),
        }
    }
    let baud = c.int(7, 1, i64::MAX).unwrap_or(2400);
    if !BAUDS.contains(&baud) {
        c.fail(7, format!("{baud} is not one of {BAUDS:?}"));
    }
    Gateway {
        row: c.row,
        area,
        building,
        name,
        mode,
        host: if mode == Mode::Dial {
            host
        } else {
            String::new()
        },
        port: if mode == Mode::Dial {
            port.unwrap_or(0)
        } else {
            0
        },
        buses,
        baud,
    }
}

fn meter(c: &mut Cells<'_>) -> Meter {
    let raw = c.text(0);
    let address = match MeterAddress::parse(&raw) {
        Ok(a) => a,
        Err(_) if raw.is_empty() => MeterAddress::from_low_digits(0),
        Err(e) => {
            c.fail(0, format!("'{raw}': {e}"));
            MeterAddress::from_low_digits(0)
        }
    };
    let (area, building, room, gateway) = (c.text(1), c.text(2), c.text(3), c.text(4));
    let bus = c.int(5, 1, BUS_PORTS_MAX).unwrap_or(0);
    let mut profile = c.text(6);
    if profile.is_empty() {
        PROFILES[0].clone_into(&mut profile);
    } else if !PROFILES.contains(&profile.as_str()) {
        c.fail(
            6,
            format!(
                "unknown profile '{profile}' (known: {})",
                PROFILES.join(", ")
            ),
        );
    }
    // 元/kWh to 0.0001 元 (centifen), kWh to 0.01 kWh.
    let unit_price = c.fixed(7, 4);
    if unit_price == Some(0) {
        c.fail(7, "must be above zero");
    }
    Meter {
        row: c.row,
        address,
        area,
        building,
        room,
        gateway,
        bus,
        profile,
        unit_price_centifen_per_kwh: unit_price,
        low_balance_centikwh: c.fixed(8, 2),
    }
}

/// What must be unique within a file, and the column that says so.
fn key_of(records: &Records, i: usize) -> (u32, String, usize) {
    match records {
        Records::Buildings(v) => (v[i].row, format!("{}\n{}", v[i].area, v[i].name_zh), 1),
        Records::Rooms(v) => (
            v[i].row,
            format!("{}\n{}\n{}", v[i].area, v[i].building, v[i].number),
            2,
        ),
        Records::Gateways(v) => (v[i].row, v[i].name.clone(), 2),
        Records::Meters(v) => (v[i].row, v[i].address.to_string(), 0),
    }
}

fn parse_rows<T>(
    table: &Table,
    cols: &'static [Column],
    index: &[Option<usize>],
    errors: &mut Vec<RowError>,
    one: fn(&mut Cells<'_>) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(table.rows.len());
    for (row, cells) in &table.rows {
        let values = index
            .iter()
            .map(|i| i.and_then(|i| cells.get(i)).map_or("", String::as_str))
            .collect();
        let mut c = Cells {
            row: *row,
            cols,
            values,
            errors: Vec::new(),
        };
        let record = one(&mut c);
        if c.errors.is_empty() {
            out.push(record);
        } else {
            errors.append(&mut c.errors);
        }
    }
    out
}

/// Checks a table's rows as `kind` (told from the header when `None`).
pub fn parse_table(table: &Table, kind: Option<Kind>) -> Result<Parsed, FileError> {
    let kind = kind
        .or_else(|| detect(&table.header))
        .ok_or(FileError::UnknownKind)?;
    let cols = columns(kind);
    let index: Vec<Option<usize>> = cols
        .iter()
        .map(|c| table.header.iter().position(|h| matches(h, c)))
        .collect();
    if let Some((c, _)) = cols
        .iter()
        .zip(&index)
        .find(|(c, i)| c.required && i.is_none())
    {
        return Err(FileError::MissingColumn(c.header()));
    }
    if table.rows.is_empty() {
        return Err(FileError::NoRows);
    }
    let mut errors = Vec::new();
    let e = &mut errors;
    let mut records = match kind {
        Kind::Buildings => Records::Buildings(parse_rows(table, cols, &index, e, building)),
        Kind::Rooms => Records::Rooms(parse_rows(table, cols, &index, e, room)),
        Kind::Gateways => Records::Gateways(parse_rows(table, cols, &index, e, gateway)),
        Kind::Meters => Records::Meters(parse_rows(table, cols, &index, e, meter)),
    };
    let mut first: HashMap<String, u32> = HashMap::new();
    let mut keep = Vec::with_capacity(records.len());
    for i in 0..records.len() {
        let (row, key, col) = key_of(&records, i);
        match first.get(&key) {
            Some(&earlier) => {
                errors.push(RowError::new(
                    row,
                    &cols[col].header(),
                    format!("duplicate of row {earlier}"),
                ));
                keep.push(false);
            }
            None => {
                first.insert(key, row);
                keep.push(true);
            }
        }
    }
    let mut keep = keep.into_iter();
    let mut retain = |_: &_| keep.next().unwrap_or(false);
    match &mut records {
        Records::Buildings(v) => v.retain(|r| retain(&r.row)),
        Records::Rooms(v) => v.retain(|r| retain(&r.row)),
        Records::Gateways(v) => v.retain(|r| retain(&r.row)),
        Records::Meters(v) => v.retain(|r| retain(&r.row)),
    }
    errors.sort_by_key(|e| e.row);
    Ok(Parsed {
        rows: table.rows.len(),
        records,
        errors,
    })
}
