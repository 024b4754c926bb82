//! Reading an append-only file's commands one by one: the RESP framing Redis writes
//! (`*<argc>`, then `$<len>` and the bytes of each argument), with `#` annotation lines
//! skipped, and the byte offset of every command kept for error messages and truncation.

use std::io::{BufRead, Read};

/// A line of the RESP framing (`*<n>` or `$<len>`) or an annotation (`#...`) longer than
/// this is malformed (Redis reads them with a fixed buffer of the same size).
const MAX_LINE: usize = 1024;

/// Why reading the next command failed.
#[derive(Debug)]
pub enum ReadError {
    /// The data ends inside a command.
    Truncated,
    /// Not the AOF format: what was wrong and where.
    Format { offset: u64, what: String },
    /// The file could not be read.
    Io(std::io::Error),
}

/// Reads the commands of an AOF one by one, keeping track of the byte offset.
pub struct CommandReader<R> {
    r: R,
    /// Offset of the next unread byte (from the start of the file).
    pub offset: u64,
}

impl<R: BufRead> CommandReader<R> {
    /// Reads from `r`, whose first byte is at `offset` in the file.
    pub fn new(r: R, offset: u64) -> Self {
        Self { r, offset }
    }

    /// The next command, `Ok(None)` at a clean end of the data. Annotation lines (`#...`,
    /// which Redis can write before commands) are skipped.
    pub fn next_command(&mut self) -> Result<Option<Vec<Vec<u8>>>, ReadError> {
        let (start, line) = loop {
            let start = self.offset;
            match self.line()? {
                None => return Ok(None),
                Some(l) if l.first() == Some(&b'#') => continue,
                Some(l) => break (start, l),
            }
        };
        let argc = framing_number(&line, b'*').ok_or_else(|| ReadError::Format {
            offset: start,
            what: format!(
                "expected '*<count>' but found '{}'",
                String::from_utf8_lossy(&line).trim_end()
            ),
        })?;
        if argc < 1 {
            return Err(ReadError::Format {
                offset: start,
                what: "a command with no arguments".into(),
            });
        }
        // The count comes from the file: never reserve more than a little for it.
        let mut argv = Vec::with_capacity((argc as usize).min(64));
        for _ in 0..argc {
            let at = self.offset;
            let line = self.line()?.ok_or(ReadError::Truncated)?;
            let len = framing_number(&line, b'$').ok_or_else(|| ReadError::Format {
                offset: at,
                what: format!(
                    "expected '$<length>' but found '{}'",
                    String::from_utf8_lossy(&line).trim_end()
                ),
            })?;
            // The buffer grows with the bytes actually read, not with the declared length.
            let mut arg = Vec::with_capacity((len as usize).min(64 * 1024));
            let n = (&mut self.r)
                .take(len)
                .read_to_end(&mut arg)
                .map_err(ReadError::Io)?;
            self.offset += n as u64;
            if (n as u64) < len {
                return Err(ReadError::Truncated);
            }
            let mut crlf = [0u8; 2];
            let got = read_up_to(&mut self.r, &mut crlf).map_err(ReadError::Io)?;
            self.offset += got as u64;
            if got < 2 {
                return Err(ReadError::Truncated);
            }
            if &crlf != b"\r\n" {
                return Err(ReadError::Format {
                    offset: self.offset - 2,
                    what: "an argument not followed by CRLF".into(),
                });
            }
            argv.push(arg);
        }
        Ok(Some(argv))
    }

    /// One line including its `\n`; `Ok(None)` at the end of the data before any byte;
    /// `Truncated` when the data ends inside the line.
    fn line(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        let mut line = Vec::new();
        loop {
            let buf = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::Io(e)),
            };
            if buf.is_empty() {
                return if line.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Truncated)
                };
            }
            let (n, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let n = n.min(MAX_LINE + 1 - line.len());
            line.extend_from_slice(&buf[..n]);
            self.r.consume(n);
            self.offset += n as u64;
            if done && line.last() == Some(&b'\n') {
                return Ok(Some(line));
            }
            if line.len() > MAX_LINE {
                return Err(ReadError::Format {
                    offset: self.offset - line.len() as u64,
                    what: "a line too long for the AOF framing".into(),
                });
            }
        }
    }
}

/// Reads until `buf` is full or the data ends; returns the bytes read.
pub fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Parses `<prefix><decimal>\r\n`.
fn framing_number(line: &[u8], prefix: u8) -> Option<u64> {
    let body = line.strip_prefix(&[prefix])?.strip_suffix(b"\r\n")?;
    if body.is_empty() || body.len() > 19 || !body.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(body).ok()?.parse().ok()
}
