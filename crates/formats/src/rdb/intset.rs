//! Intsets: the blob a set of integers is stored as. An 8-byte header (the width of each
//! integer in bytes, 2, 4 or 8, as u32 LE; the count, u32 LE) and then the integers in
//! ascending order, little-endian. Redis's intset only ever widens, so a set that once held
//! a large integer keeps the wide encoding; Kiln keeps the width too, so a DUMP of an
//! intset is byte-identical to Redis's.

/// Reads an intset: (width in bytes, members in ascending order). Checks the header, the
/// size, and that the members are strictly ascending (no duplicates).
pub fn parse(blob: &[u8]) -> Result<(u8, Vec<i64>), String> {
    if blob.len() < 8 {
        return Err(format!("intset of {} bytes is too short", blob.len()));
    }
    let width = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]);
    if !matches!(width, 2 | 4 | 8) {
        return Err(format!("intset has invalid width {width}"));
    }
    let count = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
    let body = &blob[8..];
    if count.checked_mul(width as usize) != Some(body.len()) {
        return Err(format!(
            "intset of {count} {width}-byte members has {} bytes",
            body.len()
        ));
    }
    let mut out = Vec::with_capacity(count);
    for c in body.chunks_exact(width as usize) {
        let v = match width {
            2 => i64::from(i16::from_le_bytes([c[0], c[1]])),
            4 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                i64::from_le_bytes(w)
            }
        };
        if out.last().is_some_and(|&p| p >= v) {
            return Err("intset members are not in strictly ascending order".into());
        }
        out.push(v);
    }
    Ok((width as u8, out))
}

/// Appends an intset of `width`-byte integers (members ascending, each fitting the width).
pub fn write(out: &mut Vec<u8>, width: u8, members: impl IntoIterator<Item = i64>) {
    let start = out.len();
    out.extend_from_slice(&u32::from(width).to_le_bytes());
    // The count is patched in after the members, so it always matches them.
    out.extend_from_slice(&[0; 4]);
    let mut count = 0u32;
    for v in members {
        out.extend_from_slice(&v.to_le_bytes()[..width as usize]);
        count = count.saturating_add(1);
    }
    out[start + 4..start + 8].copy_from_slice(&count.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intsets_round_trip_at_every_width() {
        for (w, vals) in [
            (2u8, vec![-5i64, 0, 7, 32767]),
            (4, vec![-70000, 1, 2_000_000_000]),
            (8, vec![1, 1 << 40, i64::MAX]),
        ] {
            let mut b = Vec::new();
            write(&mut b, w, vals.iter().copied());
            assert_eq!(parse(&b).unwrap(), (w, vals));
        }
    }

    #[test]
    fn a_redis_intset_parses() {
        // SADD s 1 2 3 in redis-server 7.0.
        let b = b"\x02\x00\x00\x00\x03\x00\x00\x00\x01\x00\x02\x00\x03\x00";
        assert_eq!(parse(b).unwrap(), (2, vec![1, 2, 3]));
    }

    #[test]
    fn bad_intsets_are_errors() {
        assert!(parse(b"\x03\x00\x00\x00\x00\x00\x00\x00").is_err());
        assert!(parse(b"\x02\x00\x00\x00\x02\x00\x00\x00\x01\x00").is_err());
        assert!(parse(b"\x02\x00\x00\x00\x02\x00\x00\x00\x02\x00\x01\x00").is_err());
        assert!(parse(b"\x02\x00\x00\x00\x02\x00\x00\x00\x02\x00\x02\x00").is_err());
        assert!(parse(b"\x08\x00\x00\x00\xff\xff\xff\xff").is_err());
    }
}
