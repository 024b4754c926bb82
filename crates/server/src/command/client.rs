//! CLIENT subcommands and RESET.
//!
//! A connection's own state lives in its [`crate::client::Client`]; what other connections
//! see of it (CLIENT LIST, CLIENT KILL) is its [`ClientHandle`] in the server's registry.
//! The CLIENT LIST line is Redis 7.0's, field for field, because tools parse it.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::flags::*;
use super::{CommandSpec, Ctx, Keys};
use crate::error::{
    CmdResult, CommandError, CLIENT_ID_NOT_POSITIVE, E, INVALID_CLIENT_ID, MAXAGE_NOT_INT,
    NO_SUCH_CLIENT, SYNTAX,
};
use crate::server::{ClientHandle, Server};

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("client", -2, 0, Keys::None, container)
        .group("connection")
        .since("2.4.0")
        .summary("A container for client connection commands.")
        .complexity("Depends on subcommand.")
        .subcommands(SUBCOMMANDS),
    CommandSpec::new(
        "reset",
        1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        Keys::None,
        reset,
    )
    .group("connection")
    .since("6.2.0")
    .summary("Resets the connection.")
    .complexity("O(1)"),
];

const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("caching", 3, NOSCRIPT | LOADING | STALE, Keys::None, super::tracking::caching)
        .group("connection")
        .since("6.0.0")
        .summary("Instruct the server about tracking or not keys in the next request")
        .complexity("O(1)")
        .syntax("<YES | NO>"),
    CommandSpec::new("getredir", 2, NOSCRIPT | LOADING | STALE, Keys::None, super::tracking::getredir)
        .group("connection")
        .since("6.0.0")
        .summary("Get tracking notifications redirection client ID if any")
        .complexity("O(1)"),
    CommandSpec::new("tracking", -3, NOSCRIPT | LOADING | STALE, Keys::None, super::tracking::tracking)
        .group("connection")
        .since("6.0.0")
        .summary("Enable or disable server assisted client side caching support")
        .complexity("O(1). Some options may introduce additional complexity.")
        .syntax("<ON | OFF> [REDIRECT client-id] [PREFIX prefix [PREFIX prefix ...]] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]"),
    CommandSpec::new("trackinginfo", 2, NOSCRIPT | LOADING | STALE, Keys::None, super::tracking::trackinginfo)
        .group("connection")
        .since("6.2.0")
        .summary("Return information about server assisted client side caching for the current connection")
        .complexity("O(1)"),
    CommandSpec::new("getname", 2, NOSCRIPT | LOADING | STALE, Keys::None, getname)
        .group("connection")
        .since("2.6.9")
        .summary("Returns the name of the connection.")
        .complexity("O(1)"),
    CommandSpec::new("help", 2, LOADING | STALE, Keys::None, help)
        .group("connection")
        .since("5.0.0")
        .summary("Returns helpful text about the different subcommands.")
        .complexity("O(1)"),
    CommandSpec::new("id", 2, NOSCRIPT | LOADING | STALE, Keys::None, id)
        .group("connection")
        .since("5.0.0")
        .summary("Returns the unique client ID of the connection.")
        .complexity("O(1)"),
    CommandSpec::new("info", 2, NOSCRIPT | LOADING | STALE, Keys::None, info)
        .group("connection")
        .since("6.2.0")
        .summary("Returns information about the connection.")
        .complexity("O(1)"),
    CommandSpec::new("kill", -3, ADMIN | NOSCRIPT | LOADING | STALE, Keys::None, kill)
        .group("connection")
        .since("2.4.0")
        .summary("Terminates open connections.")
        .complexity("O(N) where N is the number of client connections")
        .syntax("<ip:port | [ID client-id] [TYPE <NORMAL | MASTER | SLAVE | REPLICA | PUBSUB>] [USER username] [ADDR ip:port] [LADDR ip:port] [SKIPME <YES | NO>] [MAXAGE maxage]>"),
    CommandSpec::new("list", -2, ADMIN | NOSCRIPT | LOADING | STALE, Keys::None, list)
        .group("connection")
        .since("2.4.0")
        .summary("Lists open connections.")
        .complexity("O(N) where N is the number of client connections")
        .syntax("[TYPE <NORMAL | MASTER | REPLICA | PUBSUB>] [ID client-id [client-id ...]]"),
    CommandSpec::new("no-evict", 3, ADMIN | NOSCRIPT | LOADING | STALE, Keys::None, no_evict)
        .group("connection")
        .since("7.0.0")
        .summary("Sets the client eviction mode of the connection.")
        .complexity("O(1)")
        .syntax("<ON | OFF>"),
    CommandSpec::new("no-touch", 3, NOSCRIPT | LOADING | STALE, Keys::None, no_touch)
        .group("connection")
        .since("7.2.0")
        .summary("Controls whether commands sent by the client affect the LRU/LFU of accessed keys.")
        .complexity("O(1)")
        .syntax("<ON | OFF>"),
    CommandSpec::new("pause", -3, ADMIN | NOSCRIPT | LOADING | STALE, Keys::None, pause)
        .group("connection")
        .since("2.9.50")
        .summary("Stop processing commands from clients for some time")
        .complexity("O(1)")
        .syntax("timeout [WRITE | ALL]"),
    CommandSpec::new("reply", 3, NOSCRIPT | LOADING | STALE, Keys::None, reply)
        .group("connection")
        .since("3.2.0")
        .summary("Instructs the server whether to reply to commands.")
        .complexity("O(1)")
        .syntax("<ON | OFF | SKIP>"),
    CommandSpec::new("setinfo", 4, NOSCRIPT | LOADING | STALE, Keys::None, setinfo)
        .group("connection")
        .since("7.2.0")
        .summary("Sets information specific to the client or connection.")
        .complexity("O(1)")
        .syntax("<LIB-NAME libname | LIB-VER libver>"),
    CommandSpec::new("setname", 3, NOSCRIPT | LOADING | STALE, Keys::None, setname)
        .group("connection")
        .since("2.6.9")
        .summary("Sets the connection name.")
        .complexity("O(1)")
        .syntax("connection-name"),
    CommandSpec::new("unblock", -3, ADMIN | NOSCRIPT | LOADING | STALE, Keys::None, unblock)
        .group("connection")
        .since("5.0.0")
        .summary("Unblocks a client blocked by a blocking command from a different connection.")
        .complexity("O(log N) where N is the number of client connections")
        .syntax("client-id [TIMEOUT | ERROR]"),
    CommandSpec::new("unpause", 2, ADMIN | NOSCRIPT | LOADING | STALE, Keys::None, unpause)
        .group("connection")
        .since("6.2.0")
        .summary("Resume processing of clients that were paused")
        .complexity("O(N) Where N is the number of paused clients"),
];

/// Flag letters of a CLIENT LIST `flags=` field, in the order Redis prints them:
/// S replica, M master, P pubsub, x MULTI, b blocked, t tracking, R broken redirect,
/// B broadcast tracking, d dirty WATCH, c close after reply, u unblocked, A close asap,
/// U unix socket, r read only (cluster), e no-evict, T no-touch.
const FLAG_ORDER: &str = "OSMPxbtRBdcuAUreT";

/// Sets or clears a flag letter in `flags` (a handle's `ClientInfo::flags`), keeping
/// [`FLAG_ORDER`]. Features that change a client's flags (MULTI, SUBSCRIBE) call this too.
pub fn set_flag(flags: &mut String, letter: char, on: bool) {
    flags.retain(|c| c != letter);
    if on {
        let rank = |c: char| FLAG_ORDER.find(c).unwrap_or(FLAG_ORDER.len());
        let at = flags
            .char_indices()
            .find(|&(_, c)| rank(c) > rank(letter))
            .map_or(flags.len(), |(i, _)| i);
        flags.insert(at, letter);
    }
}

/// `CLIENT` without a subcommand: rejected by its arity before this runs.
fn container(_cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    Err(CommandError::arity("client"))
}

/// `CLIENT ID`: the connection's unique id. O(1).
fn id(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    cx.out.int(cx.client.id as i64);
    Ok(())
}

/// `CLIENT GETNAME`: the connection's name, or nil. O(1).
fn getname(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let info = cx.client.handle.info.lock();
    if info.name.is_empty() {
        cx.out.null();
    } else {
        cx.out.bulk(&info.name);
    }
    Ok(())
}

/// `CLIENT SETNAME connection-name`: names the connection; an empty name clears it. O(1).
fn setname(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    super::server::validate_client_name(args[2])?;
    cx.client.handle.info.lock().name = args[2].to_vec();
    cx.out.ok();
    Ok(())
}

/// `CLIENT PAUSE timeout [WRITE | ALL]`: holds client commands back (all of them, or
/// those that may write) for `timeout` ms; a pause in force keeps the stricter kind and the
/// later deadline. O(1).
fn pause(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let ms = crate::util::parse_i64(args[2]).ok_or(E(crate::error::TIMEOUT_NOT_INTEGER))?;
    if ms < 0 {
        return Err(CommandError::err("timeout is negative"));
    }
    let kind = match args.len() {
        3 => crate::pause::Kind::All,
        4 if args[3].eq_ignore_ascii_case(b"WRITE") => crate::pause::Kind::Write,
        4 if args[3].eq_ignore_ascii_case(b"ALL") => crate::pause::Kind::All,
        4 => return Err(CommandError::err("CLIENT PAUSE mode must be WRITE or ALL")),
        _ => return Err(CommandError::bad_subcommand(args[0], args[1])),
    };
    let now = crate::clock::now_ms();
    cx.server
        .pause
        .pause(kind, now, now.saturating_add(ms as u64));
    cx.server.refresh_expiry_mode();
    cx.out.ok();
    Ok(())
}

/// `CLIENT UNPAUSE`: ends the pause; paused clients run their commands. O(N) paused
/// clients.
fn unpause(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    cx.server.pause.unpause();
    cx.server.refresh_expiry_mode();
    cx.out.ok();
    Ok(())
}

/// Commands Redis 7.0 flags `may_replicate` beyond its writes (its COMMAND INFO does not
/// show the flag): a WRITE pause holds them back too.
const MAY_REPLICATE: &[&str] = &[
    "eval",
    "evalsha",
    "fcall",
    "publish",
    "spublish",
    "pfcount",
    "pfselftest",
];

/// Whether a pause of `kind` holds back this request from this client: every command
/// under ALL; under WRITE, those that may write or replicate, and EXEC of a transaction
/// that queued one (a write is held back at queue time too, as in Redis). Requests the
/// dispatcher would refuse (unknown command, wrong arity) are answered at once.
pub fn paused_for(cx: &Ctx, argv: &[&[u8]], kind: crate::pause::Kind) -> bool {
    let Ok(cmd) = cx.server.commands.resolve(argv) else {
        return false;
    };
    if !cmd.spec.arity_ok(argv.len()) {
        return false;
    }
    if kind == crate::pause::Kind::All {
        return true;
    }
    let may_write = |name: &[u8]| {
        cx.server
            .commands
            .get(name)
            .is_some_and(|c| c.spec.flags & WRITE != 0 || MAY_REPLICATE.contains(&c.spec.name))
    };
    if cmd.fullname == "exec" {
        return cx.client.multi.as_ref().is_some_and(|m| {
            m.queue
                .iter()
                .any(|q| q.first().is_some_and(|n| may_write(n)))
        });
    }
    cmd.spec.flags & WRITE != 0 || MAY_REPLICATE.contains(&cmd.fullname.as_str())
}

/// `CLIENT UNBLOCK client-id [TIMEOUT | ERROR]`: ends another client's block as if it timed
/// out, or with an error. Replies 1 if that client was blocked. O(N) in blocked clients.
fn unblock(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() > 4 {
        // Redis 7.0 checks the count before anything else, with its generic message.
        return Err(CommandError::bad_subcommand(args[0], args[1]));
    }
    let id = super::args::int(args[2])?;
    let error = match args.get(3) {
        None => false,
        Some(a) if a.eq_ignore_ascii_case(b"TIMEOUT") => false,
        Some(a) if a.eq_ignore_ascii_case(b"ERROR") => true,
        Some(_) => {
            return Err(CommandError::err(
                "CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ))
        }
    };
    let waiter = cx
        .server
        .blocked
        .by_id
        .lock()
        .values()
        .find(|w| w.handle.id as i64 == id)
        .cloned();
    let done = waiter.is_some_and(|w| {
        let reply = if error {
            b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n".to_vec()
        } else {
            super::blocking::timeout_reply(w.resp3).to_vec()
        };
        w.finish(super::blocking::WaitState::Unblocked(reply))
    });
    cx.out.int(i64::from(done));
    Ok(())
}

/// `CLIENT SETINFO <LIB-NAME libname | LIB-VER libver>` (Redis 7.2): records the client
/// library's name or version. O(1).
fn setinfo(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (attr, val) = (args[2], args[3]);
    let lib_name = if attr.eq_ignore_ascii_case(b"LIB-NAME") {
        true
    } else if attr.eq_ignore_ascii_case(b"LIB-VER") {
        false
    } else {
        return Err(CommandError::Owned(format!(
            "ERR Unrecognized option '{}'",
            String::from_utf8_lossy(attr)
        )));
    };
    // Spaces would break the space-separated CLIENT LIST line.
    if val.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CommandError::Owned(format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(attr)
        )));
    }
    let mut info = cx.client.handle.info.lock();
    if lib_name {
        info.lib_name = val.to_vec();
    } else {
        info.lib_ver = val.to_vec();
    }
    drop(info);
    cx.out.ok();
    Ok(())
}

/// Parses ON / OFF.
fn on_off(arg: &[u8]) -> Result<bool, CommandError> {
    if arg.eq_ignore_ascii_case(b"ON") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"OFF") {
        Ok(false)
    } else {
        Err(E(SYNTAX))
    }
}

/// `CLIENT NO-EVICT <ON | OFF>`: exempts the connection from client eviction (flag `e`).
/// O(1).
fn no_evict(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let on = on_off(args[2])?;
    set_flag(&mut cx.client.handle.info.lock().flags, 'e', on);
    cx.out.ok();
    Ok(())
}

/// `CLIENT NO-TOUCH <ON | OFF>` (Redis 7.2): the connection's commands leave keys' access
/// time alone (flag `T`). O(1).
fn no_touch(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let on = on_off(args[2])?;
    cx.client.no_touch = on;
    set_flag(&mut cx.client.handle.info.lock().flags, 'T', on);
    cx.out.ok();
    Ok(())
}

/// `CLIENT REPLY <ON | OFF | SKIP>`: OFF drops every reply until ON, SKIP drops the next
/// command's reply; neither replies itself. O(1).
fn reply(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mode = args[2];
    let c = &mut *cx.client;
    if mode.eq_ignore_ascii_case(b"ON") {
        c.reply_off = false;
        c.reply_skip = false;
        cx.out.ok();
    } else if mode.eq_ignore_ascii_case(b"OFF") {
        c.reply_off = true;
    } else if mode.eq_ignore_ascii_case(b"SKIP") {
        if !c.reply_off {
            c.reply_skip_next = true;
        }
    } else {
        return Err(E(SYNTAX));
    }
    Ok(())
}

/// Client types, as CLIENT LIST TYPE and CLIENT KILL TYPE name them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    Replica,
    Master,
    PubSub,
}

fn client_type(name: &[u8]) -> Result<ClientType, CommandError> {
    let t = match name.to_ascii_lowercase().as_slice() {
        b"normal" => ClientType::Normal,
        b"replica" | b"slave" => ClientType::Replica,
        b"master" => ClientType::Master,
        b"pubsub" => ClientType::PubSub,
        _ => {
            return Err(CommandError::Owned(format!(
                "ERR Unknown client type '{}'",
                String::from_utf8_lossy(name)
            )))
        }
    };
    Ok(t)
}

/// A client's type, from its flag letters.
fn type_of(h: &ClientHandle) -> ClientType {
    let info = h.info.lock();
    if info.flags.contains('S') {
        ClientType::Replica
    } else if info.flags.contains('M') {
        ClientType::Master
    } else if info.flags.contains('P') {
        ClientType::PubSub
    } else {
        ClientType::Normal
    }
}

/// Appends a client's CLIENT LIST line (with its `\n`). `argv_mem` is the size of the
/// arguments of the command it is running (only the caller is running one).
fn client_line(s: &mut String, server: &Server, h: &ClientHandle, now: u64, argv_mem: usize) {
    let info = h.info.lock();
    let flags = if info.flags.is_empty() {
        "N"
    } else {
        info.flags.as_str()
    };
    // `multi` counts queued commands inside MULTI (flag x), -1 outside.
    let multi = if info.flags.contains('x') {
        i64::from(h.multi.load(Relaxed))
    } else {
        -1
    };
    let cmd = server
        .commands
        .names
        .get(h.last_cmd.load(Relaxed) as usize)
        .map_or("NULL", |n| n.as_str());
    let qbuf = h.query_buf.load(Relaxed);
    let pending = h.output_buf.load(Relaxed);
    let queued = h.msg_bytes.load(Relaxed);
    // Kiln keeps a connection's replies in one buffer, shown as Redis shows its own: the
    // first 16 KiB unsent as the reply buffer's (`obl`), the rest as the reply list
    // (`omem`, in `oll` blocks of 16 KiB), with a subscriber's queued messages. `omem` is
    // what the output buffer limits measure.
    let obl = pending.min(REPLY_BUF);
    let omem = pending.saturating_sub(REPLY_BUF) + queued;
    let oll = omem.div_ceil(REPLY_BUF);
    let tot_mem = h.memory() + argv_mem as u64;
    let _ = writeln!(
        s,
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} \
         ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem={} rbs={} rbp=0 obl={} \
         oll={} omem={} tot-mem={} events={} cmd={} user={} redir={} resp={}",
        h.id,
        h.addr,
        h.laddr,
        h.fd,
        String::from_utf8_lossy(&info.name),
        now.saturating_sub(h.created_ms) / 1000,
        now.saturating_sub(h.last_interaction_ms.load(Relaxed)) / 1000,
        flags,
        h.db.load(Relaxed),
        h.sub.load(Relaxed),
        h.psub.load(Relaxed),
        h.ssub.load(Relaxed),
        multi,
        qbuf,
        h.query_free.load(Relaxed),
        argv_mem,
        h.multi_mem.load(Relaxed),
        h.reply_cap.load(Relaxed),
        obl,
        oll,
        omem,
        tot_mem,
        if pending + queued > 0 { "rw" } else { "r" },
        cmd,
        String::from_utf8_lossy(&info.user),
        server
            .tracking
            .options(h.id)
            .map_or(-1, |o| o.redirect as i64),
        h.resp.load(Relaxed),
    );
}

/// Reply bytes Redis holds in a client's fixed reply buffer before its reply list; the
/// output buffer limits count only what is past them (see `net.rs`).
pub const REPLY_BUF: u64 = 16 * 1024;

/// A client's CLIENT LIST line without its newline, as Redis's log lines about a client
/// show it (client eviction, output and query buffer limits).
pub fn info_line(server: &Server, h: &ClientHandle) -> String {
    let mut s = String::with_capacity(320);
    client_line(&mut s, server, h, crate::clock::now_ms(), 0);
    s.pop();
    s
}

/// Whether client eviction may close this client: not a replica or the primary's link,
/// not one that asked CLIENT NO-EVICT ON.
pub fn evictable(h: &ClientHandle) -> bool {
    !h.info.lock().flags.contains(['S', 'M', 'e'])
}

/// `CLIENT INFO`: the connection's own CLIENT LIST line. O(1).
fn info(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mut s = String::with_capacity(320);
    let argv_mem = args.iter().map(|a| a.len()).sum();
    client_line(&mut s, cx.server, &cx.client.handle, cx.now, argv_mem);
    cx.out.verbatim(s.as_bytes());
    Ok(())
}

/// `CLIENT LIST [TYPE <NORMAL | MASTER | REPLICA | PUBSUB>] [ID client-id ...]`: one line
/// per connection, by id. O(N) connections.
fn list(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (server, now, me) = (cx.server, cx.now, cx.client.id);
    let argv_mem: usize = args.iter().map(|a| a.len()).sum();
    let mut s = String::new();
    let mut line = |h: &ClientHandle| {
        let mem = if h.id == me { argv_mem } else { 0 };
        client_line(&mut s, server, h, now, mem);
    };
    // Lines are built from a snapshot, without holding the registry lock.
    let all = || -> Vec<Arc<ClientHandle>> { server.clients.lock().values().cloned().collect() };
    if args.len() == 2 {
        all().iter().for_each(|h| line(h));
    } else if args.len() == 4 && args[2].eq_ignore_ascii_case(b"TYPE") {
        let t = client_type(args[3])?;
        all()
            .iter()
            .filter(|h| type_of(h) == t)
            .for_each(|h| line(h));
    } else if args.len() > 3 && args[2].eq_ignore_ascii_case(b"ID") {
        let mut ids = Vec::with_capacity(args.len() - 3);
        for a in &args[3..] {
            ids.push(crate::util::parse_i64(a).ok_or(E(INVALID_CLIENT_ID))?);
        }
        for id in ids {
            let h = u64::try_from(id)
                .ok()
                .and_then(|id| server.clients.lock().get(&id).cloned());
            if let Some(h) = h {
                line(&h);
            }
        }
    } else {
        return Err(E(SYNTAX));
    }
    cx.out.verbatim(s.as_bytes());
    Ok(())
}

/// The filters of `CLIENT KILL <filter> <value> ...`.
struct KillFilter<'a> {
    id: Option<u64>,
    kind: Option<ClientType>,
    addr: Option<&'a [u8]>,
    laddr: Option<&'a [u8]>,
    user: Option<&'a [u8]>,
    skipme: bool,
    maxage: Option<u64>,
}

impl KillFilter<'_> {
    fn matches(&self, h: &ClientHandle, now: u64) -> bool {
        self.id.is_none_or(|id| h.id == id)
            && self.kind.is_none_or(|t| type_of(h) == t)
            && self.addr.is_none_or(|a| h.addr.as_bytes() == a)
            && self.laddr.is_none_or(|a| h.laddr.as_bytes() == a)
            && self.user.is_none_or(|u| h.info.lock().user == u)
            && self
                .maxage
                .is_none_or(|max| now.saturating_sub(h.created_ms) / 1000 > max)
    }
}

/// `CLIENT KILL ip:port` (replies OK) or `CLIENT KILL <ID id | TYPE type | USER user |
/// ADDR ip:port | LADDR ip:port | SKIPME yes/no | MAXAGE seconds> ...` (replies the number
/// killed). Killed connections close after their current command; the caller, when it
/// kills itself, gets this reply first. O(N) connections.
fn kill(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() == 3 {
        let target = cx
            .server
            .clients
            .lock()
            .values()
            .find(|h| h.addr.as_bytes() == args[2])
            .cloned();
        let h = target.ok_or(E(NO_SUCH_CLIENT))?;
        close_client(cx, &h);
        cx.out.ok();
        return Ok(());
    }
    let mut f = KillFilter {
        id: None,
        kind: None,
        addr: None,
        laddr: None,
        user: None,
        skipme: true,
        maxage: None,
    };
    let mut i = 2;
    while i < args.len() {
        let Some(&val) = args.get(i + 1) else {
            return Err(E(SYNTAX));
        };
        let opt = args[i].to_ascii_uppercase();
        match opt.as_slice() {
            b"ID" => {
                let id = crate::util::parse_i64(val).filter(|&n| n > 0);
                let id = id.ok_or(E(CLIENT_ID_NOT_POSITIVE))?;
                f.id = Some(id as u64);
            }
            b"TYPE" => f.kind = Some(client_type(val)?),
            b"ADDR" => f.addr = Some(val),
            b"LADDR" => f.laddr = Some(val),
            b"USER" => {
                if cx.server.acl.user(val).is_none() {
                    return Err(CommandError::Owned(format!(
                        "ERR No such user '{}'",
                        String::from_utf8_lossy(val)
                    )));
                }
                f.user = Some(val);
            }
            b"SKIPME" => {
                f.skipme = if val.eq_ignore_ascii_case(b"YES") {
                    true
                } else if val.eq_ignore_ascii_case(b"NO") {
                    false
                } else {
                    return Err(E(SYNTAX));
                };
            }
            b"MAXAGE" => {
                let age = crate::util::parse_i64(val).ok_or(E(MAXAGE_NOT_INT))?;
                f.maxage = Some(age.max(0) as u64);
            }
            _ => return Err(E(SYNTAX)),
        }
        i += 2;
    }
    let now = cx.now;
    let me = cx.client.id;
    let targets: Vec<Arc<ClientHandle>> = cx
        .server
        .clients
        .lock()
        .values()
        // Connections already killed are on their way out: not counted twice.
        .filter(|h| {
            let spared = h.killed.load(Relaxed) || (f.skipme && h.id == me);
            !spared && f.matches(h, now)
        })
        .cloned()
        .collect();
    for h in &targets {
        close_client(cx, h);
    }
    cx.out.int(targets.len() as i64);
    Ok(())
}

/// Closes a connection: another one at once (after its current command), the caller after
/// this reply.
fn close_client(cx: &mut Ctx, h: &ClientHandle) {
    if h.id == cx.client.id {
        cx.client.close_after_reply = true;
    } else {
        h.kill();
    }
}

/// `RESET`: back to a fresh connection's state: database 0, RESP2, no name, replies on,
/// no-evict and no-touch off, and unauthenticated again when a password is required.
/// Replies `+RESET`. O(1).
fn reset(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    super::acl::connect(cx.server, cx.client);
    super::tracking::disable(cx);
    let c = &mut *cx.client;
    c.select(0);
    c.set_resp(2);
    c.reply_off = false;
    c.reply_skip = false;
    c.reply_skip_next = false;
    c.no_touch = false;
    {
        let mut info = c.handle.info.lock();
        info.name.clear();
        set_flag(&mut info.flags, 'e', false);
        set_flag(&mut info.flags, 'T', false);
    }
    cx.client.multi = None;
    {
        let mut info = cx.client.handle.info.lock();
        set_flag(&mut info.flags, 'x', false);
        set_flag(&mut info.flags, 'd', false);
    }
    super::transaction::unwatch_all(cx);
    super::pubsub::unsubscribe_all(cx.server, cx.client);
    super::pubsub::flush_queued(cx);
    super::server::monitor::stop(cx.server, cx.client);
    cx.out.resp3 = false;
    cx.out.simple("RESET");
    Ok(())
}

/// `CLIENT HELP`
fn help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    const LINES: &[&str] = &[
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME",
        "    Return the name of this connection.",
        "ID",
        "    Return the id of this connection.",
        "INFO",
        "    Return information about this connection.",
        "KILL <ip:port>",
        "    Close the connection from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Close every connection matching all the options:",
        "    * ID <client-id>",
        "      The connection with this id.",
        "    * ADDR <ip:port>",
        "      Connections from this address.",
        "    * LADDR <ip:port>",
        "      Connections to this local address.",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Connections of this type.",
        "    * USER <username>",
        "      Connections authenticated as this user.",
        "    * SKIPME (YES|NO)",
        "      Whether to spare this connection (default: yes).",
        "    * MAXAGE <seconds>",
        "      Connections older than this.",
        "LIST [TYPE (NORMAL|MASTER|REPLICA|PUBSUB)] [ID <client-id> [<client-id> ...]]",
        "    Return information about connections, optionally of one type or with some ids.",
        "NO-EVICT (ON|OFF)",
        "    Protect this connection from client eviction, or stop protecting it.",
        "NO-TOUCH (ON|OFF)",
        "    Whether this connection's commands leave keys' access time alone.",
        "PAUSE <timeout> [WRITE|ALL]",
        "    Suspend all, or just write, clients for <timeout> milliseconds.",
        "REPLY (ON|OFF|SKIP)",
        "    Turn the replies to this connection on or off, or skip the next one.",
        "SETINFO <LIB-NAME|LIB-VER> <value>",
        "    Record the name or version of the client library.",
        "SETNAME <name>",
        "    Name this connection.",
        "UNPAUSE",
        "    Stop the current client pause, resuming traffic.",
        "HELP",
        "    Print this help.",
    ];
    cx.out.array(LINES.len());
    for l in LINES {
        cx.out.simple(l);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_keep_redis_order() {
        let mut f = String::new();
        set_flag(&mut f, 'T', true);
        set_flag(&mut f, 'e', true);
        set_flag(&mut f, 'x', true);
        set_flag(&mut f, 'P', true);
        assert_eq!(f, "PxeT");
        set_flag(&mut f, 'e', true);
        assert_eq!(f, "PxeT");
        set_flag(&mut f, 'x', false);
        assert_eq!(f, "PeT");
    }
}
