//! Loading the append-only file at start-up: the files of the manifest in order, each an
//! optional RDB part (a base written with `aof-use-rdb-preamble yes`, or an old
//! single-file AOF with an RDB preamble) followed by commands in RESP, replayed as a client
//! that nobody reads replies from.
//!
//! What Redis tolerates, Kiln tolerates, and no more:
//!
//! * A torn last command (the server died mid-append) at the end of the *last* file, or a
//!   `MULTI` whose `EXEC` never made it, is dropped with a warning and the file truncated
//!   to the last complete command, when `aof-load-truncated yes`. Otherwise, or in any
//!   other file, loading fails.
//! * Anything else malformed fails with the file name, the byte offset and the problem,
//!   and the server does not start: no partial dataset is ever served.
//!
//! While commands replay, no key counts as expired (see `Ctx::set_replaying`): a deadline
//! that has passed since a command was logged may still be extended or removed by a later
//! command of the file, exactly as Redis replays it. Keys of the RDB part past their
//! deadline are kept for the same reason.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use crate::client::Client;
use crate::command::{dispatch, Ctx};
use crate::server::{ClientHandle, Server};
use kiln_formats::aof::reader::read_up_to;
pub use kiln_formats::aof::reader::{CommandReader, ReadError};

/// How one file loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Completely.
    Loaded,
    /// The file is empty.
    Empty,
    /// A torn tail was dropped and the file truncated to this length.
    Truncated(u64),
}

/// The message Redis gives for a torn file that may not be dropped.
fn unexpected_eof(name: &str) -> String {
    format!(
        "Unexpected end of file reading the append only file {name}. You can: \
         1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. \
         2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
    )
}

/// Loads one file of the AOF into the keyspace. `legacy` names an old single-file AOF
/// (its RDB part is a preamble); `last`: it is the last file, the only one that may be
/// torn; `truncate_ok`: `aof-load-truncated`.
pub fn load_file(
    server: &Server,
    path: &Path,
    name: &str,
    legacy: bool,
    last: bool,
    truncate_ok: bool,
) -> Result<Outcome, String> {
    let mut f = File::open(path).map_err(|e| {
        format!("Fatal error: can't open the append log file {name} for reading: {e}")
    })?;
    let size = f
        .metadata()
        .map_err(|e| format!("Fatal error: can't read the append log file {name}: {e}"))?
        .len();
    if size == 0 {
        return Ok(Outcome::Empty);
    }
    let mut sig = [0u8; 5];
    let got = read_up_to(&mut f, &mut sig).map_err(|e| read_error(name, &e))?;
    let mut start = 0u64;
    if got == 5 && &sig == b"REDIS" {
        if legacy {
            tracing::info!("Reading RDB preamble from AOF file...");
        } else {
            tracing::info!("Reading RDB base file on AOF loading...");
        }
        f.seek(SeekFrom::Start(0))
            .map_err(|e| read_error(name, &e))?;
        let opts = crate::rdb::LoadOptions {
            // An RDB part of the AOF keeps keys whose deadline has passed: the commands
            // that follow may still change them (Redis loads them the same way).
            replica: true,
            verify_checksum: server.config.read().get_bool("rdbchecksum"),
            ..Default::default()
        };
        let mut br = BufReader::with_capacity(1 << 20, &mut f);
        let stats = crate::rdb::load(server.rdb_target(), &mut br, opts).map_err(|e| {
            if legacy {
                format!("Error reading the RDB preamble of the AOF file {name}, AOF loading aborted: {e}")
            } else {
                format!("Error reading the RDB base file {name}, AOF loading aborted: {e}")
            }
        })?;
        drop(br);
        start = stats.bytes;
        if legacy {
            tracing::info!("Reading the remaining AOF tail...");
        }
    }
    f.seek(SeekFrom::Start(start))
        .map_err(|e| read_error(name, &e))?;
    let mut rd = CommandReader::new(BufReader::with_capacity(1 << 20, f), start);
    let torn = replay(server, &mut rd, name)?;
    let Some(valid) = torn else {
        return Ok(Outcome::Loaded);
    };
    if !truncate_ok {
        return Err(unexpected_eof(name));
    }
    if !last {
        return Err(format!(
            "Fatal error: the truncated file {name} is not the last file of the AOF"
        ));
    }
    tracing::warn!("!!! Warning: short read while loading the AOF file {name}!!!");
    tracing::warn!("!!! Truncating the AOF {name} at offset {valid} !!!");
    let truncated = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_len(valid)?;
            f.sync_all()
        });
    if let Err(e) = truncated {
        tracing::warn!("Error truncating the AOF file {name}: {e}");
        return Err(unexpected_eof(name));
    }
    tracing::warn!("AOF {name} loaded anyway because aof-load-truncated is enabled");
    Ok(Outcome::Truncated(valid))
}

fn read_error(name: &str, e: &std::io::Error) -> String {
    format!("Unrecoverable error reading the append only file {name}: {e}")
}

/// Runs every command of `rd` as the AOF client. Returns the offset to cut the file at
/// when its end is torn (a partial command, or a transaction without its EXEC).
fn replay<R: BufRead>(
    server: &Server,
    rd: &mut CommandReader<R>,
    name: &str,
) -> Result<Option<u64>, String> {
    let now = crate::clock::now_ms();
    // Redis's AOF client id; it is not in the client list.
    let handle = Arc::new(ClientHandle::new(
        u64::MAX,
        String::new(),
        String::new(),
        -1,
        now,
    ));
    let mut client = Client::new(handle, false);
    let mut out = Vec::new();
    let mut valid = rd.offset;
    let mut before_multi = valid;
    loop {
        let argv = match rd.next_command() {
            Ok(Some(argv)) => argv,
            Ok(None) => break,
            Err(ReadError::Truncated) => return Ok(Some(valid)),
            Err(ReadError::Format { offset, what }) => {
                return Err(format!(
                    "Bad file format reading the append only file {name} at offset {offset}: {what}. \
                     Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>"
                ))
            }
            Err(ReadError::Io(e)) => return Err(read_error(name, &e)),
        };
        let args: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
        if server.commands.get(args[0]).is_none() {
            return Err(format!(
                "Unknown command '{}' reading the append only file {name} at offset {valid}",
                String::from_utf8_lossy(args[0])
            ));
        }
        if args[0].eq_ignore_ascii_case(b"MULTI") {
            before_multi = valid;
        }
        let absolute = absolute_ttl(&args, crate::clock::now_ms());
        let args: Vec<&[u8]> = match &absolute {
            Some(v) => v.iter().map(|a| &a[..]).collect(),
            None => args,
        };
        {
            let mut cx = Ctx::new(server, &mut client, &mut out);
            cx.set_replaying();
            dispatch(&mut cx, &args);
        }
        // Nobody reads the replies. A blocking command never waits here (the file holds
        // what it did, not that it waited).
        out.clear();
        if let Some(b) = client.blocked.take() {
            crate::command::blocking::unregister(server, &b.waiter);
        }
        valid = rd.offset;
    }
    if client.multi.is_some() {
        tracing::warn!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
        return Ok(Some(before_multi));
    }
    Ok(None)
}

/// A command with a relative time to live, rewritten with the deadline it gets when run
/// now (`EXPIRE k 10` becomes `PEXPIREAT k <now + 10000>`); None for any other command.
///
/// Replay runs with the command clock at 0, so that nothing expires while loading (see
/// the module docs); a relative TTL must therefore be made absolute first. Redis writes
/// absolute deadlines into its AOF, but older files, and commands propagated as called,
/// may hold relative ones, which Redis applies relative to the time of loading: so does
/// this.
pub fn absolute_ttl(args: &[&[u8]], now: u64) -> Option<Vec<Vec<u8>>> {
    use crate::util::parse_i64;
    let name = args.first()?;
    let deadline = |v: &[u8], unit: i64| -> Option<Vec<u8>> {
        let at = parse_i64(v)?.checked_mul(unit)?.checked_add(now as i64)?;
        Some(itoa::Buffer::new().format(at).as_bytes().to_vec())
    };
    let owned = |a: &[&[u8]]| a.iter().map(|x| x.to_vec()).collect::<Vec<_>>();
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    if is(b"EXPIRE") || is(b"PEXPIRE") {
        let unit = if is(b"EXPIRE") { 1000 } else { 1 };
        let mut v = owned(args);
        v[0] = b"PEXPIREAT".to_vec();
        v[2] = deadline(args.get(2)?, unit)?;
        return Some(v);
    }
    if (is(b"SETEX") || is(b"PSETEX")) && args.len() == 4 {
        let unit = if is(b"SETEX") { 1000 } else { 1 };
        let at = deadline(args[2], unit)?;
        return Some(vec![
            b"SET".to_vec(),
            args[1].to_vec(),
            args[3].to_vec(),
            b"PXAT".to_vec(),
            at,
        ]);
    }
    if (is(b"SET") && args.len() > 3) || (is(b"GETEX") && args.len() > 2) {
        let first_opt = if is(b"SET") { 3 } else { 2 };
        let mut v = owned(args);
        let mut changed = false;
        let mut i = first_opt;
        while i + 1 < args.len() {
            let unit = if args[i].eq_ignore_ascii_case(b"EX") {
                1000
            } else if args[i].eq_ignore_ascii_case(b"PX") {
                1
            } else {
                i += 1;
                continue;
            };
            v[i] = b"PXAT".to_vec();
            v[i + 1] = deadline(args[i + 1], unit)?;
            changed = true;
            i += 2;
        }
        return changed.then_some(v);
    }
    if is(b"RESTORE") && args.len() >= 4 {
        let abs = args[4..].iter().any(|a| a.eq_ignore_ascii_case(b"ABSTTL"));
        if abs || parse_i64(args[2])? <= 0 {
            return None;
        }
        let mut v = owned(args);
        v[2] = deadline(args[2], 1)?;
        v.push(b"ABSTTL".to_vec());
        return Some(v);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ReadError> {
        let mut rd = CommandReader::new(data, 0);
        let mut cmds = Vec::new();
        while let Some(c) = rd.next_command()? {
            cmds.push(c);
        }
        Ok(cmds)
    }

    const TWO: &[u8] =
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";

    #[test]
    fn commands_are_read_with_their_offsets_and_annotations_are_skipped() {
        let mut data = b"#TS:1700000000\r\n".to_vec();
        data.extend_from_slice(TWO);
        let mut rd = CommandReader::new(&data[..], 0);
        let first = rd.next_command().unwrap().unwrap();
        assert_eq!(first, vec![b"SELECT".to_vec(), b"0".to_vec()]);
        assert_eq!(rd.offset, 16 + 23);
        let second = rd.next_command().unwrap().unwrap();
        assert_eq!(second[2], b"hello");
        assert_eq!(rd.offset, data.len() as u64);
        assert!(rd.next_command().unwrap().is_none());
    }

    #[test]
    fn every_cut_inside_the_last_command_reads_as_truncated() {
        let first_len = 23;
        for cut in first_len + 1..TWO.len() {
            let mut rd = CommandReader::new(&TWO[..cut], 0);
            assert!(rd.next_command().unwrap().is_some());
            assert!(
                matches!(rd.next_command(), Err(ReadError::Truncated)),
                "cut at {cut}"
            );
        }
        assert_eq!(read_all(&TWO[..first_len]).unwrap().len(), 1);
    }

    #[test]
    fn garbage_is_a_format_error_with_its_offset() {
        let mut data = TWO.to_vec();
        data.extend_from_slice(b"+OK\r\n");
        match read_all(&data) {
            Err(ReadError::Format { offset, .. }) => assert_eq!(offset, TWO.len() as u64),
            other => panic!("{other:?}"),
        }
        for bad in [
            &b"*0\r\n"[..],
            b"*x\r\n",
            b"*1\r\n%3\r\nSET\r\n",
            b"*1\r\n$3\r\nSETxx",
            b"*1\r\n$-1\r\n",
        ] {
            assert!(
                matches!(read_all(bad), Err(ReadError::Format { .. })),
                "{bad:?}"
            );
        }
        let long = format!("*1\r\n${}\r\n", "9".repeat(2000));
        assert!(matches!(
            read_all(long.as_bytes()),
            Err(ReadError::Format { .. })
        ));
    }

    #[test]
    fn relative_ttls_become_deadlines_from_now() {
        fn cmd(s: &str) -> Vec<&[u8]> {
            s.split(' ').map(str::as_bytes).collect()
        }
        let text = |v: Option<Vec<Vec<u8>>>| {
            v.map(|v| {
                v.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        };
        let now = 1_000_000;
        let cases = [
            ("expire k 10 NX", Some("PEXPIREAT k 1010000 NX")),
            ("PEXPIRE k 10", Some("PEXPIREAT k 1000010")),
            ("setex k 5 v", Some("SET k v PXAT 1005000")),
            ("psetex k 5 v", Some("SET k v PXAT 1000005")),
            ("set k v ex 2 get", Some("set k v PXAT 1002000 get")),
            ("SET k v NX PX 7", Some("SET k v NX PXAT 1000007")),
            ("getex k EX 1", Some("getex k PXAT 1001000")),
            (
                "restore k 100 payload REPLACE",
                Some("restore k 1000100 payload REPLACE ABSTTL"),
            ),
            ("restore k 0 payload", None),
            ("restore k 5 payload ABSTTL", None),
            ("set k v PXAT 5", None),
            ("set k v", None),
            ("pexpireat k 5", None),
            ("incr k", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                text(absolute_ttl(&cmd(input), now)).as_deref(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn a_huge_declared_length_does_not_allocate_it() {
        // 2^62 bytes declared, 3 present: truncated, and no attempt to reserve it.
        let data = b"*1\r\n$4611686018427387904\r\nabc";
        assert!(matches!(read_all(data), Err(ReadError::Truncated)));
        let data = b"*4611686018427387904\r\n$1\r\na\r\n";
        assert!(matches!(read_all(data), Err(ReadError::Truncated)));
    }
}
