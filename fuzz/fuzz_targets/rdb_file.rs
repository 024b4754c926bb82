//! RDB files and streams: the streaming reader (`kiln::rdb::Reader`) that start-up, the AOF
//! base and a replica's full sync load with, and the RDB-to-commands conversion of AOF
//! rewrites (`aof::commands::rdb_to_commands`).
//!
//! Asserts: no panic and no allocation beyond the input's worth (run with
//! `-malloc_limit_mb`); the records (or the error, with its offset) are the same whether
//! the reader gets the file in one read or a few bytes per read; every key's value
//! survives DUMP encoding and RESTORE decoding unchanged (with and without LZF), and every
//! function library its FUNCTION DUMP / FUNCTION RESTORE payload; and the
//! commands a readable file converts to are a well-formed AOF.
#![no_main]

use std::io::{BufReader, Read};

use kiln::aof::load::CommandReader;
use kiln::rdb::{
    decode_functions_payload, dump_payload, encode_functions_payload_with, restore_payload, Limits,
    Reader, Record, WriteOptions,
};
use kiln::storage::entry::ValueRef;
use kiln::storage::Value;
use kiln_fuzz::Trickle;
use libfuzzer_sys::fuzz_target;

/// Records up to the end or the first error.
fn records(r: impl Read) -> Vec<Result<Record, kiln::rdb::RdbError>> {
    let mut out = Vec::new();
    let mut rd = match Reader::new(r) {
        Ok(rd) => rd,
        Err(e) => return vec![Err(e)],
    };
    loop {
        let rec = rd.next_record();
        let stop = !matches!(
            rec,
            Ok(Record::Key { .. }
                | Record::Aux(..)
                | Record::SelectDb(_)
                | Record::ResizeDb { .. }
                | Record::Function(_))
        );
        out.push(rec);
        if stop {
            return out;
        }
    }
}

fn value_ref(v: &Value) -> ValueRef<'_> {
    match v {
        Value::Str(s) => ValueRef::Str(s),
        other => ValueRef::Other(other),
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = records(data);
    let pieces = records(Trickle::new(data));
    assert_eq!(whole, pieces);

    for rec in &whole {
        if let Ok(Record::Function(code)) = rec {
            for compress in [false, true] {
                let codes = vec![code.clone()];
                let payload = encode_functions_payload_with(&codes, compress);
                let back = decode_functions_payload(&payload)
                    .unwrap_or_else(|e| panic!("own FUNCTION DUMP refused: {e:?}"));
                assert_eq!(back, codes);
            }
        }
        if let Ok(Record::Key { value, .. }) = rec {
            for compress in [false, true] {
                let opts = WriteOptions {
                    compress,
                    ..WriteOptions::default()
                };
                let payload = dump_payload(value_ref(value), &opts);
                let back = restore_payload(&payload, Limits::default())
                    .unwrap_or_else(|e| panic!("own DUMP refused: {e:?} for {value:?}"));
                assert_eq!(&back, value);
            }
        }
    }

    let mut cmds = Vec::new();
    if kiln::aof::commands::rdb_to_commands(data, &mut cmds).is_ok() {
        let mut rd = CommandReader::new(BufReader::new(&cmds[..]), 0);
        loop {
            match rd.next_command() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("rdb_to_commands wrote a bad AOF: {e:?}"),
            }
        }
    }
});
