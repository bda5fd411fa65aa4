//! Rebuild when a migration is added: `sqlx::migrate!` embeds the migrations folder at compile
//! time, and Cargo does not otherwise notice a new file in it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
