//! AOF files as start-up loads them (`kiln::aof::load`): an optional RDB part (a base or a
//! preamble, read by the RDB reader up to its end), then commands in RESP read by
//! `CommandReader`, whose relative TTLs `absolute_ttl` rewrites.
//!
//! Asserts: no panic and no allocation beyond the input's worth; the commands (and the
//! error, with its offset) are the same whether the file is read through a large buffer
//! or a few bytes at a time; a file read without error is exactly its commands written
//! back (RESP arrays of bulk strings, annotations aside).
#![no_main]

use std::io::BufReader;

use kiln::aof::load::{absolute_ttl, CommandReader};
use kiln::rdb::{Reader, Record};
use kiln_fuzz::Trickle;
use libfuzzer_sys::fuzz_target;

type Commands = (Vec<Vec<Vec<u8>>>, Option<String>, u64);

fn commands<R: std::io::BufRead>(mut rd: CommandReader<R>) -> Commands {
    let mut out = Vec::new();
    loop {
        match rd.next_command() {
            Ok(Some(c)) => out.push(c),
            Ok(None) => return (out, None, rd.offset),
            Err(e) => return (out, Some(format!("{e:?}")), rd.offset),
        }
    }
}

/// Where the commands start: after the RDB part, if the file has one that reads to its end.
fn rdb_part(data: &[u8]) -> Option<u64> {
    if !data.starts_with(b"REDIS") {
        return Some(0);
    }
    let mut rd = Reader::new(data).ok()?;
    loop {
        match rd.next_record() {
            Ok(Record::End) => return Some(rd.offset()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(start) = rdb_part(data) else {
        return;
    };
    let tail = &data[start as usize..];
    let whole = commands(CommandReader::new(BufReader::new(tail), start));
    let small = BufReader::with_capacity(7, Trickle::new(tail));
    let pieces = commands(CommandReader::new(small, start));
    assert_eq!(whole, pieces);

    for c in &whole.0 {
        let args: Vec<&[u8]> = c.iter().map(|a| &a[..]).collect();
        let _ = absolute_ttl(&args, 1_700_000_000_000);
    }

    let (cmds, err, end) = whole;
    if err.is_none() {
        assert_eq!(end, data.len() as u64);
        let mut again = Vec::new();
        for c in &cmds {
            let args: Vec<&[u8]> = c.iter().map(|a| &a[..]).collect();
            kiln::feed::encode(&mut again, &args);
        }
        let reread = commands(CommandReader::new(BufReader::new(&again[..]), 0));
        assert_eq!(reread, (cmds, None, again.len() as u64));
    }
});
