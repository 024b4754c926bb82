//! Geo commands: the differential scripts of `tests/diff/geo/`, and randomized searches
//! over a few thousand points compared byte for byte with redis-server (scores, distances,
//! coordinates, order, COUNT [ANY], stores), which a hand-written script cannot cover.

mod support;

use rand::{Rng, SeedableRng};
use support::TestServer;

#[test]
fn geo_commands_match_redis() {
    support::run_script_dir("geo");
}

/// A random search command over `key`, centred on a random position or member.
fn random_search(rng: &mut rand::rngs::StdRng, key: &str, members: usize) -> Vec<String> {
    let units = ["m", "km", "ft", "mi"];
    let unit = units[rng.gen_range(0..units.len())];
    let scale = match unit {
        "m" => 1000.0,
        "ft" => 3000.0,
        _ => 1.0,
    };
    // Sizes from metres to half the planet.
    let size = |rng: &mut rand::rngs::StdRng| {
        format!("{:.3}", 10f64.powf(rng.gen_range(-1.0..4.3)) * scale)
    };
    let lon = format!("{:.6}", rng.gen_range(-180.0..=180.0));
    let lat = format!("{:.6}", rng.gen_range(-85.05..=85.05));
    let member = format!("m{}", rng.gen_range(0..members + 5));
    let mut c: Vec<String> = match rng.gen_range(0..4) {
        0 => vec![
            "GEORADIUS".into(),
            key.into(),
            lon,
            lat,
            size(rng),
            unit.into(),
        ],
        1 => vec![
            "GEORADIUSBYMEMBER_RO".into(),
            key.into(),
            member,
            size(rng),
            unit.into(),
        ],
        _ => {
            let mut c = vec!["GEOSEARCH".to_string(), key.into()];
            if rng.gen_bool(0.5) {
                c.extend(["FROMMEMBER".into(), member]);
            } else {
                c.extend(["FROMLONLAT".into(), lon, lat]);
            }
            if rng.gen_bool(0.5) {
                c.extend(["BYRADIUS".into(), size(rng), unit.into()]);
            } else {
                c.extend(["BYBOX".into(), size(rng), size(rng), unit.into()]);
            }
            c
        }
    };
    for opt in ["WITHDIST", "WITHCOORD", "WITHHASH"] {
        if rng.gen_bool(0.5) {
            c.push(opt.into());
        }
    }
    match rng.gen_range(0..4) {
        0 => c.push("ASC".into()),
        1 => c.push("DESC".into()),
        _ => {}
    }
    if rng.gen_bool(0.3) {
        c.extend(["COUNT".into(), rng.gen_range(1..50).to_string()]);
        if rng.gen_bool(0.5) {
            c.push("ANY".into());
        }
    }
    c
}

#[test]
fn random_searches_match_redis() {
    let kiln = TestServer::kiln(&[]);
    let Some(redis) = TestServer::redis(&[]) else {
        return;
    };
    let (mut k, mut r) = (kiln.raw(), redis.raw());
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let n = 3000;
    // Points everywhere, and clusters near the poles and the antimeridian.
    for chunk in 0..n / 100 {
        let mut c = vec!["GEOADD".to_string(), "g".into()];
        for i in 0..100 {
            let (lon, lat): (f64, f64) = match chunk % 3 {
                0 => (rng.gen_range(-180.0..=180.0), rng.gen_range(-85.05..=85.05)),
                1 => (rng.gen_range(-180.0..=180.0), rng.gen_range(70.0..=85.05)),
                _ => (
                    rng.gen_range(178.0..=180.0) * if rng.gen_bool(0.5) { 1.0 } else { -1.0 },
                    rng.gen_range(-5.0..=5.0),
                ),
            };
            c.extend([
                format!("{lon:.6}"),
                format!("{lat:.6}"),
                format!("m{}", chunk * 100 + i),
            ]);
        }
        assert_eq!(k.cmd(&c), r.cmd(&c));
    }
    assert_eq!(
        k.cmd(&["ZRANGE", "g", "0", "-1", "WITHSCORES"]),
        r.cmd(&["ZRANGE", "g", "0", "-1", "WITHSCORES"])
    );
    let mut differences = Vec::new();
    for _ in 0..400 {
        let c = random_search(&mut rng, "g", n);
        let (kr, rr) = (k.cmd(&c), r.cmd(&c));
        if kr != rr {
            differences.push(format!("{c:?}\n  redis: {rr:.300}\n  kiln:  {kr:.300}"));
        }
    }
    for m in ["m1", "m2", "m1000", "m2999", "nosuch"] {
        let c = ["GEOPOS", "g", m];
        assert_eq!(k.cmd(&c), r.cmd(&c));
        let c = ["GEOHASH", "g", m];
        assert_eq!(k.cmd(&c), r.cmd(&c));
        let c = ["GEODIST", "g", "m0", m, "km"];
        assert_eq!(k.cmd(&c), r.cmd(&c));
    }
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// Stores of random searches leave the same sorted sets (scores, encodings) behind.
#[test]
fn random_stores_match_redis() {
    let kiln = TestServer::kiln(&[]);
    let Some(redis) = TestServer::redis(&[]) else {
        return;
    };
    let (mut k, mut r) = (kiln.raw(), redis.raw());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..300 {
        let c = [
            "GEOADD".to_string(),
            "g".into(),
            format!("{:.5}", rng.gen_range(-20.0..20.0)),
            format!("{:.5}", rng.gen_range(-20.0..20.0)),
            format!("p{i}"),
        ];
        assert_eq!(k.cmd(&c), r.cmd(&c));
    }
    for _ in 0..100 {
        let radius = format!("{}", rng.gen_range(1..3000));
        let (lon, lat) = (
            format!("{:.3}", rng.gen_range(-20.0..20.0)),
            format!("{:.3}", rng.gen_range(-20.0..20.0)),
        );
        let mut c: Vec<String> = [
            "GEOSEARCHSTORE",
            "dst",
            "g",
            "FROMLONLAT",
            &lon,
            &lat,
            "BYRADIUS",
            &radius,
            "km",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if rng.gen_bool(0.5) {
            c.push("STOREDIST".into());
        }
        if rng.gen_bool(0.5) {
            c.extend(["COUNT".into(), rng.gen_range(1..200).to_string()]);
        }
        assert_eq!(k.cmd(&c), r.cmd(&c), "{c:?}");
        for q in [
            &["ZRANGE", "dst", "0", "-1", "WITHSCORES"][..],
            &["OBJECT", "ENCODING", "dst"],
        ] {
            assert_eq!(k.cmd(q), r.cmd(q), "{c:?} then {q:?}");
        }
    }
}

/// Members at the same few positions: with COUNT below the matches, the ties come out as
/// Redis's partial quicksort leaves them; without, in scan order.
#[test]
fn ties_come_out_in_redis_order() {
    let kiln = TestServer::kiln(&[]);
    let Some(redis) = TestServer::redis(&[]) else {
        return;
    };
    let (mut k, mut r) = (kiln.raw(), redis.raw());
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let spots = [("1", "1"), ("1.001", "1"), ("1", "1.002"), ("1.01", "1.01")];
    for _ in 0..150 {
        k.cmd(&["FLUSHALL"]);
        r.cmd(&["FLUSHALL"]);
        let n = rng.gen_range(5..120);
        let mut add = vec!["GEOADD".to_string(), "g".into()];
        for i in 0..n {
            let (x, y) = spots[rng.gen_range(0..spots.len())];
            add.extend([x.to_string(), y.to_string(), format!("m{i}")]);
        }
        assert_eq!(k.cmd(&add), r.cmd(&add));
        let mut q: Vec<String> = [
            "GEOSEARCH",
            "g",
            "FROMLONLAT",
            "1",
            "1",
            "BYRADIUS",
            "100",
            "km",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        q.extend(["COUNT".into(), rng.gen_range(1..=n).to_string()]);
        q.push(if rng.gen_bool(0.5) { "ASC" } else { "DESC" }.into());
        if rng.gen_bool(0.3) {
            q.push("ANY".into());
        }
        assert_eq!(k.cmd(&q), r.cmd(&q), "{q:?}");
    }
}
