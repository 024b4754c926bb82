//! The geohash arithmetic behind the GEO commands (`kiln::geohash`), on any doubles: the
//! scores it decodes come from clients (ZADD, RESTORE) and need not be geohashes, and the
//! search centres and sizes come from arguments (infinities included).
//!
//! Asserts: no panic or overflow; a decoded score is a valid position; a valid position
//! encodes to a 52-bit score that decodes to within a cell of it; every search cell is a
//! zero hash or has an ordered score range (a position on the top edge may reach just
//! past the 52-bit space, as in Redis).
#![no_main]

use kiln::geohash::{self, Search, Shape};
use libfuzzer_sys::fuzz_target;

fn doubles(data: &[u8]) -> impl Iterator<Item = f64> + '_ {
    data.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
}

fuzz_target!(|data: &[u8]| {
    let mut d = doubles(data);
    let (Some(score), Some(lon), Some(lat), Some(a), Some(b)) =
        (d.next(), d.next(), d.next(), d.next(), d.next())
    else {
        return;
    };
    let (x, y) = geohash::decode_score(score);
    assert!(geohash::valid(x, y), "{score} decodes to {x},{y}");
    let _ = geohash::geohash_string(score);
    if lon.is_nan() || lat.is_nan() || !geohash::valid(lon, lat) {
        return;
    }
    let s = geohash::score_of(lon, lat).expect("a valid position encodes");
    // The top edges (longitude 180, the top latitude) encode one past the 26 bits of each
    // coordinate, as in Redis: GEOADD 180 85.05112878 scores 2^53 + 2^52 there too.
    assert!(s <= (1 << 53) | (1 << 52), "{s}");
    let (x, y) = geohash::decode_score(s as f64);
    assert!((x - lon).abs() < 1e-4 && (y - lat).abs() < 1e-4, "{lon},{lat} -> {x},{y}");
    if a.is_nan() || b.is_nan() || a < 0.0 || b < 0.0 {
        return;
    }
    for shape in [Shape::Radius(a), Shape::Box(a, b)] {
        let search = Search { lon, lat, shape, conversion: 1.0 };
        for cell in search.cells() {
            if !cell.is_zero() {
                let (min, max) = geohash::score_range(cell);
                assert!(min < max && max <= 1 << 54, "{cell:?}");
            }
        }
        let _ = search.distance_if_within(x, y);
    }
});
