//! The bytes a replica reads from its primary, parsed without a socket: the reply lines of
//! the handshake, `+FULLRESYNC` / `+CONTINUE`, the `$<length>` / `$EOF:<mark>` line before
//! the RDB, the end mark of a diskless RDB, and the framing of the command stream.
//!
//! [`super::replica`] does the I/O and calls these; they are pure so that they can be
//! tested and fuzzed byte by byte (`fuzz/fuzz_targets/repl_stream.rs`).

/// Longest reply line the primary may send before its `\n`.
pub const MAX_LINE: usize = 64 * 1024;

/// Length of the random mark of `$EOF:<mark>`.
pub const EOF_MARK_LEN: usize = 40;

/// One step of reading a reply line out of the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineStep {
    /// A line (without its `\r\n`, invalid UTF-8 replaced) and the bytes it used, empty
    /// lines before it included.
    Line(String, usize),
    /// No complete line yet; this many bytes of empty lines (the newlines a primary sends
    /// to keep the link alive while it prepares the snapshot) can be dropped.
    More(usize),
    /// More than [`MAX_LINE`] bytes without a newline.
    TooLong,
}

/// Reads the next non-empty line from the start of `pending`.
pub fn next_line(pending: &[u8]) -> LineStep {
    let mut used = 0;
    while let Some(i) = memchr::memchr(b'\n', &pending[used..]) {
        let raw = &pending[used..used + i];
        used += i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if !raw.is_empty() {
            return LineStep::Line(String::from_utf8_lossy(raw).into_owned(), used);
        }
    }
    if pending.len() - used > MAX_LINE {
        LineStep::TooLong
    } else {
        LineStep::More(used)
    }
}

/// The primary's answer to `PSYNC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsyncReply<'a> {
    /// `+FULLRESYNC <replid> <offset>`: an RDB follows.
    FullResync { replid: &'a str, offset: u64 },
    /// `+CONTINUE [<replid>]`: the stream goes on from our offset (an empty id: unchanged).
    Continue { replid: &'a str },
}

/// Parses the reply line to `PSYNC`; the error is the message the link logs.
pub fn parse_psync_reply(line: &str) -> Result<PsyncReply<'_>, String> {
    if let Some(rest) = line.strip_prefix("+FULLRESYNC") {
        let mut it = rest.split_whitespace();
        match (it.next(), it.next().and_then(|o| o.parse::<u64>().ok())) {
            (Some(replid), Some(offset)) => Ok(PsyncReply::FullResync { replid, offset }),
            _ => Err(format!("Bad reply to PSYNC from master: '{line}'")),
        }
    } else if let Some(rest) = line.strip_prefix("+CONTINUE") {
        Ok(PsyncReply::Continue {
            replid: rest.trim(),
        })
    } else {
        Err(format!("Unexpected reply to PSYNC from master: {line}"))
    }
}

/// How the RDB of a full sync is delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RdbPreamble<'a> {
    /// `$<length>`: exactly that many bytes follow.
    Length(u64),
    /// `$EOF:<mark>`: the data, then the 40-byte mark.
    EofMark(&'a [u8]),
}

/// Parses the line before the RDB; the error is the message the link logs.
pub fn parse_rdb_preamble(line: &str) -> Result<RdbPreamble<'_>, String> {
    let Some(spec) = line.strip_prefix('$') else {
        return Err(format!(
            "Bad protocol from MASTER, the first byte is not '$' (we received '{line}'), are you sure the host and port are right?"
        ));
    };
    if let Some(mark) = spec.strip_prefix("EOF:") {
        if mark.len() != EOF_MARK_LEN {
            return Err("Bad EOF marker from MASTER".into());
        }
        return Ok(RdbPreamble::EofMark(mark.as_bytes()));
    }
    spec.parse()
        .map(RdbPreamble::Length)
        .map_err(|_| format!("Bad bulk length from MASTER: '{spec}'"))
}

/// Where `mark` starts in `data`, of which the first `searched` bytes were searched
/// before (without a match): only the new bytes are searched, plus the `mark.len() - 1`
/// old ones a mark split across two reads can start in.
pub fn find_eof_mark(data: &[u8], searched: usize, mark: &[u8]) -> Option<usize> {
    let from = searched
        .saturating_sub(mark.len().saturating_sub(1))
        .min(data.len());
    memchr::memmem::find(&data[from..], mark).map(|i| from + i)
}

/// The limits the command stream is parsed with: the primary is trusted with any bulk
/// size, as Redis trusts its master.
pub fn stream_limits() -> kiln_resp::Limits {
    kiln_resp::Limits {
        max_bulk_len: usize::MAX,
        ..kiln_resp::Limits::default()
    }
}

/// Whether a command of the stream is `REPLCONF GETACK` (answered, not executed).
pub fn is_getack(args: &[&[u8]]) -> bool {
    args.len() >= 2
        && args[0].eq_ignore_ascii_case(b"REPLCONF")
        && args[1].eq_ignore_ascii_case(b"GETACK")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_skip_keepalive_newlines() {
        assert_eq!(
            next_line(b"\n\r\n+OK\r\nx"),
            LineStep::Line("+OK".into(), 8)
        );
        assert_eq!(next_line(b"\n\n+O"), LineStep::More(2));
        assert_eq!(next_line(&vec![b'a'; MAX_LINE + 1]), LineStep::TooLong);
    }

    #[test]
    fn psync_replies() {
        assert_eq!(
            parse_psync_reply("+FULLRESYNC abc 12"),
            Ok(PsyncReply::FullResync {
                replid: "abc",
                offset: 12
            })
        );
        assert_eq!(
            parse_psync_reply("+CONTINUE  id "),
            Ok(PsyncReply::Continue { replid: "id" })
        );
        assert!(parse_psync_reply("+FULLRESYNC abc -1").is_err());
        assert!(parse_psync_reply("-ERR no").is_err());
    }

    #[test]
    fn rdb_preambles() {
        assert_eq!(parse_rdb_preamble("$12"), Ok(RdbPreamble::Length(12)));
        let mark = "a".repeat(40);
        assert_eq!(
            parse_rdb_preamble(&format!("$EOF:{mark}")),
            Ok(RdbPreamble::EofMark(mark.as_bytes()))
        );
        assert!(parse_rdb_preamble("$EOF:short").is_err());
        assert!(parse_rdb_preamble("$-1").is_err());
        assert!(parse_rdb_preamble("+OK").is_err());
    }

    #[test]
    fn eof_mark_split_across_reads() {
        let data = b"xxxxMARKyy";
        // The first read ended inside the mark: it is still found.
        assert_eq!(find_eof_mark(data, 6, b"MARK"), Some(4));
        assert_eq!(find_eof_mark(data, 0, b"MARK"), Some(4));
        assert_eq!(find_eof_mark(&data[..6], 0, b"MARK"), None);
        assert_eq!(find_eof_mark(b"", 0, b"MARK"), None);
    }
}
