//! The argument parsers handlers share, each with Redis's error text: integers, floats and
//! the SCAN family's cursor and options. Handlers index their arguments (`args[i]`; the dispatcher has
//! checked the arity) and parse them with these.

use crate::error::{CommandError, E, INT_RANGE, INVALID_CURSOR, NOT_FLOAT, NOT_INTEGER, SYNTAX};
use crate::util::{parse_f64, parse_i64};

/// Parses a SCAN cursor as Redis does with `strtoul`: optional sign (a minus wraps around),
/// decimal digits, nothing after them (bytes after a NUL are ignored, C-string style), no
/// leading space; an empty cursor is 0.
pub fn parse_cursor(a: &[u8]) -> Result<u64, CommandError> {
    let a = a.split(|&c| c == 0).next().unwrap_or_default();
    let Some(&first) = a.first() else {
        return Ok(0);
    };
    if matches!(first, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        return Err(E(INVALID_CURSOR));
    }
    let (neg, digits) = match first {
        b'-' => (true, &a[1..]),
        b'+' => (false, &a[1..]),
        _ => (false, a),
    };
    if digits.is_empty() {
        return Err(E(INVALID_CURSOR));
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(E(INVALID_CURSOR));
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or(E(INVALID_CURSOR))?;
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// The options of SCAN, HSCAN, SSCAN and ZSCAN: `[MATCH pattern] [COUNT count]`, plus
/// `[TYPE type]` for SCAN.
pub struct ScanOptions<'a> {
    pub count: usize,
    /// `None` also for `*`, which matches everything.
    pub pattern: Option<&'a [u8]>,
    pub type_name: Option<&'a [u8]>,
}

/// Parses scan options from argument `from` on, with Redis's errors.
pub fn scan_options<'a>(
    args: &[&'a [u8]],
    from: usize,
    allow_type: bool,
) -> Result<ScanOptions<'a>, CommandError> {
    let mut o = ScanOptions {
        count: 10,
        pattern: None,
        type_name: None,
    };
    let mut i = from;
    while i < args.len() {
        let (opt, has_value) = (args[i], args.len() - i >= 2);
        if opt.eq_ignore_ascii_case(b"count") && has_value {
            let c = int(args[i + 1])?;
            if c < 1 {
                return Err(E(SYNTAX));
            }
            o.count = usize::try_from(c).unwrap_or(usize::MAX);
        } else if opt.eq_ignore_ascii_case(b"match") && has_value {
            o.pattern = Some(args[i + 1]).filter(|p| *p != b"*");
        } else if allow_type && opt.eq_ignore_ascii_case(b"type") && has_value {
            o.type_name = Some(args[i + 1]);
        } else {
            return Err(E(SYNTAX));
        }
        i += 2;
    }
    Ok(o)
}

/// Parses an integer argument with Redis's error.
#[inline]
pub fn int(a: &[u8]) -> Result<i64, CommandError> {
    parse_i64(a).ok_or(E(NOT_INTEGER))
}

/// Parses a database index as Redis's `getIntFromObjectOrReply` does (C `int` range:
/// SELECT, MOVE, COPY DB); the range of existing databases is checked separately.
pub fn parse_db(a: &[u8]) -> Result<i64, CommandError> {
    let v = int(a)?;
    if i32::try_from(v).is_err() {
        return Err(E(INT_RANGE));
    }
    Ok(v)
}

/// Parses a float argument with Redis's error.
pub fn float(a: &[u8]) -> Result<f64, CommandError> {
    parse_f64(a).ok_or(E(NOT_FLOAT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_like_strtoul() {
        assert_eq!(parse_cursor(b"0"), Ok(0));
        assert_eq!(parse_cursor(b""), Ok(0));
        assert_eq!(parse_cursor(b"007"), Ok(7));
        assert_eq!(parse_cursor(b"+5"), Ok(5));
        assert_eq!(parse_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"12\0junk"), Ok(12));
        for bad in [
            &b"18446744073709551616"[..],
            b" 5",
            b"5 ",
            b"-",
            b"+",
            b"0x10",
            b"abc",
        ] {
            assert_eq!(parse_cursor(bad), Err(E(INVALID_CURSOR)), "{bad:?}");
        }
    }
}
