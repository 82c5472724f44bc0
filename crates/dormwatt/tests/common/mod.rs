//! Helpers shared by the black-box tests of the `dormwatt` binary.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_dormwatt");

/// A new directory under the system's temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "dw-cli-{tag}-{}-{}",
        std::process::id(),
        store::now_ms()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A finished command's stdout and stderr, as text.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
