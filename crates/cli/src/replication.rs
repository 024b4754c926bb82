//! The replication side of the client: `--rdb` (fetch a snapshot with SYNC and save it) and
//! `--replica` / a typed `SYNC` (show the command stream a master sends its replicas).
//!
//! After `SYNC` the server answers with the snapshot as `$<len>\r\n<bytes>` or, for a
//! diskless transfer, `$EOF:<40 random bytes>\r\n<bytes><the same 40 bytes>`. Empty lines
//! may come first: masters send newlines as keep-alives while they prepare the snapshot.

use std::fs::File;
use std::io::{self, Write};

use crate::format::Output;
use crate::session::{write_stdout, Session};

/// Length of the end-of-payload marker of a diskless transfer.
const EOF_MARK_LEN: usize = 40;

/// How the snapshot payload is delimited.
enum Payload {
    /// `$<len>`.
    Length(u64),
    /// `$EOF:<mark>`.
    Mark([u8; EOF_MARK_LEN]),
    /// `+CONTINUE`: a partial resync, no payload.
    None,
}

fn fail(msg: impl AsRef<str>) -> ! {
    eprintln!("{}", msg.as_ref());
    std::process::exit(1);
}

/// Reads one protocol line (without CR LF), skipping keep-alive newlines.
fn read_line(s: &mut Session, what: &str) -> Vec<u8> {
    let conn = s
        .conn
        .as_mut()
        .unwrap_or_else(|| fail("Error writing to master"));
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match conn.read_raw(&mut b) {
            Ok(1) => {}
            _ => fail(format!("Error reading bulk length while {what}")),
        }
        match b[0] {
            b'\n' if line.is_empty() => continue,
            b'\n' => break,
            c => line.push(c),
        }
        if line.len() > 4096 {
            break;
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

fn replconf(s: &mut Session, a: &str, b: &str) -> bool {
    eprintln!("sending REPLCONF {a} {b}");
    let v = s.command_or_exit(&[b"REPLCONF", a.as_bytes(), b.as_bytes()]);
    if let Some(e) = crate::format::error_text(&v) {
        // Not fatal: older servers don't know every option.
        eprintln!("REPLCONF {a} error: {}", String::from_utf8_lossy(e));
        return false;
    }
    true
}

/// Sends `SYNC` unless a typed `SYNC`/`PSYNC` was already sent, and reads the header.
fn start_sync(s: &mut Session, send: bool) -> (Payload, bool) {
    if send {
        let conn = s
            .conn
            .as_mut()
            .unwrap_or_else(|| fail("Error writing to master"));
        if conn.write_raw(b"SYNC\r\n").is_err() {
            fail("Error writing to master");
        }
    }
    let mut line = read_line(s, "SYNCing");
    if line.first() == Some(&b'-') {
        fail(format!(
            "SYNC with master failed: {}",
            String::from_utf8_lossy(&line)
        ));
    }
    let mut full = true;
    if line.starts_with(b"+FULLRESYNC") || line.starts_with(b"+CONTINUE") {
        eprintln!("PSYNC replied {}", String::from_utf8_lossy(&line));
        if line.starts_with(b"+CONTINUE") {
            return (Payload::None, false);
        }
        full = true;
        line = read_line(s, "PSYNCing");
    }
    if let Some(mark) = line.strip_prefix(b"$EOF:") {
        if mark.len() >= EOF_MARK_LEN {
            let mut m = [0u8; EOF_MARK_LEN];
            m.copy_from_slice(&mark[..EOF_MARK_LEN]);
            return (Payload::Mark(m), full);
        }
    }
    let len = std::str::from_utf8(line.get(1..).unwrap_or_default())
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(0);
    (Payload::Length(len), full)
}

/// Copies the payload to `sink` (when given); returns the payload size.
fn copy_payload(
    s: &mut Session,
    payload: &Payload,
    mut sink: Option<&mut dyn Write>,
    what: &str,
) -> u64 {
    let conn = s.conn.as_mut().unwrap_or_else(|| fail(what));
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    match payload {
        Payload::None => {}
        Payload::Length(len) => {
            let mut left = *len;
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = match conn.read_raw(&mut buf[..want]) {
                    Ok(n) if n > 0 => n,
                    _ => fail(what),
                };
                if let Some(w) = sink.as_mut() {
                    if let Err(e) = w.write_all(&buf[..n]) {
                        fail(format!(
                            "Error writing data to file: {}",
                            crate::conn::io_text(&e)
                        ));
                    }
                }
                left -= n as u64;
                total += n as u64;
            }
        }
        Payload::Mark(mark) => {
            // The last EOF_MARK_LEN bytes seen are held back: they may be the marker.
            let mut held: Vec<u8> = Vec::with_capacity(EOF_MARK_LEN * 2);
            loop {
                let n = match conn.read_raw(&mut buf) {
                    Ok(n) if n > 0 => n,
                    _ => fail(what),
                };
                held.extend_from_slice(&buf[..n]);
                if held.len() >= EOF_MARK_LEN && held[held.len() - EOF_MARK_LEN..] == mark[..] {
                    held.truncate(held.len() - EOF_MARK_LEN);
                    total += held.len() as u64;
                    if let Some(w) = sink.as_mut() {
                        if let Err(e) = w.write_all(&held) {
                            fail(format!(
                                "Error writing data to file: {}",
                                crate::conn::io_text(&e)
                            ));
                        }
                    }
                    break;
                }
                if held.len() > EOF_MARK_LEN {
                    let flush = held.len() - EOF_MARK_LEN;
                    if let Some(w) = sink.as_mut() {
                        if let Err(e) = w.write_all(&held[..flush]) {
                            fail(format!(
                                "Error writing data to file: {}",
                                crate::conn::io_text(&e)
                            ));
                        }
                    }
                    total += flush as u64;
                    held.drain(..flush);
                }
            }
        }
    }
    total
}

/// `--rdb <file>` / `--functions-rdb <file>`: saves a snapshot and exits.
pub fn fetch_rdb(s: &mut Session, path: &str, functions_only: bool) -> ! {
    replconf(s, "capa", "eof");
    replconf(s, "rdb-only", "1");
    if functions_only {
        replconf(s, "rdb-filter-only", "functions");
    }
    let (payload, _) = start_sync(s, true);
    match &payload {
        Payload::Length(len) => eprintln!("SYNC sent to master, writing {len} bytes to '{path}'"),
        _ => eprintln!(
            "SYNC sent to master, writing bytes of bulk transfer until EOF marker to '{path}'"
        ),
    }
    let to_stdout = path == "-";
    let mut file = if to_stdout {
        None
    } else {
        match File::create(path) {
            Ok(f) => Some(f),
            Err(e) => fail(format!(
                "Error opening '{path}': {}",
                crate::conn::io_text(&e)
            )),
        }
    };
    let mut stdout = io::stdout().lock();
    let sink: &mut dyn Write = match file.as_mut() {
        Some(f) => f,
        None => &mut stdout,
    };
    let total = copy_payload(
        s,
        &payload,
        Some(sink),
        "I/O Error reading RDB payload from socket",
    );
    let _ = stdout.flush();
    match payload {
        Payload::Mark(_) => eprintln!("Transfer finished with success after {total} bytes"),
        _ => eprintln!("Transfer finished with success."),
    }
    // Close the connection before the (possibly slow) fsync.
    s.conn = None;
    if let Some(f) = file {
        if let Err(e) = f.sync_all() {
            fail(format!(
                "Fail to fsync '{path}': {}",
                crate::conn::io_text(&e)
            ));
        }
    }
    std::process::exit(0);
}

/// Acts as a replica: skips the snapshot, then prints every command the master streams
/// (as CSV, like redis-cli). Returns when the connection ends.
pub fn replica_stream(s: &mut Session, send_sync: bool) {
    let (payload, full) = start_sync(s, send_sync);
    let kind = if full {
        "Full resync"
    } else {
        "Partial resync"
    };
    let kind = if send_sync { "SYNC" } else { kind };
    match &payload {
        Payload::Mark(_) => {
            eprintln!("{kind} with master, discarding bytes of bulk transfer until EOF marker...")
        }
        Payload::Length(len) => {
            eprintln!("{kind} with master, discarding {len} bytes of bulk transfer...")
        }
        Payload::None => eprintln!("{kind} with master..."),
    }
    let total = copy_payload(
        s,
        &payload,
        None,
        &format!("Error reading RDB payload while {kind}ing"),
    );
    if matches!(payload, Payload::Mark(_)) {
        eprintln!("{kind} done after {total} bytes. Logging commands from master.");
        // A diskless replica is only put online once it acknowledges an offset.
        std::thread::sleep(std::time::Duration::from_secs(1));
        if let Some(c) = s.conn.as_mut() {
            c.append(&[b"REPLCONF".as_slice(), b"ACK", b"0"]);
            let _ = c.flush();
        }
    } else {
        eprintln!("{kind} done. Logging commands from master.");
    }
    let saved = s.style.output;
    s.style.output = Output::Csv;
    while let Some(conn) = s.conn.as_mut() {
        match conn.read_reply() {
            Ok(v) => {
                let mut out = Vec::new();
                s.style.reply(&mut out, &v, false);
                write_stdout(&out);
            }
            Err(e) => {
                eprintln!("Error: {e}");
                if !s.interactive {
                    std::process::exit(1);
                }
                break;
            }
        }
    }
    s.style.output = saved;
}

/// `--replica`.
pub fn replica_mode(s: &mut Session) -> ! {
    replconf(s, "capa", "eof");
    replica_stream(s, true);
    std::process::exit(1);
}
