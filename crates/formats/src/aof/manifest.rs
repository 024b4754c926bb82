//! The AOF manifest: which files make up the append-only file, in Redis 7's multi-part
//! layout, so a Redis 7 directory loads in Kiln and the other way round.
//!
//! The manifest lives in `dir`/`appenddirname`/`<appendfilename>.manifest`, one line per
//! file: `file <name> seq <n> type <b|h|i>`. `b` is the base (a snapshot of the dataset at
//! the last rewrite, in RDB or AOF format: `<appendfilename>.<seq>.base.rdb` / `.base.aof`),
//! `i` an incremental file of commands that followed it (`<appendfilename>.<seq>.incr.aof`,
//! loaded in sequence order) and `h` a file that a rewrite made obsolete and that is about
//! to be deleted. Names with spaces or unusual bytes are written quoted, as Redis does.
//!
//! Reading is as strict as Redis's: a malformed manifest stops the server with the line
//! and the reason rather than loading a partial dataset.

use std::fmt;

/// What an entry of the manifest is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// The snapshot the incremental files apply to.
    Base,
    /// Obsolete since the last rewrite; deleted once the new manifest is durable.
    History,
    /// Commands since the base, in sequence order.
    Incr,
}

impl FileType {
    fn letter(self) -> char {
        match self {
            FileType::Base => 'b',
            FileType::History => 'h',
            FileType::Incr => 'i',
        }
    }
}

/// One file of the append-only file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    pub seq: i64,
    pub kind: FileType,
}

/// The parsed manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<FileInfo>,
    pub incr: Vec<FileInfo>,
    pub history: Vec<FileInfo>,
    /// Highest base / incr sequence numbers used so far: new files take the next ones.
    pub base_seq: i64,
    pub incr_seq: i64,
}

/// Why a manifest could not be read: the line (1-based) and its text when one is to
/// blame, and the reason in Redis's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub line: Option<(usize, String)>,
    pub reason: &'static str,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.line {
            Some((n, text)) => write!(
                f,
                "*** FATAL AOF MANIFEST FILE ERROR *** Reading the manifest file, at line {n}: >>> '{text}': {}",
                self.reason
            ),
            None => write!(f, "*** FATAL AOF MANIFEST FILE ERROR *** {}", self.reason),
        }
    }
}

/// Redis reads manifest lines with a fixed buffer: longer lines are an error.
const MAX_LINE: usize = 1024;

impl Manifest {
    /// Parses manifest text (see the module docs for the format).
    pub fn parse(text: &[u8]) -> Result<Self, ManifestError> {
        let mut m = Manifest::default();
        let mut max_incr = 0i64;
        let mut rest = text;
        let mut lineno = 0usize;
        if text.is_empty() {
            return Err(ManifestError {
                line: None,
                reason: "Found an empty AOF manifest",
            });
        }
        while !rest.is_empty() {
            lineno += 1;
            let nl = rest.iter().position(|&b| b == b'\n');
            let (raw, next) = match nl {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            if raw.first() == Some(&b'#') {
                continue;
            }
            let text = String::from_utf8_lossy(raw).trim().to_string();
            let err = |reason| ManifestError {
                line: Some((lineno, text.clone())),
                reason,
            };
            // Every line ends with a newline within the line length limit.
            if nl.is_none() || raw.len() + 1 > MAX_LINE {
                return Err(err("The AOF manifest file contains too long line"));
            }
            if text.is_empty() {
                return Err(err("Invalid AOF manifest file format"));
            }
            let words = split_words(raw.trim_ascii())
                .ok_or_else(|| err("Invalid AOF manifest file format"))?;
            // At least the three known pairs; more pairs are accepted for forward
            // compatibility, as Redis accepts them.
            if words.len() < 6 || words.len() % 2 != 0 {
                return Err(err("Invalid AOF manifest file format"));
            }
            let (mut name, mut seq, mut kind) = (None, 0i64, None);
            for pair in words.chunks_exact(2) {
                let key = &pair[0];
                if key.eq_ignore_ascii_case(b"file") {
                    if pair[1].contains(&b'/') {
                        return Err(err("File can't be a path, just a filename"));
                    }
                    // Kiln's names are UTF-8 (they come from `appendfilename`); another
                    // name must not be loaded as a lossy look-alike of itself.
                    let n = String::from_utf8(pair[1].clone())
                        .map_err(|_| err("The AOF file name is not valid UTF-8"))?;
                    name = Some(n);
                } else if key.eq_ignore_ascii_case(b"seq") {
                    seq = leading_int(&pair[1]);
                } else if key.eq_ignore_ascii_case(b"type") {
                    kind = pair[1].first().copied();
                }
            }
            let (Some(name), Some(kind)) = (name, kind) else {
                return Err(err("Invalid AOF manifest file format"));
            };
            if seq == 0 || name.is_empty() {
                return Err(err("Invalid AOF manifest file format"));
            }
            match kind {
                b'b' => {
                    if m.base.is_some() {
                        return Err(err("Found duplicate base file information"));
                    }
                    m.base = Some(FileInfo {
                        name,
                        seq,
                        kind: FileType::Base,
                    });
                    m.base_seq = seq;
                }
                b'h' => m.history.push(FileInfo {
                    name,
                    seq,
                    kind: FileType::History,
                }),
                b'i' => {
                    if seq <= max_incr {
                        return Err(err("Found a non-monotonic sequence number"));
                    }
                    max_incr = seq;
                    m.incr_seq = seq;
                    m.incr.push(FileInfo {
                        name,
                        seq,
                        kind: FileType::Incr,
                    });
                }
                _ => return Err(err("Unknown AOF file type")),
            }
        }
        Ok(m)
    }

    /// The manifest as text: the base first, then history files, then incremental files.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let all = self
            .base
            .iter()
            .chain(self.history.iter())
            .chain(self.incr.iter());
        for f in all {
            s.push_str("file ");
            s.push_str(&repr(&f.name));
            s.push_str(" seq ");
            s.push_str(itoa::Buffer::new().format(f.seq));
            s.push_str(" type ");
            s.push(f.kind.letter());
            s.push('\n');
        }
        s
    }

    /// Whether there is anything to load (a base or an incremental file).
    pub fn has_data_files(&self) -> bool {
        self.base.is_some() || !self.incr.is_empty()
    }

    /// The files to load, in order: the base, then the incremental files.
    pub fn data_files(&self) -> impl Iterator<Item = &FileInfo> {
        self.base.iter().chain(self.incr.iter())
    }

    /// Makes a new base file the base (named for `appendfilename` and the format), moving
    /// the previous base to history. Returns the new name.
    pub fn new_base(&mut self, appendfilename: &str, rdb_format: bool) -> String {
        if let Some(mut old) = self.base.take() {
            old.kind = FileType::History;
            self.history.insert(0, old);
        }
        self.base_seq += 1;
        let name = format!(
            "{appendfilename}.{}.base.{}",
            self.base_seq,
            if rdb_format { "rdb" } else { "aof" }
        );
        self.base = Some(FileInfo {
            name: name.clone(),
            seq: self.base_seq,
            kind: FileType::Base,
        });
        name
    }

    /// Appends a new incremental file; returns its name.
    pub fn new_incr(&mut self, appendfilename: &str) -> String {
        self.incr_seq += 1;
        let name = format!("{appendfilename}.{}.incr.aof", self.incr_seq);
        self.incr.push(FileInfo {
            name: name.clone(),
            seq: self.incr_seq,
            kind: FileType::Incr,
        });
        name
    }

    /// Moves incremental files to history, keeping the last `keep` (the file being
    /// written, while the AOF is on).
    pub fn retire_incr(&mut self, keep: usize) {
        let n = self.incr.len().saturating_sub(keep);
        for mut f in self.incr.drain(..n).rev() {
            f.kind = FileType::History;
            self.history.insert(0, f);
        }
    }
}

/// The name of the manifest of `appendfilename`.
pub fn manifest_name(appendfilename: &str) -> String {
    format!("{appendfilename}.manifest")
}

/// The temporary name a new manifest is written under before it is renamed into place.
pub fn temp_manifest_name(appendfilename: &str) -> String {
    format!("temp-{appendfilename}.manifest")
}

/// The temporary incremental file written while the AOF is being turned on (it joins the
/// manifest, renamed, when the first base is complete).
pub fn temp_incr_name(appendfilename: &str) -> String {
    format!("temp-{appendfilename}.incr")
}

/// Splits a manifest line into words, with Redis's quoting rules (`"..."` with escapes,
/// `'...'`). None for unbalanced quotes.
fn split_words(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut tmp = line.to_vec();
    tmp.push(b'\n');
    let mut ranges = Vec::new();
    match kiln_resp::parse_request(&tmp, &mut ranges, &kiln_resp::Limits::default()) {
        Ok(kiln_resp::Parsed::Complete { .. }) => {}
        _ => return None,
    }
    Some(
        ranges
            .into_iter()
            .map(|r| {
                let raw = &tmp[r];
                kiln_resp::request::unquote_inline_arg(raw).unwrap_or_else(|| raw.to_vec())
            })
            .collect(),
    )
}

/// `atoll`: the leading decimal integer of `s` (0 when there is none).
fn leading_int(s: &[u8]) -> i64 {
    let s = s.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for &c in digits.iter().take_while(|c| c.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(c - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

/// A file name as the manifest writes it: as is when it is plain, otherwise quoted with
/// escapes (Redis's `sdscatrepr`), so any name survives the round trip.
fn repr(name: &str) -> String {
    let plain = name
        .bytes()
        .all(|c| c.is_ascii_graphic() && !matches!(c, b'"' | b'\'' | b'\\'));
    if plain && !name.is_empty() {
        return name.to_string();
    }
    sdscatrepr(name.as_bytes())
}

/// Bytes quoted with escapes as Redis's `sdscatrepr` writes them (its log lines use it for
/// client data too).
pub fn sdscatrepr(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in bytes {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_manifest_parses_and_prints_back_identically() {
        let text = "file appendonly.aof.2.base.rdb seq 2 type b\n\
                    file appendonly.aof.1.incr.aof seq 1 type h\n\
                    file appendonly.aof.2.incr.aof seq 2 type i\n\
                    file appendonly.aof.3.incr.aof seq 3 type i\n";
        let m = Manifest::parse(text.as_bytes()).unwrap();
        assert_eq!(m.base.as_ref().unwrap().name, "appendonly.aof.2.base.rdb");
        assert_eq!(m.incr.len(), 2);
        assert_eq!(m.history.len(), 1);
        assert_eq!((m.base_seq, m.incr_seq), (2, 3));
        assert_eq!(m.to_text(), text);
    }

    #[test]
    fn keys_may_come_in_any_order_and_extra_pairs_are_ignored() {
        let text = "# comment\nTYPE i SEQ 4 FILE x.4.incr.aof future thing\n";
        let m = Manifest::parse(text.as_bytes()).unwrap();
        assert_eq!(m.incr[0].name, "x.4.incr.aof");
        assert_eq!(m.incr[0].seq, 4);
    }

    #[test]
    fn malformed_manifests_are_refused_with_redis_reasons() {
        let cases: &[(&str, &str)] = &[
            ("", "Found an empty AOF manifest"),
            ("\n", "Invalid AOF manifest file format"),
            ("file a seq 1\n", "Invalid AOF manifest file format"),
            ("file a seq 0 type b\n", "Invalid AOF manifest file format"),
            (
                "file a/b seq 1 type b\n",
                "File can't be a path, just a filename",
            ),
            (
                "file a seq 1 type b\nfile b seq 2 type b\n",
                "Found duplicate base file information",
            ),
            (
                "file a seq 2 type i\nfile b seq 2 type i\n",
                "Found a non-monotonic sequence number",
            ),
            ("file a seq 1 type x\n", "Unknown AOF file type"),
            (
                "file a seq 1 type b",
                "The AOF manifest file contains too long line",
            ),
            (
                "file \"a seq 1 type b\n",
                "Invalid AOF manifest file format",
            ),
            // Found by fuzzing: was read as "a\u{fffd}", another file's name.
            (
                "file \"a\\xff\" seq 1 type b\n",
                "The AOF file name is not valid UTF-8",
            ),
        ];
        for (text, reason) in cases {
            let e = Manifest::parse(text.as_bytes()).unwrap_err();
            assert_eq!(e.reason, *reason, "{text:?}");
        }
        assert_eq!(
            Manifest::parse(b"file a\xff seq 1 type b\n")
                .unwrap_err()
                .reason,
            "The AOF file name is not valid UTF-8"
        );
        let long = format!("file {} seq 1 type b\n", "x".repeat(2000));
        assert_eq!(
            Manifest::parse(long.as_bytes()).unwrap_err().reason,
            "The AOF manifest file contains too long line"
        );
    }

    #[test]
    fn unusual_names_are_quoted_and_survive_the_round_trip() {
        let mut m = Manifest::default();
        m.new_base("my aof \"x\"\u{1}", true);
        let text = m.to_text();
        assert!(text.starts_with("file \"my aof \\\"x\\\"\\x01.1.base.rdb\" seq 1 type b\n"));
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap(), m);
    }

    #[test]
    fn rewrites_number_new_files_and_retire_old_ones_to_history() {
        let mut m = Manifest::default();
        assert_eq!(
            m.new_base("appendonly.aof", true),
            "appendonly.aof.1.base.rdb"
        );
        assert_eq!(m.new_incr("appendonly.aof"), "appendonly.aof.1.incr.aof");
        assert_eq!(m.new_incr("appendonly.aof"), "appendonly.aof.2.incr.aof");
        assert_eq!(
            m.new_base("appendonly.aof", false),
            "appendonly.aof.2.base.aof"
        );
        m.retire_incr(1);
        assert_eq!(
            m.to_text(),
            "file appendonly.aof.2.base.aof seq 2 type b\n\
             file appendonly.aof.1.incr.aof seq 1 type h\n\
             file appendonly.aof.1.base.rdb seq 1 type h\n\
             file appendonly.aof.2.incr.aof seq 2 type i\n"
        );
        let names: Vec<_> = m.data_files().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["appendonly.aof.2.base.aof", "appendonly.aof.2.incr.aof"]
        );
    }
}
