//! Splitting a typed line into arguments, with redis-cli's quoting rules.
//!
//! Words are separated by blanks. A word may be wrapped in double quotes, where `\n`, `\r`,
//! `\t`, `\b`, `\a`, `\xHH` and `\<any>` escapes are understood, or in single quotes, where
//! only `\'` is. A closing quote must be followed by a blank or the end of the line, and an
//! unterminated quote makes the whole line invalid (`None`), exactly as redis-cli reports
//! "Invalid argument(s)".

/// Blanks that separate words (C `isspace`).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits `line` into arguments; `None` when quotes are unbalanced or a closing quote is
/// glued to the next character.
///
/// A NUL byte ends the line, as it does for the C string redis-cli works on.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let end = line.iter().position(|&c| c == 0).unwrap_or(line.len());
    let line = &line[..end];
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            let c = at(p);
            if in_dq {
                if c == b'\\' && at(p + 1) == b'x' {
                    if let (Some(h), Some(l)) = (hex_val(at(p + 2)), hex_val(at(p + 3))) {
                        cur.push(h * 16 + l);
                        p += 4;
                        continue;
                    }
                }
                if c == b'\\' && at(p + 1) != 0 {
                    cur.push(match at(p + 1) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    p += 2;
                } else if c == b'"' {
                    // The closing quote must end the word.
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                    p += 1;
                }
            } else if in_sq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    cur.push(b'\'');
                    p += 2;
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                    p += 1;
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    _ => cur.push(c),
                }
                p += 1;
            }
        }
        args.push(cur);
    }
}

/// Parses one quoted C-style string (`--quoted-input`, `--quoted-pattern`): the text must
/// split into exactly one argument.
pub fn unquote(s: &[u8]) -> Option<Vec<u8>> {
    let mut v = split_args(s)?;
    if v.len() == 1 {
        v.pop()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(line: &str) -> Option<Vec<String>> {
        split_args(line.as_bytes()).map(|v| {
            v.into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect()
        })
    }

    #[test]
    fn plain_words_are_split_on_blanks() {
        assert_eq!(s("  set  a\tb  ").unwrap(), ["set", "a", "b"]);
        assert_eq!(s("").unwrap(), Vec::<String>::new());
        assert_eq!(s("   ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn double_quotes_understand_escapes() {
        assert_eq!(
            s(r#"set "a b" "x\n\x41\"\\z""#).unwrap(),
            ["set", "a b", "x\nA\"\\z"]
        );
        // An incomplete hex escape keeps the x.
        assert_eq!(s(r#""\xZ1""#).unwrap(), ["xZ1"]);
        assert_eq!(split_args(br#""\xff""#).unwrap(), vec![vec![0xff]]);
    }

    #[test]
    fn single_quotes_only_escape_the_quote() {
        assert_eq!(s(r#"'a\'b\n'"#).unwrap(), ["a'b\\n"]);
    }

    #[test]
    fn quotes_must_be_closed_and_end_the_word() {
        assert!(s(r#"get "abc"#).is_none());
        assert!(s("get 'abc").is_none());
        assert!(s(r#"get "a"b"#).is_none());
        // Quotes may start in the middle of a word.
        assert_eq!(s(r#"a"b c""#).unwrap(), ["ab c"]);
        assert_eq!(s(r#""""#).unwrap(), [""]);
    }

    #[test]
    fn unquote_wants_exactly_one_argument() {
        assert_eq!(unquote(br#""a\x00b""#).unwrap(), b"a\0b");
        assert!(unquote(b"a b").is_none());
        assert!(unquote(b"").is_none());
    }
}
