//! The attacker who can write a copy of the vault file but has no quorum
//! (SECURITY.md, "Someone who can write the file"). Each test reproduces one
//! attack through the file itself (rusqlite or the stock `sqlite3`) and
//! asserts the outcome: no command runs, no alert is lost, no deposit is sealed
//! to a foreign key, no forged checkpoint, anchor or endorsement verifies, no
//! erased unseal goes unnoticed, no edited request is accepted.

#[path = "support/mod.rs"]
mod support;

#[path = "hostile_file/edges.rs"]
mod edges;
#[path = "hostile_file/kdf_params.rs"]
mod kdf_params;
#[path = "hostile_file/old_keys.rs"]
mod old_keys;
#[path = "hostile_file/races.rs"]
mod races;
#[path = "hostile_file/requests.rs"]
mod requests;
#[path = "hostile_file/vault_file.rs"]
mod vault_file;
