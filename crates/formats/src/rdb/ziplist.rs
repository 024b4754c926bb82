//! Readers for the two packed encodings Redis stopped writing in 7.0, which RDB files from
//! older versions still hold: the ziplist (small lists, hashes and sorted sets up to Redis
//! 6.2, and quicklist nodes) and the zipmap (small hashes before Redis 2.6).
//!
//! **Ziplist**: a 10-byte header (total bytes u32 LE, offset of the last entry u32 LE, entry
//! count u16 LE, 65535 meaning "count them"), the entries, and `0xFF`. Each entry is the
//! previous entry's size (1 byte, or `0xFE` then u32 LE when 254 or more), an encoding
//! and the payload:
//!
//! | encoding | entry |
//! |---|---|
//! | `00llllll` | string of up to 63 bytes |
//! | `01llllll` + 1 byte | string of up to 16383 bytes (length big end first) |
//! | `0x80` + u32 BE | longer string |
//! | `0xC0` / `0xD0` / `0xE0` | 16 / 32 / 64-bit signed integer, LE |
//! | `0xF0` | 24-bit signed integer, LE |
//! | `0xFE` | 8-bit signed integer |
//! | `0xF1`..=`0xFD` | the integer 0..=12, no payload |
//!
//! **Zipmap**: a count byte (254 or more: "count them"), then `len field len free value`
//! repeated, where a length is one byte below 254 or `0xFE` then a u32 LE, and `free`
//! unused bytes follow the value; `0xFF` ends it.
//!
//! Both readers check every length against the blob and the links between entries (a
//! ziplist's previous-entry sizes and last-entry offset), and return the elements or an
//! error: never a panic on a damaged blob.

use super::listpack::Item;

const ZIP_END: u8 = 0xFF;
const ZIP_HEADER: usize = 10;
const BIG_PREVLEN: u8 = 0xFE;

/// Reads a ziplist whole: checks its structure and returns its entries.
pub fn parse(blob: &[u8]) -> Result<Vec<Item<'_>>, String> {
    if blob.len() < ZIP_HEADER + 1 {
        return Err(format!("ziplist of {} bytes is too short", blob.len()));
    }
    let u32_at = |i: usize| u32::from_le_bytes([blob[i], blob[i + 1], blob[i + 2], blob[i + 3]]);
    let total = u32_at(0) as usize;
    if total != blob.len() {
        return Err(format!(
            "ziplist header says {total} bytes but the blob has {}",
            blob.len()
        ));
    }
    let tail = u32_at(4) as usize;
    let declared = u16::from_le_bytes([blob[8], blob[9]]);
    let end = blob.len() - 1;
    if blob[end] != ZIP_END {
        return Err("ziplist does not end with its terminator".into());
    }
    let mut items = Vec::with_capacity((declared as usize).min(4096));
    let mut p = ZIP_HEADER;
    let mut prev_size = 0usize;
    let mut last = ZIP_HEADER;
    while p < end {
        let start = p;
        // Previous entry's size.
        let (prevlen, plen) = if blob[p] < BIG_PREVLEN {
            (blob[p] as usize, 1)
        } else if blob[p] == BIG_PREVLEN {
            let b = blob
                .get(p + 1..p + 5)
                .filter(|_| p + 5 <= end)
                .ok_or_else(|| format!("ziplist entry at {p} runs past the end"))?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 5)
        } else {
            return Err(format!(
                "ziplist entry at {p} has an invalid previous length"
            ));
        };
        if prevlen != prev_size {
            return Err(format!(
                "ziplist entry at {p} says the previous entry has {prevlen} bytes, not {prev_size}"
            ));
        }
        p += plen;
        if p >= end {
            return Err(format!("ziplist entry at {start} runs past the end"));
        }
        let c = blob[p];
        let need = |from: usize, n: usize| -> Result<&[u8], String> {
            from.checked_add(n)
                .filter(|&e| e <= end)
                .map(|e| &blob[from..e])
                .ok_or_else(|| format!("ziplist entry at {start} runs past the end"))
        };
        let int_le = |bytes: &[u8]| -> i64 {
            let fill = if bytes[bytes.len() - 1] & 0x80 != 0 {
                0xFF
            } else {
                0
            };
            let mut w = [fill; 8];
            w[..bytes.len()].copy_from_slice(bytes);
            i64::from_le_bytes(w)
        };
        let (item, size) = match c >> 6 {
            0 => {
                let n = (c & 0x3F) as usize;
                (Item::Str(need(p + 1, n)?), 1 + n)
            }
            1 => {
                let lo = need(p + 1, 1)?[0];
                let n = ((c & 0x3F) as usize) << 8 | lo as usize;
                (Item::Str(need(p + 2, n)?), 2 + n)
            }
            2 => {
                if c != 0x80 {
                    return Err(format!(
                        "ziplist entry at {start} has invalid encoding {c:#04x}"
                    ));
                }
                let l = need(p + 1, 4)?;
                let n = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
                (Item::Str(need(p + 5, n)?), 5 + n)
            }
            _ => match c {
                0xC0 => (Item::Int(int_le(need(p + 1, 2)?)), 3),
                0xD0 => (Item::Int(int_le(need(p + 1, 4)?)), 5),
                0xE0 => (Item::Int(int_le(need(p + 1, 8)?)), 9),
                0xF0 => (Item::Int(int_le(need(p + 1, 3)?)), 4),
                0xFE => (Item::Int(int_le(need(p + 1, 1)?)), 2),
                0xF1..=0xFD => (Item::Int(i64::from(c & 0x0F) - 1), 1),
                _ => {
                    return Err(format!(
                        "ziplist entry at {start} has invalid encoding {c:#04x}"
                    ))
                }
            },
        };
        items.push(item);
        last = start;
        p += size;
        prev_size = p - start;
    }
    if p != end {
        return Err("ziplist entries run past the terminator".into());
    }
    if tail != last {
        return Err(format!(
            "ziplist header puts the last entry at {tail}, but it is at {last}"
        ));
    }
    if declared != u16::MAX && declared as usize != items.len() {
        return Err(format!(
            "ziplist header counts {declared} entries but holds {}",
            items.len()
        ));
    }
    Ok(items)
}

/// Reads a zipmap whole: the fields and values, alternating.
pub fn parse_zipmap(blob: &[u8]) -> Result<Vec<&[u8]>, String> {
    let Some(&declared) = blob.first() else {
        return Err("empty zipmap".into());
    };
    let mut out = Vec::new();
    let mut p = 1;
    let len_at = |p: usize| -> Result<Option<(usize, usize)>, String> {
        match blob.get(p) {
            None => Err("zipmap runs past the end".into()),
            Some(&ZIP_END) => Ok(None),
            Some(&b) if b < 254 => Ok(Some((b as usize, 1))),
            Some(_) => {
                let l = blob
                    .get(p + 1..p + 5)
                    .ok_or_else(|| "zipmap runs past the end".to_string())?;
                Ok(Some((
                    u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize,
                    5,
                )))
            }
        }
    };
    while let Some((flen, n)) = len_at(p)? {
        p += n;
        let field = p
            .checked_add(flen)
            .and_then(|e| blob.get(p..e))
            .ok_or_else(|| "zipmap field runs past the end".to_string())?;
        p += flen;
        let Some((vlen, n)) = len_at(p)? else {
            return Err("zipmap field without a value".into());
        };
        p += n;
        let free = *blob
            .get(p)
            .ok_or_else(|| "zipmap runs past the end".to_string())? as usize;
        p += 1;
        let value = p
            .checked_add(vlen)
            .and_then(|e| blob.get(p..e))
            .ok_or_else(|| "zipmap value runs past the end".to_string())?;
        p += vlen + free;
        out.push(field);
        out.push(value);
    }
    if p != blob.len() - 1 {
        return Err("zipmap has bytes after its terminator".into());
    }
    if declared < 254 && declared as usize != out.len() / 2 {
        return Err(format!(
            "zipmap header counts {declared} pairs but holds {}",
            out.len() / 2
        ));
    }
    Ok(out)
}

/// Builders of the old encodings. Kiln never writes them into files or payloads; tests use
/// them to make the RDB files older Redis versions wrote.
pub mod build {
    /// A ziplist holding `items` (each an integer when it parses as one, as Redis did).
    pub fn ziplist(items: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut last = 10usize;
        for it in items {
            let start = 10 + body.len();
            let mut e = Vec::new();
            if prev < 254 {
                e.push(prev as u8);
            } else {
                e.push(0xFE);
                e.extend_from_slice(&(prev as u32).to_le_bytes());
            }
            match kiln_store::util::parse_i64(it) {
                Some(v @ 0..=12) => e.push(0xF1 + v as u8),
                Some(v) if i8::try_from(v).is_ok() => {
                    e.push(0xFE);
                    e.push(v as i8 as u8);
                }
                Some(v) if i16::try_from(v).is_ok() => {
                    e.push(0xC0);
                    e.extend_from_slice(&(v as i16).to_le_bytes());
                }
                Some(v) if (-(1 << 23)..(1 << 23)).contains(&v) => {
                    e.push(0xF0);
                    e.extend_from_slice(&v.to_le_bytes()[..3]);
                }
                Some(v) if i32::try_from(v).is_ok() => {
                    e.push(0xD0);
                    e.extend_from_slice(&(v as i32).to_le_bytes());
                }
                Some(v) => {
                    e.push(0xE0);
                    e.extend_from_slice(&v.to_le_bytes());
                }
                None if it.len() < 64 => {
                    e.push(it.len() as u8);
                    e.extend_from_slice(it);
                }
                None if it.len() < 16384 => {
                    e.push(0x40 | (it.len() >> 8) as u8);
                    e.push(it.len() as u8);
                    e.extend_from_slice(it);
                }
                None => {
                    e.push(0x80);
                    e.extend_from_slice(&(it.len() as u32).to_be_bytes());
                    e.extend_from_slice(it);
                }
            }
            prev = e.len();
            last = start;
            body.extend_from_slice(&e);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&((10 + body.len() + 1) as u32).to_le_bytes());
        out.extend_from_slice(&(last as u32).to_le_bytes());
        out.extend_from_slice(&(items.len().min(65535) as u16).to_le_bytes());
        out.extend_from_slice(&body);
        out.push(0xFF);
        out
    }

    /// A zipmap of `pairs`, with `free` spare bytes after each value.
    pub fn zipmap(pairs: &[(&[u8], &[u8])], free: u8) -> Vec<u8> {
        let mut out = vec![pairs.len().min(254) as u8];
        let len = |out: &mut Vec<u8>, n: usize| {
            if n < 254 {
                out.push(n as u8);
            } else {
                out.push(254);
                out.extend_from_slice(&(n as u32).to_le_bytes());
            }
        };
        for (f, v) in pairs {
            len(&mut out, f.len());
            out.extend_from_slice(f);
            len(&mut out, v.len());
            out.push(free);
            out.extend_from_slice(v);
            out.extend(std::iter::repeat_n(0u8, free as usize));
        }
        out.push(0xFF);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ziplist_encoding_round_trips() {
        let long = vec![b'z'; 300];
        let longer = vec![b'q'; 20000];
        let items: Vec<&[u8]> = vec![
            b"0",
            b"12",
            b"13",
            b"-1",
            b"127",
            b"-128",
            b"1000",
            b"-30000",
            b"8000000",
            b"-8388608",
            b"2000000000",
            b"9000000000",
            b"-9223372036854775808",
            b"",
            b"hello",
            &long,
            &longer,
            b"007",
        ];
        let zl = build::ziplist(&items);
        let got = parse(&zl).unwrap();
        let got: Vec<Vec<u8>> = got.iter().map(|i| i.to_vec()).collect();
        let want: Vec<Vec<u8>> = items.iter().map(|i| i.to_vec()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_builder_writes_the_documented_layout() {
        // Header (23 bytes, last entry at 15, 3 entries), then "a", the immediate 1, "hello".
        let zl = build::ziplist(&[b"a", b"1", b"hello"]);
        assert_eq!(
            zl,
            b"\x17\x00\x00\x00\x0f\x00\x00\x00\x03\x00\x00\x01a\x03\xf2\x02\x05hello\xff"
        );
        assert_eq!(parse(&zl).unwrap().len(), 3);
    }

    #[test]
    fn zipmaps_parse_with_free_space() {
        let zm = build::zipmap(&[(b"f", b"v"), (b"field2", &[b'x'; 300])], 3);
        let got = parse_zipmap(&zm).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], b"f");
        assert_eq!(got[3].len(), 300);
    }

    #[test]
    fn damaged_blobs_are_errors_not_panics() {
        let zl = build::ziplist(&[b"a", b"1", b"hello", b"300000"]);
        let zm = build::zipmap(&[(b"a", b"b"), (b"cc", b"dd")], 1);
        for cut in 0..zl.len() {
            assert!(parse(&zl[..cut]).is_err());
        }
        for cut in 0..zm.len() {
            assert!(parse_zipmap(&zm[..cut]).is_err());
        }
        for i in 0..zl.len() {
            for x in [1u8, 0x40, 0x80, 0xFF] {
                let mut b = zl.clone();
                b[i] ^= x;
                let _ = parse(&b);
            }
        }
        for i in 0..zm.len() {
            for x in [1u8, 0x40, 0x80, 0xFF] {
                let mut b = zm.clone();
                b[i] ^= x;
                let _ = parse_zipmap(&b);
            }
        }
    }
}
