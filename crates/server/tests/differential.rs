//! Differential tests: the scripts under tests/diff/<family>/ run against kiln-server and
//! redis-server, and every reply must be byte-for-byte identical (see support::run_script).

mod support;

#[test]
fn connection_commands_match_redis() {
    support::run_script_dir("connection");
}

#[test]
fn string_commands_match_redis() {
    support::run_script_dir("strings");
}

#[test]
fn keyspace_commands_match_redis() {
    support::run_script_dir("keys");
}

#[test]
fn server_commands_match_redis() {
    support::run_script_dir("server");
}

#[test]
fn scripting_commands_match_redis() {
    support::run_script_dir("scripting");
}

#[test]
fn acl_commands_match_redis() {
    support::run_script_dir("acl");
}

#[test]
fn migrate_commands_match_redis() {
    support::run_script_dir("migrate");
}
