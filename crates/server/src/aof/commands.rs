//! Bases in AOF format (`aof-use-rdb-preamble no`): the dataset as the commands that
//! rebuild it, as Redis's rewrite emits them.
//!
//! The snapshot writes RDB only, so the base is produced in two steps: the snapshot goes
//! to a temporary RDB file, which is then read back record by record and turned into
//! commands. First `FUNCTION LOAD <code>` per function library; then per database: `SELECT`, then per key `SET`, `RPUSH`, `SADD`, `ZADD`
//! (`%.17g` scores), `HMSET` (at most 64 elements per command, as Redis batches them), or
//! for a stream its entries (`XADD`), `XSETID` with its counters, its groups (`XGROUP
//! CREATE ... ENTRIESREAD`), their pending entries (`XCLAIM ... JUSTID FORCE`) and idle
//! consumers (`XGROUP CREATECONSUMER`); then `PEXPIREAT` for a key with a deadline.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

use crate::feed::encode;
use crate::rdb::{Reader, Record};
use crate::snapshot::Snapshot;
use crate::storage::stream::StreamId;
use crate::storage::Value;

/// Elements per command (Redis's `AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_CMD: usize = 64;

/// Writes the snapshot to `w` as commands, going through a temporary RDB file next to
/// `path`. Returns the bytes written to `w`.
pub fn write_snapshot_as_commands(
    snap: Snapshot,
    path: &Path,
    w: &mut impl Write,
) -> std::io::Result<u64> {
    let tmp = path.with_extension("rdb-tmp");
    let result = (|| {
        let f = File::create(&tmp)?;
        let mut bw = std::io::BufWriter::with_capacity(1 << 20, f);
        snap.write_rdb(&mut bw, &[("aof-base", "1".to_string())])?;
        bw.flush()?;
        drop(bw);
        rdb_to_commands(BufReader::with_capacity(1 << 20, File::open(&tmp)?), w)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Counts what goes through a writer.
struct Counting<'w, W> {
    w: &'w mut W,
    n: u64,
    buf: Vec<u8>,
}

impl<W: Write> Counting<'_, W> {
    fn cmd(&mut self, argv: &[&[u8]]) -> std::io::Result<()> {
        encode(&mut self.buf, argv);
        if self.buf.len() >= 256 * 1024 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.w.write_all(&self.buf)?;
        self.n += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// Turns an RDB stream into the commands that rebuild its dataset.
pub fn rdb_to_commands(r: impl std::io::Read, w: &mut impl Write) -> std::io::Result<u64> {
    let mut rd = Reader::new(r).map_err(std::io::Error::other)?;
    let mut out = Counting {
        w,
        n: 0,
        buf: Vec::with_capacity(256 * 1024),
    };
    loop {
        match rd.next_record().map_err(std::io::Error::other)? {
            Record::SelectDb(db) => {
                out.cmd(&[b"SELECT", itoa::Buffer::new().format(db).as_bytes()])?
            }
            Record::Key {
                key,
                value,
                expire_ms,
                ..
            } => {
                value_commands(&mut out, &key, &value)?;
                if let Some(at) = expire_ms {
                    out.cmd(&[
                        b"PEXPIREAT",
                        &key,
                        itoa::Buffer::new().format(at).as_bytes(),
                    ])?;
                }
            }
            // Before any SELECT, as Redis's rewrite emits them.
            Record::Function(code) => out.cmd(&[b"FUNCTION", b"LOAD", &code])?,
            Record::End => break,
            Record::Aux(..) | Record::ResizeDb { .. } => {}
        }
    }
    out.flush()?;
    Ok(out.n)
}

/// Emits `cmd key` followed by `items` in commands of at most [`ITEMS_PER_CMD`] items of
/// `per_item` arguments each.
fn batched<W: Write>(
    out: &mut Counting<'_, W>,
    cmd: &[u8],
    key: &[u8],
    per_item: usize,
    items: impl Iterator<Item = Vec<Vec<u8>>>,
) -> std::io::Result<()> {
    let mut args: Vec<Vec<u8>> = Vec::new();
    let mut n = 0;
    let emit = |args: &mut Vec<Vec<u8>>, out: &mut Counting<'_, W>| {
        let mut argv: Vec<&[u8]> = Vec::with_capacity(args.len() + 2);
        argv.push(cmd);
        argv.push(key);
        argv.extend(args.iter().map(|a| &a[..]));
        let r = out.cmd(&argv);
        args.clear();
        r
    };
    for item in items {
        debug_assert_eq!(item.len(), per_item);
        args.extend(item);
        n += 1;
        if n == ITEMS_PER_CMD {
            emit(&mut args, out)?;
            n = 0;
        }
    }
    if n > 0 {
        emit(&mut args, out)?;
    }
    Ok(())
}

fn id_bytes(id: StreamId) -> Vec<u8> {
    id.fmt().into_bytes()
}

fn num(n: impl itoa::Integer) -> Vec<u8> {
    itoa::Buffer::new().format(n).as_bytes().to_vec()
}

fn value_commands<W: Write>(
    out: &mut Counting<'_, W>,
    key: &[u8],
    value: &Value,
) -> std::io::Result<()> {
    match value {
        Value::Str(s) => out.cmd(&[b"SET", key, s]),
        Value::List(l) => batched(out, b"RPUSH", key, 1, l.iter().map(|e| vec![e.to_vec()])),
        Value::Set(s) => batched(out, b"SADD", key, 1, s.iter().map(|m| vec![m.into_owned()])),
        Value::Hash(h) => batched(
            out,
            b"HMSET",
            key,
            2,
            h.iter().map(|(f, v)| vec![f.to_vec(), v.to_vec()]),
        ),
        Value::ZSet(z) => batched(
            out,
            b"ZADD",
            key,
            2,
            z.iter()
                .map(|(m, score)| vec![crate::util::fmt_g17(score).into_bytes(), m.to_vec()]),
        ),
        Value::Stream(s) => {
            if s.is_empty() {
                // An empty stream: create it with an entry trimmed away at once.
                out.cmd(&[b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"])?;
            } else {
                for e in s.range(StreamId::MIN, StreamId::MAX) {
                    let id = id_bytes(e.id);
                    let mut argv: Vec<&[u8]> = vec![b"XADD", key, &id];
                    argv.extend(e.strings());
                    out.cmd(&argv)?;
                }
            }
            out.cmd(&[
                b"XSETID",
                key,
                &id_bytes(s.last_id),
                b"ENTRIESADDED",
                &num(s.entries_added),
                b"MAXDELETEDID",
                &id_bytes(s.max_deleted),
            ])?;
            for (name, g) in &s.groups {
                out.cmd(&[
                    b"XGROUP",
                    b"CREATE",
                    key,
                    name,
                    &id_bytes(g.last_id),
                    b"ENTRIESREAD",
                    &num(g.entries_read),
                ])?;
                for (id, nack) in &g.pel {
                    out.cmd(&[
                        b"XCLAIM",
                        key,
                        name,
                        &nack.consumer,
                        b"0",
                        &id_bytes(*id),
                        b"TIME",
                        &num(nack.delivery_time),
                        b"RETRYCOUNT",
                        &num(nack.delivery_count),
                        b"JUSTID",
                        b"FORCE",
                    ])?;
                }
                for (cname, c) in &g.consumers {
                    if c.pel.is_empty() {
                        out.cmd(&[b"XGROUP", b"CREATECONSUMER", key, name, cname])?;
                    }
                }
            }
            Ok(())
        }
    }
}
