//! HyperLogLog commands against redis-server: the differential scripts of
//! `tests/diff/hyperloglog/` (raw bytes of every value compared with GET), and values
//! exchanged both ways with DUMP / RESTORE.

mod support;

#[test]
fn hyperloglog_commands_match_redis() {
    support::run_script_dir("hyperloglog");
}
