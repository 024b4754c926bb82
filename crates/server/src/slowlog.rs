//! The slow log (SLOWLOG): commands that ran for at least `slowlog-log-slower-than`
//! microseconds, newest first, at most `slowlog-max-len` of them.
//!
//! One log for every worker thread. A command pays one atomic load and a compare to learn
//! that it is not slow ([`SlowLog::wants`]); only a slow one builds its entry and takes the
//! log's lock. Entries carry what Redis's carry (id, unix time, duration, the arguments
//! cut as Redis cuts them, the client's address and name), with secrets already redacted
//! by the caller ([`redacted`]). Knows nothing of the server.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

/// At most this many arguments are kept; the last kept one says how many more there were.
pub const MAX_ARGC: usize = 32;
/// Longer arguments keep this many bytes and say how many more there were.
pub const MAX_STRING: usize = 128;
/// What a secret argument is replaced with (Redis's `shared.redacted`).
pub const REDACTED: &[u8] = b"(redacted)";

/// One logged command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    /// Unix seconds when the command ended.
    pub time: u64,
    /// How long it ran, in microseconds.
    pub usec: u64,
    pub args: Vec<Vec<u8>>,
    /// `ip:port` of the client (`?:0` for a script's commands).
    pub addr: String,
    pub name: Vec<u8>,
}

/// The shared log.
pub struct SlowLog {
    /// `slowlog-log-slower-than` (µs); negative: off.
    threshold: AtomicI64,
    max_len: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// Newest first.
    entries: VecDeque<Entry>,
}

impl Default for SlowLog {
    fn default() -> Self {
        Self {
            threshold: AtomicI64::new(10_000),
            max_len: AtomicU64::new(128),
            inner: Mutex::default(),
        }
    }
}

impl SlowLog {
    /// Takes `slowlog-log-slower-than` and `slowlog-max-len` (after every CONFIG SET).
    pub fn configure(&self, threshold: i64, max_len: u64) {
        self.threshold.store(threshold, Relaxed);
        self.max_len.store(max_len, Relaxed);
    }

    /// `slowlog-log-slower-than` in µs; `None` while the log is off.
    pub fn threshold(&self) -> Option<u64> {
        u64::try_from(self.threshold.load(Relaxed)).ok()
    }

    /// Whether a command that ran `usec` microseconds is logged.
    #[inline]
    pub fn wants(&self, usec: u64) -> bool {
        let t = self.threshold.load(Relaxed);
        t >= 0 && usec >= t as u64
    }

    /// Logs a command (the caller checked [`SlowLog::wants`]). `redact` lists argument
    /// positions replaced by `(redacted)`.
    pub fn push(
        &self,
        argv: &[&[u8]],
        redact: &[usize],
        usec: u64,
        time: u64,
        addr: String,
        name: Vec<u8>,
    ) {
        let args = entry_args(argv, redact);
        let max = self.max_len.load(Relaxed) as usize;
        let mut inner = self.inner.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.entries.push_front(Entry {
            id,
            time,
            usec,
            args,
            addr,
            name,
        });
        inner.entries.truncate(max);
    }

    /// The newest `count` entries (all with `None`).
    pub fn get(&self, count: Option<usize>) -> Vec<Entry> {
        let inner = self.inner.lock();
        let n = count.unwrap_or(usize::MAX).min(inner.entries.len());
        inner.entries.iter().take(n).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// SLOWLOG RESET: the entries go, ids keep counting (as Redis).
    pub fn reset(&self) {
        self.inner.lock().entries.clear();
    }
}

/// The arguments as an entry keeps them: at most [`MAX_ARGC`] (the last of which then says
/// `... (N more arguments)`), each cut to [`MAX_STRING`] bytes plus `... (N more bytes)`.
pub fn entry_args(argv: &[&[u8]], redact: &[usize]) -> Vec<Vec<u8>> {
    let kept = argv.len().min(MAX_ARGC);
    (0..kept)
        .map(|j| {
            if kept != argv.len() && j == kept - 1 {
                return format!("... ({} more arguments)", argv.len() - kept + 1).into_bytes();
            }
            let a = if redact.contains(&j) {
                REDACTED
            } else {
                argv[j]
            };
            if a.len() > MAX_STRING {
                let mut v = a[..MAX_STRING].to_vec();
                v.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes(),
                );
                v
            } else {
                a.to_vec()
            }
        })
        .collect()
}

/// The argument positions Redis hides from the slow log and MONITOR
/// (`redactClientCommandArgument`): AUTH's credentials, HELLO's AUTH pair, MIGRATE's AUTH
/// password or AUTH2 pair, CONFIG SET's values of `requirepass` and `masterauth`.
/// `name` is the command's full lowercase name (`config|set`).
pub fn redacted(name: &str, argv: &[&[u8]]) -> Vec<usize> {
    let mut out = Vec::new();
    match name {
        "auth" => out.extend(1..argv.len()),
        "hello" => {
            let mut i = 2;
            while i < argv.len() {
                if argv[i].eq_ignore_ascii_case(b"auth") && i + 2 < argv.len() {
                    out.extend([i + 1, i + 2]);
                    i += 3;
                } else if argv[i].eq_ignore_ascii_case(b"setname") {
                    i += 2;
                } else {
                    i += 1;
                }
            }
        }
        "migrate" => {
            let mut i = 6;
            while i < argv.len() {
                if argv[i].eq_ignore_ascii_case(b"auth") && i + 1 < argv.len() {
                    out.push(i + 1);
                    i += 2;
                } else if argv[i].eq_ignore_ascii_case(b"auth2") && i + 2 < argv.len() {
                    out.extend([i + 1, i + 2]);
                    i += 3;
                } else if argv[i].eq_ignore_ascii_case(b"keys") {
                    break;
                } else {
                    i += 1;
                }
            }
        }
        // Every rule of ACL SETUSER (passwords among them), as Redis does.
        "acl|setuser" => out.extend(2..argv.len()),
        "config|set" => {
            let mut i = 2;
            while i + 1 < argv.len() {
                if argv[i].eq_ignore_ascii_case(b"requirepass")
                    || argv[i].eq_ignore_ascii_case(b"masterauth")
                {
                    out.push(i + 1);
                }
                i += 2;
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_argument_lists_and_arguments_are_cut_as_redis_cuts_them() {
        let long = vec![b'x'; 130];
        let mut argv: Vec<&[u8]> = vec![b"rpush", b"k", &long];
        let a = entry_args(&argv, &[]);
        assert_eq!(a[2].len(), 128 + b"... (2 more bytes)".len());
        assert!(a[2].ends_with(b"x... (2 more bytes)"));
        argv.extend(std::iter::repeat_n(&b"v"[..], 40));
        let a = entry_args(&argv, &[]);
        assert_eq!(a.len(), 32);
        assert_eq!(a[31], b"... (12 more arguments)");
    }

    #[test]
    fn the_log_keeps_the_newest_entries_and_ids_survive_a_reset() {
        let log = SlowLog::default();
        log.configure(0, 2);
        for i in 0..3u8 {
            log.push(&[b"set", &[b'a' + i]], &[], 1, 1, "?:0".into(), vec![]);
        }
        let e = log.get(None);
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].id, e[1].id), (2, 1));
        log.reset();
        assert!(log.is_empty());
        log.push(&[b"get", b"a"], &[], 1, 1, "?:0".into(), vec![]);
        assert_eq!(log.get(Some(10))[0].id, 3);
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redacted("auth", &[b"auth", b"u", b"p"]), vec![1, 2]);
        assert_eq!(
            redacted("hello", &[b"hello", b"3", b"AUTH", b"u", b"p"]),
            vec![3, 4]
        );
        let m: Vec<&[u8]> = vec![
            b"migrate", b"h", b"1", b"k", b"0", b"10", b"auth2", b"u", b"p",
        ];
        assert_eq!(redacted("migrate", &m), vec![7, 8]);
        assert!(!SlowLog::default().wants(9_999));
    }
}
