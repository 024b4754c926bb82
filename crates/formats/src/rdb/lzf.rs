//! LZF, the byte-oriented LZ77 variant RDB files use for long strings and packed blobs.
//!
//! The format is a sequence of runs, each introduced by a control byte `c`:
//!
//! * `c < 32`: a literal run; the next `c + 1` bytes are copied as they are.
//! * otherwise a back reference: `len = c >> 5` (when it is 7, the next byte is added to
//!   it), then one more byte `o`; it copies `len + 2` bytes starting
//!   `((c & 31) << 8 | o) + 1` bytes back in the output. References may overlap the bytes
//!   they produce (a run of one repeated byte is a reference to the byte just written).
//!
//! The compressor here is Kiln's own: a greedy matcher over a hash of the next three bytes.
//! Its output is valid LZF but not always byte-identical to what Redis's compressor
//! produces for the same input; every reader, Redis included, decodes it the same.

/// Longest distance a back reference can reach.
const MAX_OFF: usize = 1 << 13;
/// Longest match one back reference can copy (7 + 255 + 2).
const MAX_REF: usize = 264;
/// Longest literal run.
const MAX_LIT: usize = 32;
/// log2 of the match-finder's largest hash table (inputs of 8 KiB and more).
const HASH_BITS: u32 = 14;
/// log2 of its smallest one.
const MIN_HASH_BITS: u32 = 5;

/// Why a compressed blob could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The input ended inside a run.
    Truncated,
    /// A back reference points before the start of the output.
    BadReference,
    /// The output would not have exactly the declared length.
    WrongLength,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "LZF data ends inside a run",
            Error::BadReference => "LZF back reference before the start of the data",
            Error::WrongLength => "LZF data does not decompress to its declared length",
        })
    }
}

/// Decompresses `input`, which must produce exactly `expected` bytes. The output grows
/// with the data actually decoded (each input byte yields at most 88 output bytes), so a
/// forged `expected` cannot make this allocate more than the input can justify.
pub fn decompress(input: &[u8], expected: usize) -> Result<Vec<u8>, Error> {
    // LZF expands at most 264 bytes per 3 input bytes.
    if expected / 88 > input.len() {
        return Err(Error::WrongLength);
    }
    let mut out: Vec<u8> = Vec::with_capacity(expected);
    let mut i = 0;
    while i < input.len() {
        let c = input[i] as usize;
        i += 1;
        if c < 32 {
            let n = c + 1;
            let lit = input.get(i..i + n).ok_or(Error::Truncated)?;
            if out.len() + n > expected {
                return Err(Error::WrongLength);
            }
            out.extend_from_slice(lit);
            i += n;
            continue;
        }
        let mut len = c >> 5;
        if len == 7 {
            len += *input.get(i).ok_or(Error::Truncated)? as usize;
            i += 1;
        }
        let len = len + 2;
        let lo = *input.get(i).ok_or(Error::Truncated)? as usize;
        i += 1;
        let back = ((c & 0x1f) << 8 | lo) + 1;
        if back > out.len() {
            return Err(Error::BadReference);
        }
        if out.len() + len > expected {
            return Err(Error::WrongLength);
        }
        let start = out.len() - back;
        if back >= len {
            out.extend_from_within(start..start + len);
        } else {
            // Overlapping copy: each byte may be one this reference just produced.
            for k in 0..len {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    if out.len() != expected {
        return Err(Error::WrongLength);
    }
    Ok(out)
}

#[inline]
fn hash3(b: &[u8], bits: u32) -> usize {
    let v = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
    (v.wrapping_mul(0x9E37_79B1) >> (32 - bits)) as usize
}

/// Hash bits for an input of `n` bytes: about two slots per position. A table sized to
/// the input stays in the L1 cache for the short strings a snapshot is mostly made of,
/// and is cheap to clear before each call.
fn table_bits(n: usize) -> u32 {
    (usize::BITS - n.leading_zeros() + 1).clamp(MIN_HASH_BITS, HASH_BITS)
}

/// Appends a literal run (any length, split into runs of at most 32).
fn put_literals(out: &mut Vec<u8>, mut lit: &[u8]) {
    while !lit.is_empty() {
        let n = lit.len().min(MAX_LIT);
        out.push((n - 1) as u8);
        out.extend_from_slice(&lit[..n]);
        lit = &lit[n..];
    }
}

/// Bytes [`put_literals`] writes for `n` literals.
fn literal_cost(n: usize) -> usize {
    n + n.div_ceil(MAX_LIT)
}

/// Compresses `input`; `None` when the result would be longer than `max_out` bytes (RDB
/// writers then store the data as it is).
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(max_out.min(input.len()));
    compress_into(input, max_out, &mut out).then_some(out)
}

/// [`compress`], appending the compressed bytes to `out` (the RDB writer compresses
/// straight into its output buffer, without an allocation per string). Returns false, with
/// `out` as it was, when the result would be longer than `max_out` bytes.
pub fn compress_into(input: &[u8], max_out: usize, out: &mut Vec<u8>) -> bool {
    if input.len() < 4 {
        return false;
    }
    // One table per thread, allocated once; each call clears only the part its input
    // uses, so the output depends on the input alone.
    thread_local! {
        static TABLE: std::cell::RefCell<Vec<u32>> =
            std::cell::RefCell::new(vec![EMPTY; 1 << HASH_BITS]);
    }
    let base = out.len();
    let bits = table_bits(input.len());
    let ok = TABLE.with(|t| {
        let table = &mut t.borrow_mut()[..1 << bits];
        table.fill(EMPTY);
        compress_with(table, bits, input, base + max_out, out)
    });
    if !ok {
        out.truncate(base);
    }
    ok
}

/// A hash table slot that holds no position.
const EMPTY: u32 = u32::MAX;

/// The compressor proper: appends to `out` and gives up (false, leaving partial output for
/// the caller to cut) as soon as `out` would grow past `limit` bytes in total.
fn compress_with(
    table: &mut [u32],
    bits: u32,
    input: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> bool {
    let n = input.len();
    out.reserve(limit.saturating_sub(out.len()).min(n));
    let mut lit_start = 0;
    let mut i = 0;
    while i + 2 < n {
        let h = hash3(&input[i..], bits);
        let slot = table[h];
        table[h] = i as u32;
        let cand = slot as usize;
        let ok = slot != EMPTY
            && cand < i
            && i - cand <= MAX_OFF
            && input[cand..cand + 3] == input[i..i + 3];
        if !ok {
            i += 1;
            continue;
        }
        let mut len = 3;
        while i + len < n && len < MAX_REF && input[cand + len] == input[i + len] {
            len += 1;
        }
        if out.len() + literal_cost(i - lit_start) + 3 > limit {
            return false;
        }
        put_literals(out, &input[lit_start..i]);
        let off = i - cand - 1;
        let l = len - 2;
        if l < 7 {
            out.push(((l << 5) | (off >> 8)) as u8);
        } else {
            out.push(((7 << 5) | (off >> 8)) as u8);
            out.push((l - 7) as u8);
        }
        out.push(off as u8);
        // Index the last two positions the match covered, so data right after it can
        // refer into it (as liblzf does; indexing every position of a long match cost
        // more than it saved).
        let end = i + len;
        let mut j = (i + 1).max(end - 2);
        while j < end && j + 2 < n {
            table[hash3(&input[j..], bits)] = j as u32;
            j += 1;
        }
        i = end;
        lit_start = i;
    }
    if out.len() + literal_cost(n - lit_start) > limit {
        return false;
    }
    put_literals(out, &input[lit_start..]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8]) {
        if let Some(c) = compress(data, data.len()) {
            assert_eq!(decompress(&c, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn compressible_data_round_trips_and_shrinks() {
        let data = b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc".repeat(20);
        let c = compress(&data, data.len() - 4).unwrap();
        assert!(c.len() < data.len() / 5);
        assert_eq!(decompress(&c, data.len()).unwrap(), data);
        let zeros = vec![0u8; 100_000];
        round_trip(&zeros);
    }

    #[test]
    fn random_and_mixed_data_round_trip() {
        let mut x: u64 = 1;
        for len in [4usize, 5, 20, 33, 100, 1000, 9000, 70_000] {
            let data: Vec<u8> = (0..len)
                .map(|i| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    if i % 3 == 0 {
                        b'a' + (i % 7) as u8
                    } else {
                        (x >> 60) as u8
                    }
                })
                .collect();
            round_trip(&data);
        }
    }

    #[test]
    fn incompressible_data_is_refused() {
        let data: Vec<u8> = (0..=255u8).collect();
        assert!(compress(&data, data.len() - 4).is_none());
    }

    #[test]
    fn compressing_into_a_buffer_appends_or_leaves_it_as_it_was() {
        let mut out = b"head".to_vec();
        let data = b"xyzxyzxyzxyzxyzxyzxyzxyzxyzxyz".repeat(4);
        assert!(compress_into(&data, data.len() - 4, &mut out));
        assert_eq!(&out[..4], b"head");
        assert_eq!(Some(out[4..].to_vec()), compress(&data, data.len() - 4));
        assert_eq!(decompress(&out[4..], data.len()).unwrap(), data);
        let noise: Vec<u8> = (0..=255u8).collect();
        let before = out.clone();
        assert!(!compress_into(&noise, noise.len() - 4, &mut out));
        assert_eq!(out, before);
    }

    #[test]
    fn the_output_depends_on_the_input_alone() {
        let a = b"hello hello hello hello, said the kiln".to_vec();
        let first = compress(&a, a.len()).unwrap();
        // Other inputs, large and small, in between leave nothing behind that matters.
        let big: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 13) as u8).collect();
        compress(&big, big.len()).unwrap();
        compress(b"hello hello hello hello", 100).unwrap();
        assert_eq!(compress(&a, a.len()).unwrap(), first);
        assert_eq!(table_bits(30), 6);
        assert_eq!(table_bits(4), MIN_HASH_BITS);
        assert_eq!(table_bits(1 << 20), HASH_BITS);
    }

    #[test]
    fn redis_output_decodes() {
        // What redis-server 7.0 stored for 30 times 'a' and for a repetitive sentence.
        let a = [0x01, b'a', b'a', 0xe0, 0x11, 0x00, 0x01, b'a', b'a'];
        assert_eq!(decompress(&a, 30).unwrap(), vec![b'a'; 30]);
        let mut s = vec![0x0c];
        s.extend_from_slice(b"hello world h");
        s.extend_from_slice(&[0xe0, 0x0c, 0x0b, 0x01, b'd', b'!']);
        assert_eq!(
            decompress(&s, 36).unwrap(),
            b"hello world hello world hello world!"
        );
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        assert_eq!(decompress(&[0x05, b'a'], 6), Err(Error::Truncated));
        assert_eq!(decompress(&[0x20, 0x05], 3), Err(Error::BadReference));
        assert_eq!(decompress(&[0x00, b'a'], 2), Err(Error::WrongLength));
        assert_eq!(
            decompress(&[0x00, b'a', 0x20, 0x00], 2),
            Err(Error::WrongLength)
        );
        assert_eq!(decompress(&[0x00], 1_000_000), Err(Error::WrongLength));
        for b in 0..=255u8 {
            for c in 0..=255u8 {
                let _ = decompress(&[b, c, b, c, 0xff], 50);
            }
        }
    }
}
