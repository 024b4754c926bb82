//! Criterion benchmarks for the codec's two hot paths:
//!
//! * the server-side [`parse_request`] walking a pipeline of 100 `SET` requests, the way a
//!   connection drains one read buffer (one request at a time, reusing the argument vector);
//! * the client-side [`decode`] of typical replies (an `MGET`-style array of bulk strings and
//!   a RESP3 `HELLO`-style map), as kiln-cli and replication links see them.
//!
//! Run with `cargo bench -p kiln-resp`; throughput is reported in bytes per second.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kiln_resp::{decode, encode, parse_request, Limits, Parsed};

/// 100 `SET key:<n> <16-byte value>` requests back to back, as one read buffer.
fn set_pipeline() -> Vec<u8> {
    let mut wire = Vec::new();
    for i in 0..100 {
        let key = format!("key:{i:012}");
        let value = format!("value-{i:010}");
        encode::request(
            &mut wire,
            &[b"SET".as_slice(), key.as_bytes(), value.as_bytes()],
        );
    }
    wire
}

/// Parses every request in `wire`; returns the request count so the work cannot be elided.
fn parse_all(wire: &[u8], args: &mut Vec<std::ops::Range<usize>>, limits: &Limits) -> usize {
    let mut at = 0;
    let mut requests = 0;
    while at < wire.len() {
        match parse_request(&wire[at..], args, limits) {
            Ok(Parsed::Complete { consumed }) => {
                at += consumed;
                requests += 1;
            }
            // The buffer holds whole requests only: anything else is a bug in the bench.
            other => panic!("unexpected parse outcome {other:?}"),
        }
    }
    requests
}

fn bench_parse(c: &mut Criterion) {
    let wire = set_pipeline();
    let limits = Limits::default();
    let mut args = Vec::with_capacity(8);
    assert_eq!(parse_all(&wire, &mut args, &limits), 100);

    let mut group = c.benchmark_group("parse_request");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("pipeline_100_set", |b| {
        b.iter(|| parse_all(black_box(&wire), &mut args, &limits))
    });

    // The same pipeline typed as inline commands (redis-cli --pipe style input is multibulk,
    // but telnet users and some scripts send inline): a slower path worth keeping an eye on.
    let inline: Vec<u8> = (0..100)
        .flat_map(|i| format!("SET key:{i:012} value-{i:010}\r\n").into_bytes())
        .collect();
    group.throughput(Throughput::Bytes(inline.len() as u64));
    group.bench_function("inline_100_set", |b| {
        b.iter(|| parse_all(black_box(&inline), &mut args, &limits))
    });
    group.finish();
}

/// A 10-element array of 16-byte bulk strings with one nil, like an `MGET` reply.
fn mget_reply() -> Vec<u8> {
    let mut out = Vec::new();
    encode::header(&mut out, b'*', 10);
    for i in 0..10 {
        if i == 7 {
            out.extend_from_slice(b"$-1\r\n");
        } else {
            encode::bulk(&mut out, format!("value-{i:010}").as_bytes());
        }
    }
    out
}

/// A RESP3 map shaped like the `HELLO 3` reply: strings, integers and a nested array.
fn hello_reply() -> Vec<u8> {
    let mut out = Vec::new();
    encode::header(&mut out, b'%', 7);
    for (k, v) in [
        ("server", "redis"),
        ("version", "7.0.15"),
        ("mode", "standalone"),
        ("role", "master"),
    ] {
        encode::bulk(&mut out, k.as_bytes());
        encode::bulk(&mut out, v.as_bytes());
    }
    encode::bulk(&mut out, b"proto");
    encode::integer(&mut out, 3);
    encode::bulk(&mut out, b"id");
    encode::integer(&mut out, 42);
    encode::bulk(&mut out, b"modules");
    encode::header(&mut out, b'*', 0);
    out
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, wire) in [("mget_10", mget_reply()), ("hello_map", hello_reply())] {
        let (_, used) = decode(&wire).expect("fixture is valid RESP");
        assert_eq!(used, wire.len());
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(name, |b| b.iter(|| decode(black_box(&wire))));
    }
    group.finish();
}

criterion_group!(benches, bench_parse, bench_decode);
criterion_main!(benches);
