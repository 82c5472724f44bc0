//! `dormwatt report` end to end on SQLite: a seeded campus with three days
//! of usage history, the usage report as JSON, as XLSX read back with
//! `report --read` (calamine) to the same total, as CSV for one building
//! only; a backwards range and an unknown report refused.

use std::path::PathBuf;
use std::process::{Command, Output};

fn scratch() -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!(
        "dw-report-{}-{}",
        std::process::id(),
        store::now_ms()
    ));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let url = format!("sqlite://{}", dir.join("dw.db").display());
    (dir, url)
}

fn run(dir: &PathBuf, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dormwatt"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .current_dir(dir)
        .env_remove("DORMWATT_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run dormwatt")
}

fn ok(dir: &PathBuf, url: &str, args: &[&str]) -> Vec<u8> {
    let out = run(dir, url, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn usage_as_json_xlsx_and_csv_agree_and_bad_ranges_are_refused() {
    let (dir, url) = scratch();
    ok(&dir, &url, &["seed", "--history-days", "3"]);

    let json: serde_json::Value =
        serde_json::from_slice(&ok(&dir, &url, &["report", "usage", "--format", "json"])).unwrap();
    let total = json["totals"]["usage_kwh"].as_f64().unwrap();
    assert!(total > 0.0, "{json}");
    let rows = json["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    let summed: f64 = rows.iter().map(|r| r["usage_kwh"].as_f64().unwrap()).sum();
    assert!((summed - total).abs() < 0.005, "{summed} vs {total}");

    let file = dir.join("usage.xlsx");
    std::fs::write(
        &file,
        ok(&dir, &url, &["report", "usage", "--format", "xlsx"]),
    )
    .unwrap();
    let back: serde_json::Value = serde_json::from_slice(&ok(
        &dir,
        &url,
        &["report", "--read", file.to_str().unwrap(), "--json"],
    ))
    .unwrap();
    assert_eq!(back["rows"].as_u64(), Some(rows.len() as u64));
    let col = |h: &str| {
        back["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["header"] == h)
            .unwrap_or_else(|| panic!("{h} in {back}"))
            .clone()
    };
    assert_eq!(col("日期")["cells"], "dates");
    assert_eq!(col("用电量（kWh）")["cells"], "numbers");
    assert_eq!(col("用电量（kWh）")["sum"].as_f64(), Some(total));
    assert_eq!(col("楼栋")["cells"], "text");

    let csv = ok(
        &dir,
        &url,
        &["report", "usage", "--building", "4号楼", "--format", "csv"],
    );
    assert!(csv.starts_with(b"\xEF\xBB\xBF"), "UTF-8 with a BOM");
    let text = String::from_utf8(csv[3..].to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("日期,楼栋,"), "{text}");
    assert!(lines.len() > 1, "{text}");
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.split(',').nth(1) == Some("4号楼")),
        "{text}"
    );
    let en = String::from_utf8(ok(
        &dir,
        &url,
        &["report", "usage", "--lang", "en", "--format", "csv"],
    ))
    .unwrap();
    assert!(
        en.trim_start_matches('\u{feff}')
            .starts_with("Day,Building,"),
        "{en}"
    );

    for args in [
        &[
            "report",
            "sales",
            "--from",
            "2026-12-10",
            "--to",
            "2026-12-01",
        ][..],
        &["report", "sales", "--from", "2026-02-30"][..],
        &["report", "no-such-report"][..],
        &["report", "usage", "--building", "no such building"][..],
    ] {
        let out = run(&dir, &url, args);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: no output");
        assert!(!out.stderr.is_empty(), "{args:?}: a reason");
    }
    let out = run(
        &dir,
        &url,
        &[
            "report",
            "sales",
            "--from",
            "2026-12-10",
            "--to",
            "2026-12-01",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("end date is before the start date"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
