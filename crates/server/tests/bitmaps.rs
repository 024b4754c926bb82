//! Bitmap commands against redis-server: the differential scripts of `tests/diff/bitmaps/`.

mod support;

#[test]
fn bitmap_commands_match_redis() {
    support::run_script_dir("bitmaps");
}
