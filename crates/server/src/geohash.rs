//! Geohash arithmetic for the GEO commands, computed the way Redis 7.0 computes it so that
//! scores, positions and distances agree with it to the last digit.
//!
//! A position is stored as a sorted-set score: a 52-bit integer interleaving 26 bits of
//! longitude (odd bits) with 26 bits of latitude (even bits), each the coordinate's cell
//! index on its range (longitude -180..180, latitude -85.05112878..85.05112878, the Web
//! Mercator limits). Searches cover the search shape with the cell of a coarser step that
//! holds the centre and its 8 neighbours (minus those the shape cannot reach), scan each
//! cell's score range, and keep the points inside the shape.

/// Bits per coordinate.
pub const STEP_MAX: u8 = 26;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const LON_MIN: f64 = -180.0;
pub const LON_MAX: f64 = 180.0;
/// The Earth's radius Redis uses, in meters.
pub const EARTH_RADIUS: f64 = 6372797.560856;
/// Half the Mercator projection's width, in meters (the step estimate's scale).
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

#[inline]
fn deg_rad(d: f64) -> f64 {
    d * D_R
}

#[inline]
fn rad_deg(r: f64) -> f64 {
    r / D_R
}

/// A coordinate range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

/// The ranges positions are encoded on (longitude, latitude).
pub const LON_RANGE: Range = Range {
    min: LON_MIN,
    max: LON_MAX,
};
pub const LAT_RANGE: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

/// A cell: interleaved bits at a precision of `step` bits per coordinate. Bits 0 with step
/// 0 is "no cell" (a neighbour the search skips).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

impl Hash {
    pub fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The bits scaled to the 52-bit score space.
    pub fn align52(&self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }
}

/// A cell's extent.
#[derive(Clone, Copy, Debug, Default)]
pub struct Area {
    pub lon: (f64, f64),
    pub lat: (f64, f64),
}

/// Spreads the 32 bits of `v` to the even bit positions.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// The inverse of [`spread`]: the even bits of `x` packed.
fn squash(x: u64) -> u32 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Whether a position may be stored (the Mercator limits).
pub fn valid(lon: f64, lat: f64) -> bool {
    (LON_MIN..=LON_MAX).contains(&lon) && (LAT_MIN..=LAT_MAX).contains(&lat)
}

/// The cell of `step` bits per coordinate holding (`lon`, `lat`) on the given ranges;
/// `None` outside the Mercator limits (whatever the ranges).
pub fn encode(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<Hash> {
    if !valid(lon, lat) || step == 0 || step > 32 {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_off = (lat - lat_r.min) / (lat_r.max - lat_r.min) * scale;
    let lon_off = (lon - lon_r.min) / (lon_r.max - lon_r.min) * scale;
    // C's conversion to a 32-bit unsigned: the offsets are within 0..=2^step.
    let bits = spread(lat_off as u32) | (spread(lon_off as u32) << 1);
    Some(Hash { bits, step })
}

/// [`encode`] on the storage ranges at full precision: the score of a position.
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode(LON_RANGE, LAT_RANGE, lon, lat, STEP_MAX).map(|h| h.align52())
}

/// The extent of a cell on the given ranges.
pub fn decode(lon_r: Range, lat_r: Range, h: Hash) -> Area {
    let lat_i = squash(h.bits);
    let lon_i = squash(h.bits >> 1);
    let div = (1u64 << h.step) as f64;
    let (lat_s, lon_s) = (lat_r.max - lat_r.min, lon_r.max - lon_r.min);
    Area {
        lat: (
            lat_r.min + (f64::from(lat_i) / div) * lat_s,
            lat_r.min + ((f64::from(lat_i) + 1.0) / div) * lat_s,
        ),
        lon: (
            lon_r.min + (f64::from(lon_i) / div) * lon_s,
            lon_r.min + ((f64::from(lon_i) + 1.0) / div) * lon_s,
        ),
    }
}

/// C's conversion of a double to `uint64_t` as x86-64 compilers emit it (a score that no
/// GEOADD wrote may be anything).
fn c_u64(d: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    // `cvttsd2si` yields i64::MIN for NaN and anything out of range.
    let cvt = |x: f64| -> i64 {
        if x.is_nan() || !(-TWO63..TWO63).contains(&x) {
            i64::MIN
        } else {
            x as i64
        }
    };
    if d >= TWO63 {
        (cvt(d - TWO63) as u64) ^ (1 << 63)
    } else {
        cvt(d) as u64
    }
}

/// The position a score stands for: the centre of its full-precision cell, clamped to
/// the limits.
pub fn decode_score(score: f64) -> (f64, f64) {
    let a = decode(
        LON_RANGE,
        LAT_RANGE,
        Hash {
            bits: c_u64(score),
            step: STEP_MAX,
        },
    );
    let lon = ((a.lon.0 + a.lon.1) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((a.lat.0 + a.lat.1) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The distance in meters between two latitudes on one meridian.
pub fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// The haversine distance in meters between two positions.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lon1r, lon2r) = (deg_rad(lon1), deg_rad(lon2));
    let v = ((lon2r - lon1r) / 2.0).sin();
    // Same meridian: the cheaper formula, as Redis.
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS * a.sqrt().asin()
}

/// What a search covers, in its unit (`conversion` meters each).
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    Radius(f64),
    /// Width, height.
    Box(f64, f64),
}

/// A search: centre, shape and the unit's size in meters.
#[derive(Clone, Copy, Debug)]
pub struct Search {
    pub lon: f64,
    pub lat: f64,
    pub shape: Shape,
    pub conversion: f64,
}

impl Search {
    /// The distance (meters) from the centre to (`lon`, `lat`) if the point is inside the
    /// shape.
    pub fn distance_if_within(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.shape {
            Shape::Radius(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= r * self.conversion).then_some(d)
            }
            Shape::Box(w, h) => {
                let (w, h) = (w * self.conversion, h * self.conversion);
                if lat_distance(lat, self.lat) > h / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > w / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }

    /// The bounding box of the shape: (min lon, min lat, max lon, max lat).
    fn bounds(&self) -> (f64, f64, f64, f64) {
        let (w, h) = match self.shape {
            Shape::Radius(r) => (r, r),
            Shape::Box(w, h) => (w / 2.0, h / 2.0),
        };
        let (w, h) = (w * self.conversion, h * self.conversion);
        let lat_delta = rad_deg(h / EARTH_RADIUS);
        let top = rad_deg(w / EARTH_RADIUS / deg_rad(self.lat + lat_delta).cos());
        let bottom = rad_deg(w / EARTH_RADIUS / deg_rad(self.lat - lat_delta).cos());
        // The wider edge is towards the equator.
        let d = if self.lat < 0.0 { bottom } else { top };
        (
            self.lon - d,
            self.lat - lat_delta,
            self.lon + d,
            self.lat + lat_delta,
        )
    }

    /// The cells to scan, in Redis's order (centre, N, S, E, W, NE, NW, SE, SW), zero
    /// hashes for skipped neighbours.
    pub fn cells(&self) -> [Hash; 9] {
        let (min_lon, min_lat, max_lon, max_lat) = self.bounds();
        let radius = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
        } * self.conversion;
        let mut step = estimate_step(radius, self.lat);
        let at = |step| encode(LON_RANGE, LAT_RANGE, self.lon, self.lat, step).unwrap_or_default();
        let mut hash = at(step);
        let mut nb = neighbours(hash);
        let area_of = |h| decode(LON_RANGE, LAT_RANGE, h);
        let decrease = area_of(nb[0]).lat.1 < max_lat
            || area_of(nb[1]).lat.0 > min_lat
            || area_of(nb[2]).lon.1 < max_lon
            || area_of(nb[3]).lon.0 > min_lon;
        if step > 1 && decrease {
            step -= 1;
            hash = at(step);
            nb = neighbours(hash);
        }
        let area = area_of(hash);
        let [mut n, mut s, mut e, mut w, mut ne, mut nw, mut se, mut sw] = nb;
        if step >= 2 {
            let z = Hash::default();
            if area.lat.0 < min_lat {
                (s, sw, se) = (z, z, z);
            }
            if area.lat.1 > max_lat {
                (n, ne, nw) = (z, z, z);
            }
            if area.lon.0 < min_lon {
                (w, sw, nw) = (z, z, z);
            }
            if area.lon.1 > max_lon {
                (e, se, ne) = (z, z, z);
            }
        }
        [hash, n, s, e, w, ne, nw, se, sw]
    }
}

/// The coarsest step whose cells (with their neighbours) cover `radius` meters at `lat`.
pub fn estimate_step(radius: f64, lat: f64) -> u8 {
    if radius == 0.0 {
        return 26;
    }
    let mut range = radius;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    // Cells narrow towards the poles.
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// The bits of one coordinate: odd for longitude (east-west), even for latitude.
const LON_BITS: u64 = 0xaaaa_aaaa_aaaa_aaaa;
const LAT_BITS: u64 = 0x5555_5555_5555_5555;

/// Moves a cell `d` (±1) cells along the coordinate whose bits are `mine` (east for
/// longitude, north for latitude), wrapping around.
fn move_cell(h: &mut Hash, d: i8, mine: u64) {
    let other = !mine;
    let shift = 64 - u32::from(h.step) * 2;
    let mut v = h.bits & mine;
    // Ones in the other coordinate's bits carry an addition across them.
    let zz = other >> shift;
    if d > 0 {
        v = v.wrapping_add(zz + 1);
    } else {
        v |= zz;
        v = v.wrapping_sub(zz + 1);
    }
    v &= mine >> shift;
    h.bits = v | (h.bits & other);
}

/// The 8 neighbours: N, S, E, W, NE, NW, SE, SW.
fn neighbours(h: Hash) -> [Hash; 8] {
    let mv = |dx: i8, dy: i8| {
        let mut n = h;
        if dx != 0 {
            move_cell(&mut n, dx, LON_BITS);
        }
        if dy != 0 {
            move_cell(&mut n, dy, LAT_BITS);
        }
        n
    };
    [
        mv(0, 1),
        mv(0, -1),
        mv(1, 0),
        mv(-1, 0),
        mv(1, 1),
        mv(-1, 1),
        mv(1, -1),
        mv(-1, -1),
    ]
}

/// The score range `[min, max)` a cell covers.
pub fn score_range(h: Hash) -> (u64, u64) {
    let min = h.align52();
    let max = Hash {
        bits: h.bits + 1,
        step: h.step,
    }
    .align52();
    (min, max)
}

/// The standard 11-character geohash of a stored score (re-encoded on latitude -90..90).
pub fn geohash_string(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = decode_score(score);
    let bits = encode(
        LON_RANGE,
        Range {
            min: -90.0,
            max: 90.0,
        },
        lon,
        lat,
        STEP_MAX,
    )
    .map_or(0, |h| h.bits);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        *c = ALPHABET[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_round_trips() {
        for v in [0u32, 1, 0x3ff_ffff, 0x155_5555, 0xffff_ffff] {
            assert_eq!(squash(spread(v)), v);
            assert_eq!(squash(spread(v) << 1 >> 1), v);
        }
    }

    #[test]
    fn palermo_matches_redis() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo": score 3479099956230698.
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698));
        let (lon, lat) = decode_score(3479099956230698.0);
        assert_eq!(format!("{lon:.17}"), "13.36138933897018433");
        assert_eq!(format!("{lat:.17}"), "38.11555639549629859");
        assert_eq!(&geohash_string(3479099956230698.0), b"sqc8b49rny0");
    }

    #[test]
    fn out_of_limits_does_not_encode() {
        assert!(score_of(180.1, 0.0).is_none());
        assert!(score_of(0.0, 85.06).is_none());
        assert!(score_of(-180.0, -85.05112878).is_some());
    }

    #[test]
    fn step_estimate() {
        assert_eq!(estimate_step(0.0, 0.0), 26);
        assert_eq!(estimate_step(1.0, 0.0), 24);
        assert_eq!(estimate_step(1.0, 70.0), 23);
        assert_eq!(estimate_step(1.0, -85.0), 22);
        assert_eq!(estimate_step(1e9, 0.0), 1);
    }

    #[test]
    fn odd_scores_decode_without_panicking() {
        for s in [-1.0, 1e300, f64::INFINITY, f64::NEG_INFINITY, 4.5e15, 0.5] {
            let (lon, lat) = decode_score(s);
            assert!(valid(lon, lat));
        }
    }

    /// What the `geohash` fuzz target checks, over random and edge doubles.
    #[test]
    fn any_doubles_are_safe() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let edges = [
            0.0,
            -0.0,
            180.0,
            -180.0,
            LAT_MAX,
            LAT_MIN,
            f64::INFINITY,
            1e308,
        ];
        for i in 0..20000 {
            let pick = |rng: &mut rand::rngs::StdRng| {
                if i % 4 == 0 {
                    edges[rng.gen_range(0..edges.len())]
                } else {
                    f64::from_bits(rng.gen())
                }
            };
            let (x, y) = decode_score(pick(&mut rng));
            assert!(valid(x, y));
            let lon = rng.gen_range(-180.0..=180.0);
            let lat = if i % 3 == 0 {
                pick(&mut rng)
            } else {
                rng.gen_range(LAT_MIN..=LAT_MAX)
            };
            if !valid(lon, lat) {
                continue;
            }
            let s = score_of(lon, lat).unwrap();
            let (x, y) = decode_score(s as f64);
            assert!((x - lon).abs() < 1e-4 && (y - lat).abs() < 1e-4);
            let a = pick(&mut rng).abs();
            let b = rng.gen_range(0.0..1e7);
            for shape in [Shape::Radius(a), Shape::Box(a, b), Shape::Radius(b)] {
                let search = Search {
                    lon,
                    lat,
                    shape,
                    conversion: 1.0,
                };
                for cell in search.cells() {
                    if !cell.is_zero() {
                        let (min, max) = score_range(cell);
                        assert!(min < max && max <= 1 << 53);
                    }
                }
                let _ = search.distance_if_within(x, y);
            }
        }
    }
}
