//! MIGRATE's network side, as Redis 7.0's `migrateCommand` does it: the cache of
//! connections to targets (one per `host:port`, closed after 10 s unused, at most 64) and
//! the exchange of one MIGRATE (AUTH, a SELECT when the connection's last database
//! differs, one RESTORE per key, written as one pipelined batch, then one reply line
//! each). Knows nothing of the server: the command (`command::migrate`) reads the keys
//! and deletes what the target acknowledged.
//!
//! Every step is bounded by the command's timeout, as in Redis: connecting, each 64 KiB
//! written and each reply line read. A broken cached connection is retried once on a
//! fresh one (only when nothing was acknowledged yet, and never after a timeout).

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Cached connections at most (Redis's `MIGRATE_SOCKET_CACHE_ITEMS`).
pub const CACHE_ITEMS: usize = 64;
/// A cached connection unused this long is closed (Redis's `MIGRATE_SOCKET_CACHE_TTL`).
pub const CACHE_TTL_MS: u64 = 10_000;

/// Redis's replies when the exchange fails on the network.
pub const IOERR_CONNECTING: &str = "IOERR error or timeout connecting to the client";
pub const IOERR_WRITING: &str = "IOERR error or timeout writing to target instance";
pub const IOERR_READING: &str = "IOERR error or timeout reading to target instance";

/// Bytes written per timed write (Redis writes the batch in 64 KiB pieces).
const WRITE_CHUNK: usize = 64 * 1024;
/// A reply line longer than this is cut, as Redis's 1024-byte line buffers cut it.
const MAX_LINE: usize = 1023;

/// A connection to a target and the database it last selected (-1: unknown).
struct Cached {
    stream: std::net::TcpStream,
    last_dbid: i64,
    last_use_ms: u64,
}

/// The connections MIGRATE keeps to its targets, by `host:port` as the client wrote them.
/// A connection in use is taken out of the cache, so two MIGRATEs to one target at once
/// use two connections (Redis, single-threaded, never needs two).
#[derive(Default)]
pub struct Cache {
    conns: Mutex<HashMap<Vec<u8>, Cached>>,
}

impl Cache {
    /// Cached connections (INFO's `migrate_cached_sockets`).
    pub fn len(&self) -> usize {
        self.conns.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the connections unused for [`CACHE_TTL_MS`] (the cron calls it).
    pub fn close_idle(&self, now_ms: u64) {
        let mut conns = self.conns.lock();
        if !conns.is_empty() {
            conns.retain(|_, c| now_ms.saturating_sub(c.last_use_ms) < CACHE_TTL_MS);
        }
    }

    fn take(&self, name: &[u8], now_ms: u64) -> Option<Cached> {
        let mut conns = self.conns.lock();
        let c = conns.remove(name)?;
        (now_ms.saturating_sub(c.last_use_ms) < CACHE_TTL_MS).then_some(c)
    }

    fn put(&self, name: Vec<u8>, c: Cached) {
        let mut conns = self.conns.lock();
        if conns.len() >= CACHE_ITEMS && !conns.contains_key(&name) {
            // Full: drop one (Redis drops a random one).
            if let Some(k) = conns.keys().next().cloned() {
                conns.remove(&k);
            }
        }
        conns.insert(name, c);
    }
}

/// One key to send: its name, TTL in ms (0: none) and DUMP payload.
pub struct Item {
    pub key: Vec<u8>,
    pub ttl: i64,
    pub payload: Vec<u8>,
}

/// What one MIGRATE sends.
pub struct Job {
    pub host: Vec<u8>,
    pub port: Vec<u8>,
    pub dbid: i64,
    pub timeout: Duration,
    /// AUTH's password, with AUTH2's user name.
    pub auth: Option<(Option<Vec<u8>>, Vec<u8>)>,
    pub replace: bool,
    /// RESTORE-ASKING rather than RESTORE (the source is in cluster mode).
    pub asking: bool,
    pub items: Vec<Item>,
}

/// How the exchange ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Ok,
    /// The first error line the target sent (AUTH's, SELECT's or a RESTORE's), without `-`.
    Target(Vec<u8>),
    /// One of the `IOERR_*` texts.
    Io(&'static str),
}

/// The reply, and which items the target acknowledged (`+OK` to their RESTORE, with AUTH
/// and SELECT accepted): those the source deletes without COPY, whatever the reply.
#[derive(Debug)]
pub struct Outcome {
    pub reply: Reply,
    pub acked: Vec<bool>,
}

/// A failed step: a timeout, or any other error (retried once).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    Timeout,
    Broken,
}

/// Redis's `atoi` of the port argument: leading digits, 0 when there are none.
fn atoi(s: &[u8]) -> i64 {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for &b in digits.iter().take_while(|b| b.is_ascii_digit()) {
        v = (v * 10 + i64::from(b - b'0')) & 0xffff_ffff;
    }
    i64::from((if neg { -v } else { v }) as i32)
}

/// Appends one command to the batch.
fn push(cmd: &mut Vec<u8>, argv: &[&[u8]]) {
    kiln_resp::encode::request(cmd, argv);
}

/// The batch: AUTH if given, SELECT if `select`, then the RESTOREs.
fn request(job: &Job, select: bool) -> Vec<u8> {
    let size: usize = job
        .items
        .iter()
        .map(|i| i.key.len() + i.payload.len() + 64)
        .sum();
    let mut cmd = Vec::with_capacity(size + 64);
    if let Some((user, pass)) = &job.auth {
        match user {
            Some(u) => push(&mut cmd, &[b"AUTH", u, pass]),
            None => push(&mut cmd, &[b"AUTH", pass]),
        }
    }
    if select {
        let db = itoa::Buffer::new().format(job.dbid).as_bytes().to_vec();
        push(&mut cmd, &[b"SELECT", &db]);
    }
    let name: &[u8] = if job.asking {
        b"RESTORE-ASKING"
    } else {
        b"RESTORE"
    };
    for it in &job.items {
        let mut ttl = itoa::Buffer::new();
        let ttl = ttl.format(it.ttl).as_bytes();
        let argv: [&[u8]; 5] = [name, &it.key, ttl, &it.payload, b"REPLACE"];
        push(&mut cmd, &argv[..if job.replace { 5 } else { 4 }]);
    }
    cmd
}

/// A connection in use, with the bytes read past the last line.
struct Link {
    stream: TcpStream,
    rbuf: Vec<u8>,
    timeout: Duration,
}

impl Link {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        for chunk in bytes.chunks(WRITE_CHUNK) {
            match tokio::time::timeout(self.timeout, self.stream.write_all(chunk)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Failure::Broken),
                Err(_) => return Err(Failure::Timeout),
            }
        }
        Ok(())
    }

    /// The next reply line without its `\r\n`.
    async fn line(&mut self) -> Result<Vec<u8>, Failure> {
        loop {
            if let Some(p) = self.rbuf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.rbuf.drain(..=p).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                line.truncate(MAX_LINE);
                return Ok(line);
            }
            self.rbuf.reserve(4096);
            match tokio::time::timeout(self.timeout, self.stream.read_buf(&mut self.rbuf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Failure::Broken),
                Ok(Ok(_)) => {}
                Err(_) => return Err(Failure::Timeout),
            }
        }
    }
}

/// A cached connection, or a new one. `Err` with the connect step's failure.
async fn connect(
    cache: &Cache,
    name: &[u8],
    job: &Job,
) -> Result<(Link, i64), Result<Failure, &'static str>> {
    if let Some(c) = cache.take(name, crate::clock::now_ms()) {
        if let Ok(stream) = TcpStream::from_std(c.stream) {
            return Ok((link(stream, job), c.last_dbid));
        }
    }
    // Redis resolves `host` and the port as text: a negative port, or a name that does
    // not resolve, fails there ("connecting"); a port past 65535 wraps.
    let port = atoi(&job.port);
    if port < 0 {
        return Err(Err(IOERR_CONNECTING));
    }
    let host = String::from_utf8_lossy(&job.host).into_owned();
    let resolve = tokio::net::lookup_host((host.as_str(), port as u16));
    let addrs: Vec<std::net::SocketAddr> = match tokio::time::timeout(job.timeout, resolve).await {
        Ok(Ok(a)) => a.collect(),
        _ => Vec::new(),
    };
    if addrs.is_empty() {
        return Err(Err(IOERR_CONNECTING));
    }
    match tokio::time::timeout(job.timeout, TcpStream::connect(&addrs[..])).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok((link(stream, job), -1))
        }
        // Redis connects without waiting for the handshake's outcome: a refused
        // connection shows as a failed write (and is retried once).
        Ok(Err(_)) => Err(Ok(Failure::Broken)),
        Err(_) => Err(Err(IOERR_CONNECTING)),
    }
}

fn link(stream: TcpStream, job: &Job) -> Link {
    Link {
        stream,
        rbuf: Vec::new(),
        timeout: job.timeout,
    }
}

/// Runs one MIGRATE's exchange with its target, as Redis 7.0 does.
pub async fn exchange(cache: &Cache, job: &Job) -> Outcome {
    let name = [&job.host[..], b":", &job.port[..]].concat();
    let mut acked = vec![false; job.items.len()];
    let mut may_retry = true;
    loop {
        let mut write_error = false;
        let failure = 'attempt: {
            let (mut link, last_dbid) = match connect(cache, &name, job).await {
                Ok(l) => l,
                Err(Err(text)) => {
                    return Outcome {
                        reply: Reply::Io(text),
                        acked,
                    }
                }
                Err(Ok(f)) => {
                    write_error = true;
                    break 'attempt f;
                }
            };
            let select = last_dbid != job.dbid;
            if let Err(f) = link.write(&request(job, select)).await {
                write_error = true;
                break 'attempt f;
            }
            let auth = match job.auth {
                Some(_) => match link.line().await {
                    Ok(l) => Some(l),
                    Err(f) => break 'attempt f,
                },
                None => None,
            };
            let sel = match select {
                true => match link.line().await {
                    Ok(l) => Some(l),
                    Err(f) => break 'attempt f,
                },
                false => None,
            };
            let early = [&auth, &sel]
                .into_iter()
                .flatten()
                .find(|l| l.first() == Some(&b'-'))
                .cloned();
            let mut error: Option<Vec<u8>> = None;
            let mut socket_error = None;
            let mut read = 0;
            for (j, ack) in acked.iter_mut().enumerate() {
                let line = match link.line().await {
                    Ok(l) => l,
                    Err(f) => {
                        socket_error = Some(f);
                        break;
                    }
                };
                read = j + 1;
                let failed = early
                    .as_ref()
                    .or((line.first() == Some(&b'-')).then_some(&line));
                match failed {
                    Some(e) => {
                        if error.is_none() {
                            error = Some(e[1..].to_vec());
                        }
                    }
                    None => *ack = true,
                }
            }
            if let Some(f) = socket_error {
                if error.is_none() && read == 0 && may_retry && f != Failure::Timeout {
                    break 'attempt f;
                }
                // The connection is dropped (closed) here.
                return Outcome {
                    reply: match error {
                        Some(e) => Reply::Target(e),
                        None => Reply::Io(IOERR_READING),
                    },
                    acked,
                };
            }
            let (reply, last_dbid) = match error {
                Some(e) => (Reply::Target(e), -1),
                None => (Reply::Ok, job.dbid),
            };
            if let Ok(stream) = link.stream.into_std() {
                let c = Cached {
                    stream,
                    last_dbid,
                    last_use_ms: crate::clock::now_ms(),
                };
                cache.put(name, c);
            }
            return Outcome { reply, acked };
        };
        if failure != Failure::Timeout && may_retry {
            may_retry = false;
            continue;
        }
        let text = if write_error {
            IOERR_WRITING
        } else {
            IOERR_READING
        };
        return Outcome {
            reply: Reply::Io(text),
            acked,
        };
    }
}

/// [`exchange`] for a caller that cannot await (MIGRATE inside EXEC or a script, which
/// holds its shard locks throughout, as Redis holds the whole server): runs it on a
/// scoped thread with a runtime of its own, and waits. Bounded by the job's timeout.
pub fn exchange_blocking(cache: &Cache, job: &Job) -> Outcome {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(exchange(cache, job)),
                Err(_) => Outcome {
                    reply: Reply::Io(IOERR_CONNECTING),
                    acked: vec![false; job.items.len()],
                },
            }
        })
        .join()
        .unwrap_or_else(|_| Outcome {
            reply: Reply::Io(IOERR_READING),
            acked: vec![false; job.items.len()],
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_is_read_as_atoi_reads_it() {
        assert_eq!(atoi(b"6379"), 6379);
        assert_eq!(atoi(b"xx"), 0);
        assert_eq!(atoi(b"12ab"), 12);
        assert_eq!(atoi(b""), 0);
        assert_eq!(atoi(b"-3"), -3);
        assert_eq!(atoi(b"70000") as u16, 4464);
    }

    #[test]
    fn request_is_auth_select_then_restores() {
        let job = Job {
            host: b"h".to_vec(),
            port: b"1".to_vec(),
            dbid: 3,
            timeout: Duration::from_secs(1),
            auth: Some((Some(b"u".to_vec()), b"p".to_vec())),
            replace: true,
            asking: false,
            items: vec![Item {
                key: b"k".to_vec(),
                ttl: 5,
                payload: b"x".to_vec(),
            }],
        };
        assert_eq!(
            request(&job, true),
            b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n\
              *5\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$1\r\n5\r\n$1\r\nx\r\n$7\r\nREPLACE\r\n"
                .to_vec()
        );
    }

    #[test]
    fn idle_connections_close() {
        let cache = Cache::default();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let c = Cached {
            stream: s,
            last_dbid: 0,
            last_use_ms: 1_000,
        };
        cache.put(b"a:1".to_vec(), c);
        cache.close_idle(1_000 + CACHE_TTL_MS - 1);
        assert_eq!(cache.len(), 1);
        cache.close_idle(1_000 + CACHE_TTL_MS);
        assert!(cache.is_empty());
    }
}
