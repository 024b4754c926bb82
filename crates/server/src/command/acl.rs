//! `ACL` and its subcommands, authentication, and the one permission check that the
//! dispatcher (a client's command, and each command EXEC runs) and scripts (`redis.call`,
//! `redis.acl_check_cmd`) share. Users and rules live in `crate::acl`; this file joins
//! them to the command table (ids, key specs) and to connections.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::flags::*;
use super::server::help_reply;
use super::{Cmd, CommandSpec, CommandTable, Ctx, Keys};
use crate::acl::{
    category_bit, has_spaces, key_needs, merge_selectors, Catalog, ChannelArgs, Denied, Entry,
    KeyCache, LogContext, LogEntry, Reason, Rules, Session, User,
};
use crate::error::{self, CmdResult, CommandError, E};
use crate::server::Server;

const ACL_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("cat", -2, NOSCRIPT | LOADING | STALE, Keys::None, cat)
        .group("server")
        .since("6.0.0")
        .summary("List the ACL categories or the commands inside a category")
        .complexity("O(1) since the categories and commands are a fixed set.")
        .syntax("[categoryname]"),
    CommandSpec::new(
        "deluser",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        deluser,
    )
    .group("server")
    .since("6.0.0")
    .summary("Remove the specified ACL users and the associated rules")
    .complexity("O(1) amortized time considering the typical user.")
    .syntax("username [username ...]"),
    CommandSpec::new(
        "dryrun",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        dryrun,
    )
    .group("server")
    .since("7.0.0")
    .summary(
        "Returns whether the user can execute the given command without executing the command.",
    )
    .complexity("O(1).")
    .syntax("username command [arg [arg ...]]"),
    CommandSpec::new(
        "genpass",
        -2,
        NOSCRIPT | LOADING | STALE,
        Keys::None,
        genpass,
    )
    .group("server")
    .since("6.0.0")
    .summary("Generate a pseudorandom secure password to use for ACL users")
    .complexity("O(1)")
    .syntax("[bits]"),
    CommandSpec::new(
        "getuser",
        3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        getuser,
    )
    .group("server")
    .since("6.0.0")
    .summary("Get the rules for a specific ACL user")
    .complexity(
        "O(N). Where N is the number of password, command and pattern rules that the user has.",
    )
    .syntax("username"),
    CommandSpec::new("help", 2, LOADING | STALE, Keys::None, help)
        .group("server")
        .since("6.0.0")
        .summary("Show helpful text about the different subcommands")
        .complexity("O(1)"),
    CommandSpec::new(
        "list",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        list,
    )
    .group("server")
    .since("6.0.0")
    .summary("List the current ACL rules in ACL config file format")
    .complexity("O(N). Where N is the number of configured users."),
    CommandSpec::new(
        "load",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        load,
    )
    .group("server")
    .since("6.0.0")
    .summary("Reload the ACLs from the configured ACL file")
    .complexity("O(N). Where N is the number of configured users."),
    CommandSpec::new(
        "log",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        log,
    )
    .group("server")
    .since("6.0.0")
    .summary("List latest events denied because of ACLs in place")
    .complexity("O(N) with N being the number of entries shown.")
    .syntax("[count | RESET]"),
    CommandSpec::new(
        "save",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        save,
    )
    .group("server")
    .since("6.0.0")
    .summary("Save the current ACL rules in the configured ACL file")
    .complexity("O(N). Where N is the number of configured users."),
    CommandSpec::new(
        "setuser",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        setuser,
    )
    .group("server")
    .since("6.0.0")
    .summary("Modify or create the rules for a specific ACL user")
    .complexity("O(N). Where N is the number of rules provided.")
    .syntax("username [rule [rule ...]]"),
    CommandSpec::new(
        "users",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        users,
    )
    .group("server")
    .since("6.0.0")
    .summary("List the username of all the configured ACL rules")
    .complexity("O(N). Where N is the number of configured users."),
    CommandSpec::new("whoami", 2, NOSCRIPT | LOADING | STALE, Keys::None, whoami)
        .group("server")
        .since("6.0.0")
        .summary("Return the name of the user associated to the current connection")
        .complexity("O(1)"),
];

pub(super) const COMMANDS: &[CommandSpec] =
    &[
        CommandSpec::new("acl", -2, 0, Keys::None, super::server::container)
            .group("server")
            .since("6.0.0")
            .summary("A container for Access List Control commands ")
            .complexity("Depends on subcommand.")
            .subcommands(ACL_SUBCOMMANDS),
    ];

/// The command table as ACL rules see it: every id's full name, categories, parent and
/// subcommands.
pub fn catalog(table: &CommandTable) -> Catalog {
    let mut entries: Vec<Option<Entry>> = (0..table.names.len()).map(|_| None).collect();
    let channels = |name: &str| match name {
        "publish" | "spublish" => ChannelArgs::First,
        "subscribe" | "ssubscribe" => ChannelArgs::All,
        "psubscribe" => ChannelArgs::AllPatterns,
        _ => ChannelArgs::None,
    };
    let entry = |c: &Cmd, parent: Option<usize>| Entry {
        fullname: c.fullname.clone(),
        categories: c.meta.acl,
        parent,
        subs: Vec::new(),
        no_auth: c.spec.flags & NO_AUTH != 0,
        channels: channels(&c.fullname),
    };
    for c in table.iter() {
        let mut e = entry(c, None);
        let mut subs: Vec<&Cmd> = c.subs.values().collect();
        subs.sort_by_key(|s| s.id);
        for s in subs {
            e.subs.push(s.id);
            entries[s.id] = Some(entry(s, Some(c.id)));
        }
        entries[c.id] = Some(e);
    }
    Catalog::new(entries.into_iter().flatten().collect())
}

/// Where a permission check runs: its error texts and its ACL LOG context differ.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A client's own command (or one queued in MULTI).
    Client,
    /// A queued command as EXEC runs it: the rules may have changed since it was queued.
    Exec,
    /// `redis.call` / `redis.pcall` from a script.
    Script,
}

/// Checks the client's user may run `cmd` with these arguments. A refusal is logged (ACL
/// LOG) and returned as the error Redis gives in that place.
pub(crate) fn check(cx: &mut Ctx, cmd: &Cmd, args: &[&[u8]], place: Place) -> CmdResult {
    let Err(d) = allowed(cx, cmd, args) else {
        return Ok(());
    };
    let context = match place {
        Place::Client if cx.client.multi.is_none() => LogContext::Toplevel,
        Place::Client | Place::Exec => LogContext::Multi,
        Place::Script => LogContext::Lua,
    };
    let object = match d.reason {
        Reason::Command => cmd.fullname.as_bytes().to_vec(),
        _ => args[d.pos].to_vec(),
    };
    log_denied(cx, d.reason, context, object, None);
    Err(match (place, d.reason) {
        (Place::Client, Reason::Command) => CommandError::Owned(format!(
            "NOPERM this user has no permissions to run the '{}' command",
            cmd.fullname
        )),
        _ => E(denied_text(d.reason, place)),
    })
}

/// The check without its consequences (`redis.acl_check_cmd`): the rules and refusal.
fn allowed(cx: &mut Ctx, cmd: &Cmd, args: &[&[u8]]) -> Result<(), Denied> {
    let server = cx.server;
    let Some(session) = cx.client.acl.as_mut() else {
        return Ok(());
    };
    session.refresh(&server.acl);
    if session.unrestricted {
        return Ok(());
    }
    user_allows(&server.acl.catalog, &session.rules, cmd, args)
}

/// Whether `rules` allow `cmd` with `args` (keys found from the command's key specs).
fn user_allows(catalog: &Catalog, rules: &Rules, cmd: &Cmd, args: &[&[u8]]) -> Result<(), Denied> {
    rules.check(catalog, cmd.id, args, &mut key_cache(cmd, args))
}

/// The command's keys (from its key specs) and the permissions each needs, found once.
fn key_cache<'a>(
    cmd: &'a Cmd,
    args: &'a [&'a [u8]],
) -> KeyCache<impl FnOnce() -> Vec<(usize, u8)> + 'a> {
    KeyCache::new(move || {
        cmd.keys_and_flags(args)
            .map(|ks| ks.into_iter().map(|(p, f)| (p, key_needs(f))).collect())
            .unwrap_or_default()
    })
}

/// Whether the client may read every key with this command (SORT's BY and GET).
pub(crate) fn reads_every_key(cx: &mut Ctx, args: &[&[u8]]) -> bool {
    let Some(session) = cx.client.acl.as_mut() else {
        return true;
    };
    session.refresh(&cx.server.acl);
    if session.unrestricted {
        return true;
    }
    let Ok(cmd) = cx.server.commands.resolve(args) else {
        return true;
    };
    let rules = session.rules.clone();
    rules.reads_every_key(
        &cx.server.acl.catalog,
        cmd.id,
        args,
        &mut key_cache(cmd, args),
    )
}

/// `redis.acl_check_cmd`: whether the script's user may run the command; nothing logged.
pub(crate) fn permits(cx: &mut Ctx, cmd: &Cmd, args: &[&[u8]]) -> bool {
    allowed(cx, cmd, args).is_ok()
}

fn denied_text(reason: Reason, place: Place) -> &'static str {
    match (place, reason) {
        (Place::Client, Reason::Key) => error::NOPERM_KEY,
        (Place::Client, Reason::Channel) => error::NOPERM_CHANNEL,
        (Place::Client, _) => error::NOPERM_KEY,
        (Place::Exec, Reason::Key) => error::NOPERM_EXEC_KEY,
        (Place::Exec, Reason::Channel) => error::NOPERM_EXEC_CHANNEL,
        (Place::Exec, _) => error::NOPERM_EXEC_COMMAND,
        (Place::Script, Reason::Key) => error::SCRIPT_ACL_KEY,
        (Place::Script, Reason::Channel) => error::SCRIPT_ACL_CHANNEL,
        (Place::Script, _) => error::SCRIPT_ACL_COMMAND,
    }
}

fn log_denied(
    cx: &mut Ctx,
    reason: Reason,
    context: LogContext,
    object: Vec<u8>,
    username: Option<&[u8]>,
) {
    let username = match (username, &cx.client.acl) {
        (Some(u), _) => u.to_vec(),
        (None, Some(s)) => s.user.name.clone(),
        (None, None) => b"default".to_vec(),
    };
    cx.server.acl.log(LogEntry {
        count: 1,
        reason,
        context,
        object,
        username,
        ctime_ms: crate::clock::now_ms(),
        client_info: super::client::info_line(cx.server, &cx.client.handle),
    });
}

/// Authenticates the connection as `user` (AUTH, HELLO ... AUTH). A failure is logged and
/// leaves the connection as it was.
pub(crate) fn authenticate(cx: &mut Ctx, cmd_name: &[u8], user: &[u8], pass: &[u8]) -> CmdResult {
    match cx.server.acl.authenticate(user, pass) {
        Some(u) => {
            cx.client.authenticated = true;
            set_user(cx.server, cx.client, u);
            Ok(())
        }
        None => {
            let context = if cx.client.multi.is_some() {
                LogContext::Multi
            } else {
                LogContext::Toplevel
            };
            log_denied(cx, Reason::Auth, context, cmd_name.to_vec(), Some(user));
            Err(E(error::WRONGPASS))
        }
    }
}

/// Makes `user` the connection's user (and CLIENT LIST's `user=`).
pub(crate) fn set_user(server: &Server, client: &mut crate::client::Client, user: Arc<User>) {
    client.handle.info.lock().user = user.name.clone();
    client.acl = Some(Session::new(&server.acl, user));
}

/// A new connection's user: the default one.
pub fn connect(server: &Server, client: &mut crate::client::Client) {
    client.authenticated = !server.acl.auth_required();
    set_user(server, client, server.acl.default_user());
}

/// Whether the default user accepts AUTH with a password alone.
pub(crate) fn default_has_password(server: &Server) -> bool {
    !server.acl.default_user().rules().nopass
}

/// Closes the connections authenticated as any of `users` (deleted ones). The calling
/// connection's is closed after its reply, as Redis does.
fn kill_clients_of(cx: &mut Ctx, names: &[Vec<u8>]) {
    let me = cx.client.id;
    for h in cx.server.clients.lock().values() {
        if names.contains(&h.info.lock().user) {
            if h.id == me {
                cx.client.close_after_reply = true;
            } else {
                h.kill();
            }
        }
    }
    if names
        .iter()
        .any(|n| cx.client.acl.as_ref().is_some_and(|s| s.user.name == *n))
    {
        cx.client.authenticated = false;
        cx.client.close_after_reply = true;
    }
}

/// After a user's channel rules narrowed: closes its connections subscribed to a channel
/// or pattern the new rules do not allow (Redis's `ACLKillPubsubClientsIfNeeded`).
fn kill_denied_subscribers(cx: &mut Ctx, name: &[u8]) {
    let Some(u) = cx.server.acl.user(name) else {
        return;
    };
    let rules = u.rules();
    let me = cx.client.id;
    let handles: Vec<_> = cx
        .server
        .clients
        .lock()
        .values()
        .filter(|h| h.info.lock().user == name)
        .filter(|h| h.sub.load(Relaxed) + h.psub.load(Relaxed) + h.ssub.load(Relaxed) > 0)
        .cloned()
        .collect();
    for h in handles {
        let denied = cx
            .server
            .pubsub
            .subscriptions_of(h.id)
            .into_iter()
            .any(|(kind, ch)| {
                let literal = kind == crate::pubsub::Kind::Pattern;
                !rules.channel_allowed(&ch, literal)
            });
        if denied {
            if h.id == me {
                cx.client.close_after_reply = true;
            } else {
                h.kill();
            }
        }
    }
}

/// `ACL SETUSER username [rule ...]`: all rules or none.
fn setuser(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let name = args[2];
    if has_spaces(name) {
        return Err(CommandError::err(
            "Usernames can't contain spaces or null characters",
        ));
    }
    let ops = merge_selectors(&args[3..]).map_err(|i| {
        CommandError::Owned(format!(
            "ERR Unmatched parenthesis in acl selector starting at '{}'.",
            String::from_utf8_lossy(args[i + 3])
        ))
    })?;
    let (rules, old) = cx.server.acl.staged(name, &ops).map_err(|(op, e)| {
        CommandError::Owned(format!(
            "ERR Error in ACL SETUSER modifier '{}': {}",
            String::from_utf8_lossy(&op),
            e.text()
        ))
    })?;
    let narrowed = cx.server.acl.set_user(name, rules);
    if narrowed && old.is_some() {
        kill_denied_subscribers(cx, name);
    }
    cx.out.ok();
    Ok(())
}

/// `ACL DELUSER username [username ...]`
fn deluser(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args[2..].iter().any(|n| *n == b"default") {
        return Err(CommandError::err("The 'default' user cannot be removed"));
    }
    let gone = cx.server.acl.delete(&args[2..]);
    let names: Vec<Vec<u8>> = gone.iter().map(|u| u.name.clone()).collect();
    kill_clients_of(cx, &names);
    cx.out.int(gone.len() as i64);
    Ok(())
}

/// `ACL GETUSER username`
fn getuser(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let Some(u) = cx.server.acl.user(args[2]) else {
        cx.out.null();
        return Ok(());
    };
    let rules = u.rules();
    let selectors = rules.selector_fields(&cx.server.acl.catalog);
    let out = &mut cx.out;
    out.map(6);
    out.bulk(b"flags");
    let flags = rules.flag_names();
    out.set(flags.len());
    for f in flags {
        out.bulk(f.as_bytes());
    }
    out.bulk(b"passwords");
    out.array(rules.passwords().len());
    for p in rules.passwords() {
        out.bulk(p.as_bytes());
    }
    let fields = |out: &mut crate::reply::Out, f: &[String; 3]| {
        for (name, v) in ["commands", "keys", "channels"].iter().zip(f) {
            out.bulk(name.as_bytes());
            out.bulk(v.as_bytes());
        }
    };
    fields(out, &selectors[0]);
    out.bulk(b"selectors");
    out.array(selectors.len() - 1);
    for s in &selectors[1..] {
        out.map(3);
        fields(out, s);
    }
    Ok(())
}

/// The `user name rules` line of every user, by name (ACL LIST, ACL SAVE, CONFIG REWRITE).
pub fn user_lines(server: &Server) -> Vec<String> {
    server
        .acl
        .users()
        .iter()
        .map(|u| {
            format!(
                "user {} {}",
                String::from_utf8_lossy(&u.name),
                u.rules().describe(&server.acl.catalog)
            )
        })
        .collect()
}

/// `ACL LIST`
fn list(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let lines = user_lines(cx.server);
    cx.out.bulks(lines.iter().map(|l| l.as_bytes()));
    Ok(())
}

/// `ACL USERS`
fn users(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let users = cx.server.acl.users();
    cx.out.bulks(users.iter().map(|u| &u.name[..]));
    Ok(())
}

/// `ACL WHOAMI`
fn whoami(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    match &cx.client.acl {
        Some(s) => cx.out.bulk(&s.user.name.clone()),
        None => cx.out.null(),
    }
    Ok(())
}

/// `ACL CAT [category]`
fn cat(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    match args.get(2) {
        None => cx
            .out
            .bulks(crate::acl::CATEGORIES.iter().map(|c| c.as_bytes())),
        Some(c) if args.len() == 3 => {
            let bit = category_bit(c).ok_or_else(|| {
                let shown = &c[..c.len().min(128)];
                CommandError::Owned(format!(
                    "ERR Unknown category '{}'",
                    String::from_utf8_lossy(shown)
                ))
            })?;
            let names = cx.server.acl.catalog.in_category(bit);
            cx.out.bulks(names.iter().map(|n| n.as_bytes()));
        }
        Some(_) => return Err(subcommand_syntax(args)),
    }
    Ok(())
}

fn subcommand_syntax(args: &[&[u8]]) -> CommandError {
    CommandError::bad_subcommand(args[0], args[1])
}

/// `ACL GENPASS [bits]`: random hex from the OS's generator.
fn genpass(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(subcommand_syntax(args));
    }
    let bits = match args.get(2) {
        Some(b) => crate::util::parse_i64(b).ok_or(E(error::NOT_INTEGER))?,
        None => 256,
    };
    if !(1..=4096).contains(&bits) {
        return Err(CommandError::err(
            "ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096",
        ));
    }
    let chars = (bits as usize).div_ceil(4);
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let mut hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    cx.out.bulk(hex.as_bytes());
    Ok(())
}

/// `ACL LOG [count | RESET]`
fn log(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(subcommand_syntax(args));
    }
    let mut count = 10usize;
    if let Some(a) = args.get(2) {
        if a.eq_ignore_ascii_case(b"RESET") {
            cx.server.acl.log_reset();
            cx.out.ok();
            return Ok(());
        }
        count = crate::util::parse_i64(a)
            .ok_or(E(error::NOT_INTEGER))?
            .max(0) as usize;
    }
    let entries = cx.server.acl.log_entries(count);
    let now = crate::clock::now_ms();
    let out = &mut cx.out;
    out.array(entries.len());
    for e in entries {
        out.map(7);
        out.bulk(b"count");
        out.int(e.count as i64);
        out.bulk(b"reason");
        out.bulk(e.reason_name().as_bytes());
        out.bulk(b"context");
        out.bulk(e.context_name().as_bytes());
        out.bulk(b"object");
        out.bulk(&e.object);
        out.bulk(b"username");
        out.bulk(&e.username);
        out.bulk(b"age-seconds");
        let age = now.saturating_sub(e.ctime_ms) as f64 / 1000.0;
        out.double_text(crate::util::fmt_g17(age).as_bytes());
        out.bulk(b"client-info");
        out.bulk(e.client_info.as_bytes());
    }
    Ok(())
}

/// `ACL DRYRUN username command [arg ...]`: whether the user could run the command; a
/// refusal is described, not logged.
fn dryrun(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let Some(u) = cx.server.acl.user(args[2]) else {
        return Err(CommandError::Owned(format!(
            "ERR User '{}' not found",
            String::from_utf8_lossy(args[2])
        )));
    };
    let argv = &args[3..];
    let Ok(cmd) = cx.server.commands.resolve(argv) else {
        return Err(CommandError::Owned(format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(args[3])
        )));
    };
    let rules = u.rules();
    match user_allows(&cx.server.acl.catalog, &rules, cmd, argv) {
        Ok(()) => cx.out.ok(),
        Err(d) => {
            let text = match d.reason {
                Reason::Command => format!(
                    "This user has no permissions to run the '{}' command",
                    cmd.fullname
                ),
                Reason::Key => format!(
                    "This user has no permissions to access the '{}' key",
                    String::from_utf8_lossy(argv[d.pos])
                ),
                _ => format!(
                    "This user has no permissions to access the '{}' channel",
                    String::from_utf8_lossy(argv[d.pos])
                ),
            };
            cx.out.bulk(text.as_bytes());
        }
    }
    Ok(())
}

fn aclfile(server: &Server) -> Option<String> {
    let f = server.config.read().get("aclfile").to_string();
    (!f.is_empty()).then_some(f)
}

/// Users read from an ACL file's text, or Redis's one-line description of every problem
/// (nothing is loaded then).
pub fn parse_acl_file(
    server: &Server,
    file: &str,
    text: &str,
) -> Result<Vec<(Vec<u8>, Rules)>, String> {
    let acl = &server.acl;
    let pubsub_all = acl.pubsub_all.load(Relaxed);
    let mut errors = String::new();
    let mut users: Vec<(Vec<u8>, Rules)> = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = line.trim_matches([' ', '\t', '\r', '\n']);
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).collect();
        if words.is_empty() {
            continue;
        }
        if words[0] != "user" || words.len() < 2 {
            errors.push_str(&format!(
                "{file}:{n} should start with user keyword followed by the username. "
            ));
            continue;
        }
        let name = words[1].as_bytes();
        if has_spaces(name) {
            errors.push_str(&format!(
                "'{file}:{n}: username '{}' contains invalid characters. ",
                words[1]
            ));
            continue;
        }
        if users.iter().any(|(u, _)| u == name) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{}' found on line {n}. ",
                words[1]
            ));
            continue;
        }
        let raw: Vec<&[u8]> = words[2..].iter().map(|w| w.as_bytes()).collect();
        let mut rules = Rules::new(&acl.catalog, pubsub_all);
        match merge_selectors(&raw) {
            Err(_) => errors.push_str(&format!(
                "{file}:{n}: Unmatched parenthesis in selector definition."
            )),
            Ok(ops) => {
                for op in ops {
                    if let Err(e) = rules.apply(&acl.catalog, &op, pubsub_all) {
                        errors.push_str(&format!("{file}:{n}: {}. ", e.text()));
                    }
                }
            }
        }
        users.push((name.to_vec(), rules));
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        errors.push_str(
            "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
        );
        Err(errors)
    }
}

/// Loads the ACL file, replacing every user; connections of users that are gone close.
pub fn load_file(server: &Server, file: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "Error loading ACLs, opening file '{file}': {}",
            super::server::os_error(&e)
        )
    })?;
    let users = parse_acl_file(server, file, &text)?;
    let gone = server.acl.replace_all(users);
    let names: Vec<Vec<u8>> = gone.iter().map(|u| u.name.clone()).collect();
    for h in server.clients.lock().values() {
        if names.contains(&h.info.lock().user) {
            h.kill();
        }
    }
    Ok(())
}

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

/// `ACL LOAD`
fn load(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let file = aclfile(cx.server).ok_or(E(NO_ACLFILE))?;
    load_file(cx.server, &file).map_err(|e| CommandError::Owned(format!("ERR {e}")))?;
    if cx
        .client
        .acl
        .as_ref()
        .is_some_and(|s| s.user.deleted.load(Relaxed))
    {
        cx.client.close_after_reply = true;
    }
    cx.out.ok();
    Ok(())
}

/// `ACL SAVE`: the users to the ACL file, through a temporary file renamed over it.
fn save(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let file = aclfile(cx.server).ok_or(E(NO_ACLFILE))?;
    let mut text = String::new();
    for l in user_lines(cx.server) {
        text.push_str(&l);
        text.push('\n');
    }
    let tmp = format!(
        "{file}.tmp-{}-{}",
        std::process::id(),
        crate::clock::now_ms()
    );
    let written = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!("Writing ACL file for ACL SAVE: {e}");
        return Err(CommandError::err(
            "There was an error trying to save the ACLs. Please check the server logs for more information",
        ));
    }
    cx.out.ok();
    Ok(())
}

/// `ACL HELP`
fn help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    help_reply(
        &mut cx.out,
        "ACL",
        &[
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOAD",
            "    Reload users from the ACL file.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SAVE",
            "    Save the current config to the ACL file.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user with the specified attributes.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
        ],
    );
    Ok(())
}

/// Loads the users the configuration names at startup: `user` lines, or the ACL file (not
/// both, as Redis refuses). `requirepass` has set the default user's password already; a
/// `user default` line replaces it.
pub fn load_at_startup(server: &Server) -> Result<(), String> {
    let (lines, file) = {
        let c = server.config.read();
        (c.users.clone(), c.get("aclfile").to_string())
    };
    if !file.is_empty() && !lines.is_empty() {
        return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
    }
    let acl = &server.acl;
    let pubsub_all = acl.pubsub_all.load(Relaxed);
    for words in &lines {
        let Some((name, rest)) = words.split_first() else {
            continue;
        };
        if has_spaces(name.as_bytes()) {
            return Err("Spaces not allowed in ACL usernames".into());
        }
        let raw: Vec<&[u8]> = rest.iter().map(|w| w.as_bytes()).collect();
        let ops = merge_selectors(&raw)
            .map_err(|_| "Unmatched parenthesis in acl selector".to_string())?;
        let mut rules = match acl.user(name.as_bytes()) {
            Some(u) if name == "default" => {
                let mut r = (*u.rules()).clone();
                let _ = r.apply(&acl.catalog, b"reset", pubsub_all);
                r
            }
            _ => Rules::new(&acl.catalog, pubsub_all),
        };
        for op in &ops {
            rules.apply(&acl.catalog, op, pubsub_all).map_err(|e| {
                format!(
                    "Error loading ACL rule '{}' for the user named '{name}': {}",
                    String::from_utf8_lossy(op),
                    e.text()
                )
            })?;
        }
        if !rules.enabled {
            tracing::info!("The user '{name}' is disabled (there is no 'on' modifier in the user description). Make sure this is not a configuration error.");
        }
        acl.set_user(name.as_bytes(), rules);
    }
    if !file.is_empty() {
        load_file(server, &file)
            .map_err(|e| format!("Aborting Redis startup because of ACL errors: {e}"))?;
    }
    Ok(())
}
