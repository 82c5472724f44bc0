//! Templates round-trip; files as Excel writes them; the row checks.

use crate::*;

fn parse_csv(text: &str) -> Result<Parsed, FileError> {
    parse(text.as_bytes(), None)
}

/// A meters CSV with English headers, one row per address, rooms 401….
fn meters_csv(addresses: &[&str]) -> String {
    let mut text = String::from("address,area,building,room,gateway,bus\n");
    for (i, a) in addresses.iter().enumerate() {
        text.push_str(&format!("{a},cuc,4号楼,{},gw,1\n", 401 + i));
    }
    text
}

fn errors_of(text: &str) -> Vec<RowError> {
    parse_csv(text).unwrap().errors
}

#[test]
fn every_template_parses_back_without_errors() {
    for kind in Kind::ALL {
        for format in [Format::Csv, Format::Xlsx] {
            let bytes = template(kind, format).unwrap();
            let parsed = parse(&bytes, None).unwrap();
            assert_eq!(parsed.errors, [], "{kind:?} {format:?}");
            assert_eq!(parsed.records.kind(), kind, "{format:?}");
            assert_eq!(parsed.rows, examples(kind).len());
            assert_eq!(parsed.records.len(), parsed.rows);
        }
    }
}

#[test]
fn the_csv_template_has_a_bom_crlf_and_both_header_languages() {
    let bytes = template(Kind::Buildings, Format::Csv).unwrap();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(
        text.starts_with("\u{feff}区域代码/area,楼栋/building,英文名/name_en\r\n"),
        "{text}"
    );
}

#[test]
fn the_xlsx_template_is_a_workbook_with_the_headers() {
    let bytes = template(Kind::Meters, Format::Xlsx).unwrap();
    assert!(bytes.starts_with(b"PK\x03\x04"));
    let t = read_table(&bytes).unwrap();
    assert_eq!(t.header[0], "电表编号/address");
    // A number column holds numbers; the address stays 12 digits of text.
    assert_eq!(t.rows[1].1[0], "201701010032");
    assert_eq!(t.rows[1].1[7], "0.53");
}

/// Excel on Chinese Windows saves "CSV (逗号分隔)" as GBK with CRLF and no BOM.
#[test]
fn a_gbk_csv_as_excel_saves_it_imports() {
    let text = "电表编号,区域代码,楼栋,房间,网关,总线\r\n\
                201701010031,cuc,4号楼,401,cuc-b01-gw1,1\r\n\
                201701010032,cuc,中蓝一期A区,402,cuc-b11-gw1,2\r\n";
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&gbk).is_err(), "really not UTF-8");
    let parsed = parse(&gbk, None).unwrap();
    assert_eq!(parsed.errors, []);
    let Records::Meters(m) = parsed.records else {
        panic!("not meters")
    };
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].building, "中蓝一期A区");
    assert_eq!(m[1].row, 3);
    assert_eq!(m[0].profile, "dlt645-ref");
}

#[test]
fn a_missing_required_column_is_named() {
    let r = parse_csv("电表编号/address,区域代码,楼栋,网关,总线\n201701010031,cuc,4号楼,gw,1\n");
    assert_eq!(
        r.unwrap_err(),
        FileError::MissingColumn("房间/room".to_owned())
    );
    assert_eq!(
        FileError::MissingColumn("房间/room".to_owned()).as_row_error(),
        RowError::new(1, "房间/room", "missing column")
    );
    assert_eq!(parse_csv("a,b\n1,2\n").unwrap_err(), FileError::UnknownKind);
    assert_eq!(
        parse_csv("房间,楼层,楼栋,区域代码\r\n").unwrap_err(),
        FileError::NoRows
    );
}

#[test]
fn a_malformed_address_fails_its_row_only() {
    let e = errors_of(&meters_csv(&[
        "20170101003",
        "201701010031",
        "2017010100AB",
    ]));
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!((e[0].row, e[0].column.as_str()), (2, "电表编号/address"));
    assert!(e[0].reason.contains("12 digits"), "{}", e[0].reason);
    assert_eq!(e[1].row, 4);
}

#[test]
fn a_duplicate_within_the_file_names_the_first_row() {
    let parsed = parse_csv(&meters_csv(&[
        "201701010031",
        "201701010032",
        "2017 0101 0031",
    ]))
    .unwrap();
    assert_eq!(
        parsed.errors,
        [RowError::new(4, "电表编号/address", "duplicate of row 2")]
    );
    assert_eq!(parsed.records.len(), 2);
    let report = Report::new(parsed.rows, parsed.errors);
    assert_eq!((report.rows, report.ok), (3, 2));
}

#[test]
fn numbers_ranges_and_modes_are_checked() {
    let e = errors_of(
        "区域代码,楼栋,网关,模式,主机,端口,总线,波特率\n\
         cuc,4号楼,g1,tcp,h,80,1,2400\n\
         cuc,4号楼,g2,dial,h,70000,1,2400\n\
         cuc,4号楼,g3,dial,,,1,2400\n\
         cuc,4号楼,g4,listen,,,1;x,1234\n\
         cuc,4号楼,g5,listen,,,1、2,\n",
    );
    let got: Vec<(u32, &str)> = e.iter().map(|e| (e.row, e.column.as_str())).collect();
    assert_eq!(
        got,
        [
            (2, "模式/mode"),
            (3, "端口/port"),
            (4, "主机/host"),
            (4, "端口/port"),
            (5, "总线/buses"),
            (5, "波特率/baud"),
        ]
    );
    let e = errors_of("area,building,room,floor\ncuc,4号楼,401,four\ncuc,4号楼,,4\n");
    assert_eq!(e[0].reason, "'four' is not a whole number");
    assert_eq!(
        (e[1].row, e[1].column.as_str(), e[1].reason.as_str()),
        (3, "房间/room", "required")
    );
    let e = errors_of(
        "address,area,building,room,gateway,bus,unit_price,low_balance_kwh,profile\n\
         201701010031,cuc,4号楼,401,gw,17,0.53,5,dlt645-ref\n\
         201701010032,cuc,4号楼,402,gw,1,0.53001,-1,modbus\n",
    );
    let got: Vec<(u32, &str)> = e.iter().map(|e| (e.row, e.column.as_str())).collect();
    assert_eq!(
        got,
        [
            (2, "总线/bus"),
            (3, "型号/profile"),
            (3, "电价/unit_price"),
            (3, "低余额提醒/low_balance_kwh")
        ]
    );
}

#[test]
fn prices_and_thresholds_scale_to_their_units() {
    let parsed = parse_csv(
        "address,area,building,room,gateway,bus,unit_price,low_balance_kwh\n\
         201701010031,cuc,4号楼,401,gw,1,0.53,5\n\
         201701010032,cuc,4号楼,402,gw,1,,12.5\n",
    )
    .unwrap();
    let Records::Meters(m) = parsed.records else {
        panic!("not meters")
    };
    assert_eq!(m[0].unit_price_centifen_per_kwh, Some(5300));
    assert_eq!(m[0].low_balance_centikwh, Some(500));
    assert_eq!(m[1].unit_price_centifen_per_kwh, None);
    assert_eq!(m[1].low_balance_centikwh, Some(1250));
}
