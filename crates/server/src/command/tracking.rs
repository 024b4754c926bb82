//! CLIENT TRACKING, CACHING, GETREDIR and TRACKINGINFO, and the dispatcher's two hooks
//! into `crate::tracking`: a tracking client's reads are remembered ([`remember_read`]),
//! and every changed key is signalled ([`Ctx::key_changed`](super::Ctx::key_changed)).

use std::sync::Arc;

use super::{Cmd, Ctx};
use crate::error::{CmdResult, CommandError, E, SYNTAX};
use crate::pubsub::Subscriber;
use crate::tracking::{prefix_conflict, Options};

/// A connection's tracking state, beside its options in `server.tracking`.
#[derive(Default)]
pub struct ClientTracking {
    pub on: bool,
    pub opts: Options,
    /// CLIENT CACHING YES (OPTIN) / NO (OPTOUT) was given for the next command.
    pub caching: bool,
}

fn flag(cx: &mut Ctx, letter: char, on: bool) {
    super::client::set_flag(&mut cx.client.handle.info.lock().flags, letter, on);
}

/// The connection's message queue, made if it has none, and known as a redirect target.
pub(crate) fn own_queue(cx: &mut Ctx) -> Arc<Subscriber> {
    let c = &mut *cx.client;
    let q = c
        .subscriber
        .get_or_insert_with(|| {
            Arc::new(Subscriber::for_client(
                c.id,
                c.resp3,
                Some(c.handle.clone()),
            ))
        })
        .clone();
    cx.server.tracking.register_queue(cx.client.id, &q);
    q
}

/// `CLIENT TRACKING <ON | OFF> [REDIRECT id] [PREFIX prefix ...] [BCAST] [OPTIN] [OPTOUT]
/// [NOLOOP]`, with Redis's checks in its order.
pub(super) fn tracking(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mut opts = Options::default();
    let mut new_prefixes: Vec<Vec<u8>> = Vec::new();
    let mut j = 3;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let a = args[j];
        if a.eq_ignore_ascii_case(b"redirect") && more > 0 {
            j += 1;
            if opts.redirect != 0 {
                return Err(CommandError::err(
                    "A client can only redirect to a single other client",
                ));
            }
            let id = crate::util::parse_i64(args[j]).ok_or(E(crate::error::NOT_INTEGER))?;
            let exists = id > 0 && cx.server.clients.lock().contains_key(&(id as u64));
            if !exists {
                return Err(CommandError::err(
                    "The client ID you want redirect to does not exist",
                ));
            }
            opts.redirect = id as u64;
        } else if a.eq_ignore_ascii_case(b"bcast") {
            opts.bcast = true;
        } else if a.eq_ignore_ascii_case(b"optin") {
            opts.optin = true;
        } else if a.eq_ignore_ascii_case(b"optout") {
            opts.optout = true;
        } else if a.eq_ignore_ascii_case(b"noloop") {
            opts.noloop = true;
        } else if a.eq_ignore_ascii_case(b"prefix") && more > 0 {
            j += 1;
            new_prefixes.push(args[j].to_vec());
        } else {
            return Err(E(SYNTAX));
        }
        j += 1;
    }
    let mode = args[2];
    if mode.eq_ignore_ascii_case(b"on") {
        let cur = &cx.client.tracking;
        if !opts.bcast && !new_prefixes.is_empty() {
            return Err(CommandError::err(
                "PREFIX option requires BCAST mode to be enabled",
            ));
        }
        if cur.on && cur.opts.bcast != opts.bcast {
            return Err(CommandError::err("You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode."));
        }
        if opts.bcast && (opts.optin || opts.optout) {
            return Err(CommandError::err(
                "OPTIN and OPTOUT are not compatible with BCAST",
            ));
        }
        if opts.optin && opts.optout {
            return Err(CommandError::err(
                "You can't specify both OPTIN mode and OPTOUT mode",
            ));
        }
        if cur.on && ((opts.optin && cur.opts.optout) || (opts.optout && cur.opts.optin)) {
            return Err(CommandError::err("You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode."));
        }
        let mut prefixes = if cur.on {
            cur.opts.prefixes.clone()
        } else {
            Vec::new()
        };
        if opts.bcast {
            prefix_conflict(&prefixes, &new_prefixes).map_err(CommandError::Owned)?;
            if new_prefixes.is_empty() && !prefixes.iter().any(Vec::is_empty) {
                new_prefixes.push(Vec::new());
            }
            prefixes.extend(new_prefixes);
            // Listed in byte order, as Redis's radix tree lists them.
            prefixes.sort();
        }
        opts.prefixes = prefixes;
        own_queue(cx);
        let resp3 = cx.client.resp3;
        cx.server.tracking.enable(cx.client.id, resp3, opts.clone());
        let bcast = opts.bcast;
        cx.client.tracking = ClientTracking {
            on: true,
            opts,
            caching: false,
        };
        flag(cx, 't', true);
        flag(cx, 'R', false);
        flag(cx, 'B', bcast);
    } else if mode.eq_ignore_ascii_case(b"off") {
        disable(cx);
    } else {
        return Err(E(SYNTAX));
    }
    cx.out.ok();
    Ok(())
}

/// Turns tracking off for the connection (CLIENT TRACKING OFF, RESET).
pub(crate) fn disable(cx: &mut Ctx) {
    if std::mem::take(&mut cx.client.tracking).on {
        cx.server.tracking.disable(cx.client.id);
    }
    flag(cx, 't', false);
    flag(cx, 'R', false);
    flag(cx, 'B', false);
}

/// `CLIENT CACHING <YES | NO>`: the next command's reads are tracked (OPTIN) or not
/// (OPTOUT).
pub(super) fn caching(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let t = &cx.client.tracking;
    if !t.on {
        return Err(CommandError::err("CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"));
    }
    let opt = args[2];
    if opt.eq_ignore_ascii_case(b"yes") {
        if !t.opts.optin {
            return Err(CommandError::err(
                "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
    } else if opt.eq_ignore_ascii_case(b"no") {
        if !t.opts.optout {
            return Err(CommandError::err(
                "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
    } else {
        return Err(E(SYNTAX));
    }
    cx.client.tracking.caching = true;
    cx.out.ok();
    Ok(())
}

/// The redirect as CLIENT GETREDIR and TRACKINGINFO report it: -1 off, 0 none, else the id.
fn redirect(cx: &Ctx) -> i64 {
    let t = &cx.client.tracking;
    if t.on {
        t.opts.redirect as i64
    } else {
        -1
    }
}

/// `CLIENT GETREDIR`
pub(super) fn getredir(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let r = redirect(cx);
    cx.out.int(r);
    Ok(())
}

/// `CLIENT TRACKINGINFO`: flags, redirect and prefixes, in Redis's shape.
pub(super) fn trackinginfo(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let t = &cx.client.tracking;
    let mut flags: Vec<&str> = Vec::new();
    if !t.on {
        flags.push("off");
    } else {
        flags.push("on");
        if t.opts.bcast {
            flags.push("bcast");
        }
        if t.opts.optin {
            flags.push("optin");
            if t.caching {
                flags.push("caching-yes");
            }
        }
        if t.opts.optout {
            flags.push("optout");
            if t.caching {
                flags.push("caching-no");
            }
        }
        if t.opts.noloop {
            flags.push("noloop");
        }
        if t.opts.redirect != 0 && cx.server.tracking.broken_redirect(cx.client.id) {
            flags.push("broken_redirect");
        }
    }
    let prefixes = t.opts.prefixes.clone();
    let r = redirect(cx);
    let out = &mut cx.out;
    out.map(3);
    out.bulk(b"flags");
    out.set(flags.len());
    for f in flags {
        out.bulk(f.as_bytes());
    }
    out.bulk(b"redirect");
    out.int(r);
    out.bulk(b"prefixes");
    out.array(prefixes.len());
    for p in &prefixes {
        out.bulk(p);
    }
    Ok(())
}

/// After a read-only command of a tracking client (not in BCAST mode): remembers the keys
/// it read, unless OPTIN/OPTOUT and CLIENT CACHING say otherwise. Runs under the command's
/// shard locks. Read-only scripts are not tracked themselves, only the commands they run.
pub(super) fn remember_read(cx: &mut Ctx, cmd: &Cmd, args: &[&[u8]]) {
    let t = &cx.client.tracking;
    if !t.on || t.opts.bcast {
        return;
    }
    if (t.opts.optin && !t.caching) || (t.opts.optout && t.caching) {
        return;
    }
    if matches!(cmd.fullname.as_str(), "eval_ro" | "evalsha_ro" | "fcall_ro")
        || cmd.spec.flags & super::flags::PUBSUB != 0
    {
        return;
    }
    let Ok(keys) = cmd.keys_and_flags(args) else {
        return;
    };
    let keys: Vec<&[u8]> = keys.iter().map(|&(p, _)| args[p]).collect();
    cx.server.tracking.remember(cx.client.id, &keys);
}

/// After a command: CLIENT CACHING applies to the one command that follows it (a whole
/// transaction, inside MULTI), as in Redis.
pub(super) fn after_command(cx: &mut Ctx, args: &[&[u8]]) {
    if !cx.client.tracking.caching || cx.client.multi.is_some() {
        return;
    }
    let client_cmd = cx
        .server
        .commands
        .resolve(args)
        .is_ok_and(|c| c.fullname.starts_with("client|"));
    if !client_cmd {
        cx.client.tracking.caching = false;
    }
}
