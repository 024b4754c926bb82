//! Connection commands: PING, ECHO, QUIT, SELECT, AUTH, HELLO.

use super::flags::*;
use super::{CommandSpec, Ctx, Keys};
use crate::error::{
    CmdResult, CommandError, AUTH_NOT_CONFIGURED, DB_INDEX, E, NOAUTH_HELLO, NOPROTO,
    PROTOVER_NOT_INT, SYNTAX,
};

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("ping", -1, FAST, Keys::None, ping)
        .group("connection")
        .summary("Returns the server's liveliness response.")
        .complexity("O(1)")
        .syntax("[message]"),
    CommandSpec::new("echo", 2, FAST | LOADING | STALE, Keys::None, echo)
        .group("connection")
        .summary("Returns the given string.")
        .complexity("O(1)")
        .syntax("message"),
    CommandSpec::new(
        "quit",
        -1,
        ALLOW_BUSY | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        Keys::None,
        quit,
    )
    .group("connection")
    .summary("Closes the connection.")
    .complexity("O(1)"),
    CommandSpec::new("select", 2, LOADING | STALE | FAST, Keys::None, select)
        .group("connection")
        .since("1.0.0")
        .summary("Changes the selected database.")
        .complexity("O(1)")
        .syntax("index"),
    CommandSpec::new(
        "auth",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | SENTINEL | ALLOW_BUSY,
        Keys::None,
        auth,
    )
    .group("connection")
    .summary("Authenticates the connection.")
    .complexity("O(N) where N is the number of passwords defined for the user")
    .syntax("[username] password"),
    CommandSpec::new(
        "hello",
        -1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | SENTINEL | ALLOW_BUSY,
        Keys::None,
        hello,
    )
    .group("connection")
    .since("6.0.0")
    .summary("Handshakes with the Redis server.")
    .complexity("O(1)")
    .syntax("[protover [AUTH username password] [SETNAME clientname]]"),
];

/// `PING [message]`: PONG, or the message as a bulk string. O(1).
fn ping(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() <= 2 && !cx.client.resp3 && cx.client.subscribed() {
        // Subscribed RESP2 clients get a pub/sub-shaped pong.
        cx.out.array(2);
        cx.out.bulk(b"pong");
        cx.out.bulk(args.get(1).copied().unwrap_or_default());
        return Ok(());
    }
    match args.len() {
        1 => cx.out.simple("PONG"),
        2 => cx.out.bulk(args[1]),
        _ => return Err(CommandError::arity("ping")),
    }
    Ok(())
}

/// `ECHO message`: the message. O(1).
fn echo(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    cx.out.bulk(args[1]);
    Ok(())
}

/// `QUIT`: replies OK, then the connection closes. O(1).
fn quit(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    cx.out.ok();
    cx.client.close_after_reply = true;
    Ok(())
}

/// `SELECT index`: the database the connection's later commands use. O(1).
fn select(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let idx = super::args::parse_db(args[1])?;
    if cx.server.cluster.is_some() && idx != 0 {
        return Err(CommandError::err("SELECT is not allowed in cluster mode"));
    }
    if idx < 0 || idx as usize >= cx.server.keyspace.dbs.len() {
        return Err(E(DB_INDEX));
    }
    cx.client.select(idx as usize);
    cx.out.ok();
    Ok(())
}

/// `AUTH [username] password`: authenticates the connection. O(1).
fn auth(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (user, pass) = match args.len() {
        2 => (None, args[1]),
        3 => (Some(args[1]), args[2]),
        _ => return Err(E(SYNTAX)),
    };
    if user.is_none() && !super::acl::default_has_password(cx.server) {
        return Err(E(AUTH_NOT_CONFIGURED));
    }
    super::acl::authenticate(cx, args[0], user.unwrap_or(b"default"), pass)?;
    cx.out.ok();
    Ok(())
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`: switches protocol,
/// authenticates and names the connection in one round trip, and describes the server.
/// Options take effect in order, as in Redis: a name set before a failing option stays
/// set. O(1).
fn hello(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mut ver = None;
    if let Some(v) = args.get(1) {
        let v = crate::util::parse_i64(v).ok_or(E(PROTOVER_NOT_INT))?;
        if !(2..=3).contains(&v) {
            return Err(E(NOPROTO));
        }
        ver = Some(v as u8);
    }
    let mut i = 2;
    while i < args.len() {
        let (opt, more) = (args[i], args.len() - 1 - i);
        if opt.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            super::acl::authenticate(cx, args[0], args[i + 1], args[i + 2])?;
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            super::server::validate_client_name(args[i + 1])?;
            cx.client.handle.info.lock().name = args[i + 1].to_vec();
            i += 2;
        } else {
            return Err(CommandError::Owned(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if !cx.client.authenticated {
        return Err(E(NOAUTH_HELLO));
    }
    if let Some(v) = ver {
        cx.client.set_resp(v);
        cx.out.resp3 = v == 3;
    }
    let proto = if cx.client.resp3 { 3 } else { 2 };
    let out = &mut cx.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(crate::server::REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(proto);
    out.bulk(b"id");
    out.int(cx.client.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}
