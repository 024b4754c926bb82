//! DUMP payloads as RESTORE decodes them (`kiln::rdb::restore_payload`).
//!
//! The input is tried twice: as it is (length, version and CRC checks), and with a valid
//! CRC-64 appended (so the fuzzer reaches the value decoder; its last two bytes are the
//! RDB version). Asserts: no panic, no allocation beyond the input's worth; a value that
//! decodes comes back identical from its own DUMP, with and without LZF, under Redis's
//! default encoding thresholds and under tiny ones (every conversion path). Both are also
//! tried as FUNCTION RESTORE payloads (`decode_functions_payload`; the `functions_payload`
//! target goes deeper).
#![no_main]

use kiln::rdb::{
    crc, decode_functions_payload, dump_payload, restore_payload, Limits, WriteOptions,
};
use kiln::storage::entry::ValueRef;
use kiln::storage::{hash, zset, Value};
use libfuzzer_sys::fuzz_target;

fn value_ref(v: &Value) -> ValueRef<'_> {
    match v {
        Value::Str(s) => ValueRef::Str(s),
        other => ValueRef::Other(other),
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = restore_payload(data, Limits::default());
    let _ = decode_functions_payload(data);

    let mut payload = data.to_vec();
    payload.extend_from_slice(&crc::crc64(data).to_le_bytes());
    let _ = decode_functions_payload(&payload);
    let tiny = Limits {
        hash: hash::Limits {
            entries: 1,
            value: 2,
        },
        zset: zset::Limits {
            entries: 1,
            value: 2,
        },
        max_intset: 1,
        list_fill: 1,
    };
    for limits in [Limits::default(), tiny] {
        let Ok(v) = restore_payload(&payload, limits) else {
            continue;
        };
        for compress in [false, true] {
            let opts = WriteOptions {
                compress,
                list_fill: limits.list_fill,
                ..WriteOptions::default()
            };
            let again = dump_payload(value_ref(&v), &opts);
            let back = restore_payload(&again, limits)
                .unwrap_or_else(|e| panic!("own DUMP refused: {e:?} for {v:?}"));
            assert_eq!(back, v);
        }
    }
});
