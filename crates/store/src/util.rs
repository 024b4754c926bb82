//! Small helpers with Redis-exact semantics: integer parsing (`string2ll`), glob matching
//! (`stringmatchlen`), and number formatting.

/// Parses a string as Redis's `string2ll` does: optional `-`, no leading zeros, no spaces,
/// no `+`, must fit in an i64.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' {
        (true, &s[1..])
    } else {
        (false, s)
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// Parses a u64 with the same strictness as [`parse_i64`].
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s == b"0" {
        return Some(0);
    }
    if s.is_empty() || s.len() > 20 || !(b'1'..=b'9').contains(&s[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// Parses a float as Redis's `string2d` does (strtod, no leading space, nothing trailing,
/// no NaN). `inf`, `-inf`, `+inf` and `infinity` are accepted.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s[0].is_ascii_whitespace() {
        return None;
    }
    let t = std::str::from_utf8(s).ok()?;
    let lower = t.to_ascii_lowercase();
    let v = match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => {
            if lower.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }
        }
        // strtod accepts hex floats and other forms Rust's parser does not; Redis clients
        // do not send those in practice.
        _ => {
            if lower.contains("nan") || lower.contains("inf") {
                return None;
            }
            t.parse::<f64>().ok()?
        }
    };
    if v.is_nan() {
        None
    } else {
        Some(v)
    }
}

/// Formats an i64 into a stack buffer.
#[inline]
pub fn fmt_i64(n: i64) -> itoa::Buffer {
    let mut b = itoa::Buffer::new();
    b.format(n);
    b
}

/// Glob-style matching with Redis's `stringmatchlen` rules: `*`, `?`, `[abc]`, `[^a-z]`,
/// `\x` escapes. `nocase` folds ASCII case.
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut give_up = false;
    glob_inner(pattern, string, nocase, 0, &mut give_up)
}

/// `give_up` is Redis's `skipLongerMatches`: once a `*` has tried every suffix of the string
/// without success, no earlier `*` can do better, so the whole match fails at once instead
/// of backtracking exponentially on patterns like `*a*a*a*a*b`.
fn glob_inner(mut p: &[u8], mut s: &[u8], nocase: bool, depth: u32, give_up: &mut bool) -> bool {
    // Like Redis, bound the recursion that `*` causes on hostile patterns.
    if depth > 1000 {
        return false;
    }
    // Redis lets trailing `*`s match nothing only once some character was consumed: an empty
    // string matches only the empty pattern (KEYS * special-cases itself before matching).
    let started_empty = s.is_empty();
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                for i in 0..s.len() {
                    if glob_inner(&p[1..], &s[i..], nocase, depth + 1, give_up) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                }
                *give_up = true;
                return false;
            }
            b'?' => {
                s = &s[1..];
                p = &p[1..];
                continue;
            }
            b'[' => {
                p = &p[1..];
                let not = p.first() == Some(&b'^');
                if not {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    if p.is_empty() {
                        break;
                    }
                    if p[0] == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                        if eq(p[0], s[0]) {
                            matched = true;
                        }
                    } else if p[0] == b']' {
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        let (mut lo, mut hi) = (p[0], p[2]);
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        let c = s[0];
                        let in_range = if nocase {
                            let c = c.to_ascii_lowercase();
                            c >= lo.to_ascii_lowercase() && c <= hi.to_ascii_lowercase()
                        } else {
                            c >= lo && c <= hi
                        };
                        if in_range {
                            matched = true;
                        }
                        p = &p[2..];
                    } else if eq(p[0], s[0]) {
                        matched = true;
                    }
                    p = &p[1..];
                }
                // `p` is at `]` or at the end (Redis treats an unclosed class as closed).
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s = &s[1..];
                if !p.is_empty() {
                    p = &p[1..];
                }
                continue;
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if !eq(p[0], s[0]) {
                    return false;
                }
            }
            c => {
                if !eq(c, s[0]) {
                    return false;
                }
            }
        }
        s = &s[1..];
        p = &p[1..];
    }
    if s.is_empty() && !started_empty {
        while !p.is_empty() && p[0] == b'*' {
            p = &p[1..];
        }
    }
    p.is_empty() && s.is_empty()
}

/// Formats a double like C's `printf("%.17g")`, which Redis 7.0 uses for scores in replies
/// and digests: 17 significant digits, trailing zeros removed, exponent form below 1e-4 and
/// from 1e17, `inf` / `-inf`, and `-0` for negative zero.
pub fn fmt_g17(d: f64) -> String {
    fmt_g(d, 17)
}

/// Formats a double like C's `printf("%.<precision>g")` (`precision` 1 to 17): see
/// [`fmt_g17`]. Lua 5.1 turns numbers into strings with `%.14g`.
pub fn fmt_g(d: f64, precision: usize) -> String {
    let precision = precision.clamp(1, 17);
    if d.is_nan() {
        // glibc prints the sign of a NaN (0/0 on x86 is negative).
        return if d.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust rounds `{:e}` exactly (ties to even on the binary value), as glibc's printf does.
    let s = format!("{d:.*e}", precision - 1);
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if !(-4..precision as i32).contains(&exp) {
        let trimmed = digits.trim_end_matches('0');
        out.push_str(&trimmed[..1]);
        if trimmed.len() > 1 {
            out.push('.');
            out.push_str(&trimmed[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits.trim_end_matches('0'));
    } else {
        let int_len = exp as usize + 1;
        out.push_str(&digits[..int_len]);
        let frac = digits[int_len..].trim_end_matches('0');
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
    }
    out
}

/// Uppercases ASCII into a new String (for error messages that echo command names).
pub fn upper(s: &[u8]) -> String {
    String::from_utf8_lossy(s).to_ascii_uppercase()
}

/// Buckets of a hashbrown table (DEBUG HTSTATS): what its capacity implies, as hashbrown
/// keeps 1/8 of a table of 8 buckets or more free, and one bucket of a smaller one. 0 for a
/// table that never allocated.
pub fn table_buckets<T>(t: &hashbrown::HashTable<T>) -> usize {
    match t.capacity() {
        0 => 0,
        c if c < 7 => c + 1,
        c => c / 7 * 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_i64_is_strict_like_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b"9223372036854775808"[..],
            b"01",
            b"-0",
            b"+1",
            b" 1",
            b"1 ",
            b"",
            b"-",
            b"1.0",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn fmt_g17_matches_printf() {
        for (v, s) in [
            (1.0, "1"),
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (-2.25, "-2.25"),
            (1e17, "1e+17"),
            (1.5e17, "1.5e+17"),
            (12345678901234567.0, "12345678901234568"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (-0.0, "-0"),
            (f64::INFINITY, "inf"),
            (3.0e-300, "3.0000000000000002e-300"),
            (123.456, "123.456"),
            (1e16, "10000000000000000"),
            (9.999999999999998e16, "99999999999999984"),
            (5e-324, "4.9406564584124654e-324"),
        ] {
            assert_eq!(fmt_g17(v), s, "{v}");
        }
    }

    #[test]
    fn parse_f64_like_strtod() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"1x"), None);
    }

    #[test]
    fn glob_matches_like_redis() {
        assert!(glob_match(b"*", b"anything", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h*llo", b"heeeello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        assert!(glob_match(b"h\\*llo", b"h*llo", false));
        assert!(!glob_match(b"h\\*llo", b"hello", false));
        assert!(glob_match(b"HEL*", b"hello", true));
        assert!(!glob_match(b"a", b"", false));
        assert!(glob_match(b"a*", b"a", false));
        assert!(glob_match(b"", b"", false));
        assert!(!glob_match(b"*", b"", false));
        assert!(!glob_match(b"**", b"", false));
        // Would take ages with plain backtracking.
        let s = [b'a'; 60];
        assert!(!glob_match(b"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", &s, false));
    }

    #[test]
    fn table_buckets_are_the_powers_of_two_hashbrown_allocates() {
        let mut t = hashbrown::HashTable::new();
        assert_eq!(table_buckets(&t), 0);
        let hasher = |v: &u64| *v;
        for n in 1..=2000u64 {
            t.insert_unique(n, n, hasher);
            let b = table_buckets(&t);
            assert!(b.is_power_of_two() && b as u64 > n, "{n} in {b}");
            // At most 7/8 full, and no more than twice as large as needed.
            assert!(n as usize <= b - b / 8 || b <= 8, "{n} in {b}");
            assert!(b <= 8 || (n as usize) * 8 / 7 > b / 2 - 1, "{n} in {b}");
        }
    }
}
