// Embedded migrations must be re-read when a migration file changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
