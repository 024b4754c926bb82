//! Connection commands: PING, ECHO, QUIT, SELECT, AUTH, HELLO.

use super::flags::*;
use super::{Args, CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, CommandError, E, AUTH_NOT_CONFIGURED, DB_INDEX, NOPROTO, SYNTAX, WRONGPASS};

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("ping", -1, FAST | STALE, Keys::None, ping)
        .group("connection")
        .summary("Returns the server's liveliness response.")
        .complexity("O(1)")
        .syntax("[message]"),
    CommandSpec::new("echo", 2, FAST | LOADING | STALE, Keys::None, echo)
        .group("connection")
        .summary("Returns the given string.")
        .complexity("O(1)")
        .syntax("message"),
    CommandSpec::new("quit", -1, ALLOW_BUSY | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH, Keys::None, quit)
        .group("connection")
        .summary("Closes the connection.")
        .complexity("O(1)"),
    CommandSpec::new("select", 2, LOADING | STALE | FAST, Keys::None, select)
        .group("connection")
        .since("1.0.0")
        .summary("Changes the selected database.")
        .complexity("O(1)")
        .syntax("index"),
    CommandSpec::new("auth", -2, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | SENTINEL, Keys::None, auth)
        .group("connection")
        .summary("Authenticates the connection.")
        .complexity("O(N) where N is the number of passwords defined for the user")
        .syntax("[username] password"),
    CommandSpec::new("hello", -1, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | SENTINEL, Keys::None, hello)
        .group("connection")
        .since("6.0.0")
        .summary("Handshakes with the Redis server.")
        .complexity("O(1)")
        .syntax("[protover [AUTH username password] [SETNAME clientname]]"),
];

/// `PING [message]`
fn ping(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    match args.len() {
        1 => cx.out.simple("PONG"),
        2 => cx.out.bulk(args[1]),
        _ => return Err(CommandError::arity("ping")),
    }
    Ok(())
}

/// `ECHO message`
fn echo(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    cx.out.bulk(args[1]);
    Ok(())
}

/// `QUIT`: replies OK, then the connection closes.
fn quit(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    cx.out.ok();
    cx.client.close_after_reply = true;
    Ok(())
}

/// `SELECT index`
fn select(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let idx = super::args::int(args[1])?;
    if idx < 0 || idx as usize >= cx.server.keyspace.dbs.len() {
        return Err(E(DB_INDEX));
    }
    cx.client.select(idx as usize);
    cx.out.ok();
    Ok(())
}

/// Checks credentials against `requirepass` (the default user is the only user).
fn check_password(cx: &mut Ctx, user: Option<&[u8]>, pass: &[u8]) -> CmdResult {
    let required = cx.server.config.read().get("requirepass").to_string();
    let user_ok = user.is_none_or(|u| u == b"default");
    if user_ok && (required.is_empty() || required.as_bytes() == pass) {
        cx.client.authenticated = true;
        Ok(())
    } else {
        Err(E(WRONGPASS))
    }
}

/// `AUTH [username] password`
fn auth(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (user, pass) = match args.len() {
        2 => (None, args[1]),
        3 => (Some(args[1]), args[2]),
        _ => return Err(E(SYNTAX)),
    };
    if user.is_none() && cx.server.config.read().get("requirepass").is_empty() {
        return Err(E(AUTH_NOT_CONFIGURED));
    }
    check_password(cx, user, pass)?;
    cx.out.ok();
    Ok(())
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`
fn hello(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mut a = Args::new(args, 1);
    let mut ver = None;
    if let Some(v) = a.peek() {
        a.next()?;
        let v = crate::util::parse_i64(v).ok_or_else(|| {
            CommandError::err("Protocol version is not an integer or out of range")
        })?;
        if !(2..=3).contains(&v) {
            return Err(E(NOPROTO));
        }
        ver = Some(v as u8);
    }
    let mut name = None;
    while let Some(opt) = a.peek() {
        a.next()?;
        if opt.eq_ignore_ascii_case(b"AUTH") && a.remaining() >= 2 {
            let user = a.next()?;
            let pass = a.next()?;
            check_password(cx, Some(user), pass)?;
        } else if opt.eq_ignore_ascii_case(b"SETNAME") && a.remaining() >= 1 {
            let n = a.next()?;
            super::server::validate_client_name(n)?;
            name = Some(n.to_vec());
        } else {
            return Err(CommandError::Owned(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if !cx.client.authenticated {
        return Err(CommandError::Static(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(n) = name {
        cx.client.handle.info.lock().name = n;
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
