//! Parsing a command's arguments: typed reads with Redis's error texts, and option words.

use crate::error::{CommandError, E, NOT_FLOAT, NOT_INTEGER, SYNTAX};
use crate::util::{parse_f64, parse_i64};

/// A cursor over a command's arguments (after the name).
pub struct Args<'a, 'b> {
    args: &'b [&'a [u8]],
    pos: usize,
}

impl<'a, 'b> Args<'a, 'b> {
    /// Starts after `skip` arguments (1 skips the command name).
    pub fn new(args: &'b [&'a [u8]], skip: usize) -> Self {
        Self { args, pos: skip }
    }

    pub fn remaining(&self) -> usize {
        self.args.len().saturating_sub(self.pos)
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next argument, or a syntax error.
    #[allow(clippy::should_implement_trait)] // fallible, so not an Iterator
    pub fn next(&mut self) -> Result<&'a [u8], CommandError> {
        let a = self.args.get(self.pos).ok_or(E(SYNTAX))?;
        self.pos += 1;
        Ok(a)
    }

    /// Peeks at the next argument.
    pub fn peek(&self) -> Option<&'a [u8]> {
        self.args.get(self.pos).copied()
    }

    /// The next argument as an i64 (`ERR value is not an integer or out of range`).
    pub fn next_i64(&mut self) -> Result<i64, CommandError> {
        int(self.next()?)
    }

    /// The next argument as a float (`ERR value is not a valid float`).
    pub fn next_f64(&mut self) -> Result<f64, CommandError> {
        float(self.next()?)
    }

    /// Consumes the next argument if it equals `word` (case-insensitive).
    pub fn eat(&mut self, word: &str) -> bool {
        if self
            .peek()
            .is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()))
        {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The next argument, uppercased, for matching option words.
    pub fn next_upper(&mut self) -> Result<Vec<u8>, CommandError> {
        Ok(self.next()?.to_ascii_uppercase())
    }

    /// Errors unless every argument was consumed.
    pub fn finish(&self) -> Result<(), CommandError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(E(SYNTAX))
        }
    }
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

/// Parses a float argument with Redis's error.
pub fn float(a: &[u8]) -> Result<f64, CommandError> {
    parse_f64(a).ok_or(E(NOT_FLOAT))
}
