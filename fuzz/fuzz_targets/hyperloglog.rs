//! HyperLogLog values as PFADD, PFCOUNT, PFMERGE and PFDEBUG read them
//! (`kiln::command::hyperloglog`): any string a client SETs may reach them.
//!
//! The input is tried as it is and behind a valid sparse header and a valid dense header
//! (so the fuzzer reaches the opcodes and registers). Asserts: no panic; a value whose
//! registers decode counts the same in its sparse and dense forms; adding elements to it
//! and merging it into an empty HyperLogLog (the sparse writer, promotion included) leaves
//! the same registers as the same work on its dense form.
#![no_main]

use kiln::command::hyperloglog::{
    add, count, empty, is_hll, merge_into, registers, set_register, to_dense, DENSE_SIZE,
};
use libfuzzer_sys::fuzz_target;

const HEADER_SPARSE: &[u8] = b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80";

fn check(s: &[u8], max_bytes: u64) {
    if !is_hll(s) {
        return;
    }
    let counted = count(s);
    let mut max = vec![0u8; 16384];
    let merged = merge_into(&mut max, s);
    let dense = if s[4] == 1 { to_dense(s) } else { Ok(s.to_vec()) };
    if let Ok(d) = &dense {
        assert_eq!(d.len(), DENSE_SIZE);
        if counted.is_ok() {
            assert_eq!(count(d), counted, "sparse and dense counts differ");
        }
        if merged.is_ok() {
            assert_eq!(registers(d).unwrap(), max);
        }
    }
    // PFADD on the value and on its dense form.
    let mut a = s.to_vec();
    let mut b = dense.as_ref().ok().cloned();
    for ele in [&b"a"[..], b"", b"hello", &s[..s.len().min(40)], b"elem:42"] {
        let ra = add(&mut a, ele, max_bytes);
        if let Some(b) = b.as_mut() {
            let _ = add(b, ele, max_bytes);
        }
        if ra.is_err() {
            return;
        }
    }
    if let (Ok(ra), Some(b)) = (registers(&a), b.as_ref()) {
        assert_eq!(ra, registers(b).unwrap(), "PFADD left different registers");
    }
    // PFMERGE of the value into an empty HyperLogLog.
    if let Ok(max) = registers(s) {
        let mut dst = empty();
        for (i, &v) in max.iter().enumerate() {
            if v != 0 {
                let _ = set_register(&mut dst, i, v, max_bytes);
            }
        }
        assert_eq!(registers(&dst).unwrap(), max, "PFMERGE lost registers");
    }
}

fuzz_target!(|data: &[u8]| {
    let max_bytes = data.first().map_or(3000, |&b| u64::from(b) * 16);
    check(data, max_bytes);
    let mut sparse = HEADER_SPARSE.to_vec();
    sparse.extend_from_slice(data);
    check(&sparse, max_bytes);
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..4].copy_from_slice(b"HYLL");
    let n = data.len().min(DENSE_SIZE - 16);
    dense[16..16 + n].copy_from_slice(&data[..n]);
    check(&dense, max_bytes);
});
