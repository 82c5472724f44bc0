//! `dormwatt import` end to end on SQLite: templates out, a meter file with
//! three bad rows refused with exactly those rows, then fixed and applied,
//! and `dormwatt status` counting the new meters.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory with a SQLite database and the binary run there.
struct Site {
    dir: PathBuf,
    url: String,
}

impl Site {
    /// `tag` keeps the directories of tests running at once apart.
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "dw-import-{tag}-{}-{}",
            std::process::id(),
            store::now_ms()
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let url = format!("sqlite://{}", dir.join("dw.db").display());
        Site { dir, url }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dormwatt"))
            .arg("--database-url")
            .arg(&self.url)
            .args(args)
            .current_dir(&self.dir)
            .env_remove("DORMWATT_DATABASE_URL")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run dormwatt")
    }

    /// Runs and insists on success; stdout.
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "dormwatt {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path: &Path = &self.dir.join(name);
        std::fs::write(path, bytes).expect("write file");
        name.to_owned()
    }

    fn meters_in(&self, building: &str) -> i64 {
        let status: serde_json::Value =
            serde_json::from_slice(&self.ok(&["status", "--json"])).expect("status JSON");
        status["meters_per_building"][building]
            .as_i64()
            .unwrap_or(0)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const B4: &str = "中国传媒大学 / 4号楼";

#[test]
fn a_meter_file_with_three_bad_rows_is_refused_then_fixed_and_applied() {
    let site = Site::new("apply");
    site.ok(&["seed"]);
    // The rooms template (XLSX) and three more rooms (CSV).
    let rooms = site.ok(&["import", "--template", "rooms", "--format", "xlsx"]);
    assert!(rooms.starts_with(b"PK\x03\x04"));
    let rooms = site.write("rooms.xlsx", &rooms);
    site.ok(&["import", &rooms]);
    let more = site.write(
        "more.csv",
        "房间,楼层,楼栋,区域代码\n403,4,4号楼,cuc\n404,4,4号楼,cuc\n405,4,4号楼,cuc\n".as_bytes(),
    );
    site.ok(&["import", &more]);
    assert_eq!(site.meters_in(B4), 30);

    let template = String::from_utf8(site.ok(&["import", "--template", "meters"])).expect("UTF-8");
    let bad = format!(
        "{template}\
         201701010031,cuc,4号楼,403,cuc-b01-gw1,1,,,\r\n\
         201701010001,cuc,4号楼,404,cuc-b01-gw1,1,,,\r\n\
         201701010035,cuc,5号楼,405,cuc-b01-gw1,1,,,\r\n"
    );
    let file = site.write("meters.csv", bad.as_bytes());
    let out = site.run(&["import", &file, "--dry-run", "--json"]);
    assert!(
        !out.status.success(),
        "three bad rows: a failing exit status"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        (report["rows"].as_i64(), report["ok"].as_i64()),
        (Some(6), Some(3))
    );
    let errors: Vec<(i64, &str, &str)> = report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["row"].as_i64().unwrap_or(0),
                e["column"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (5, "电表编号/address", "duplicate of row 2"),
            (6, "电表编号/address", "already registered"),
            (7, "楼栋/building", "unknown building '5号楼' in area 'cuc'"),
        ]
    );
    // Applying without --dry-run refuses too and writes nothing.
    assert!(!site.run(&["import", &file]).status.success());
    assert_eq!(site.meters_in(B4), 30);

    let fixed = bad
        .replace("201701010031,cuc,4号楼,403", "201701010033,cuc,4号楼,403")
        .replace("201701010001,cuc,4号楼,404", "201701010034,cuc,4号楼,404")
        .replace("5号楼,405", "4号楼,405");
    let file = site.write("fixed.csv", fixed.as_bytes());
    let done: serde_json::Value =
        serde_json::from_slice(&site.ok(&["import", &file, "--json"])).expect("JSON");
    assert_eq!(done["applied"].as_i64(), Some(6));
    assert_eq!(done["errors"].as_array().map(Vec::len), Some(0));
    assert_eq!(site.meters_in(B4), 35);
    assert_eq!(site.meters_in("华东示范学院 / 1号楼"), 25);
    site.ok(&["check-ledger"]);
}

#[test]
fn a_missing_column_or_a_wrong_encoding_is_one_file_error() {
    let site = Site::new("file");
    site.ok(&["migrate"]);
    let file = site.write(
        "no-room.csv",
        "电表编号,区域代码,楼栋,网关,总线\n201701010031,cuc,4号楼,gw,1\n".as_bytes(),
    );
    let out = site.run(&["import", &file, "--json"]);
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["errors"][0]["column"], "房间/room");
    assert_eq!(report["errors"][0]["reason"], "missing column");
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("电表编号".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let file = site.write("utf16.csv", &utf16);
    let out = site.run(&["import", &file]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("wrong encoding"),
        "{out:?}"
    );
}
