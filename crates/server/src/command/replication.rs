//! Replication commands: REPLICAOF / SLAVEOF, REPLCONF, PSYNC / SYNC, WAIT, ROLE and
//! FAILOVER. The machinery behind them is in `repl`; these handlers parse, check, and
//! either act at once or leave the connection an [`Action`] (PSYNC turns the connection
//! into a replica link, WAIT waits for acknowledgements) that the connection task carries
//! out once the batch's replies are written.

use super::args::int;
use super::flags::*;
use super::{CommandSpec, Ctx, Keys};
use crate::error::{
    CmdResult, CommandError, CLIENT_IS_REPLICA, E, FAILOVER_FORCE, FAILOVER_IN_PROGRESS,
    FAILOVER_NONE, FAILOVER_NOT_A_REPLICA, FAILOVER_NOT_ONLINE, FAILOVER_NO_REPLICAS,
    FAILOVER_ON_REPLICA, FAILOVER_TIMEOUT, INVALID_MASTER_PORT, NOMASTERLINK,
    NOMASTERLINK_FAILOVER, PSYNC_FAILOVER_REPLID, PSYNC_FAILOVER_TO_MASTER, SYNTAX,
    TIMEOUT_NEGATIVE, TIMEOUT_NOT_INTEGER, WAIT_ON_REPLICA,
};
use crate::repl::{Action, FailoverPhase, ReplicaState};
use crate::util::parse_i64;

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "replicaof",
        3,
        ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING,
        Keys::None,
        replicaof,
    )
    .group("server")
    .since("5.0.0")
    .summary("Make the server a replica of another instance, or promote it as master.")
    .complexity("O(1)")
    .syntax("<host port | NO ONE>"),
    CommandSpec::new(
        "slaveof",
        3,
        ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING,
        Keys::None,
        replicaof,
    )
    .group("server")
    .since("1.0.0")
    .summary("Make the server a replica of another instance, or promote it as master.")
    .complexity("O(1)")
    .syntax("<host port | NO ONE>"),
    CommandSpec::new(
        "replconf",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY,
        Keys::None,
        replconf,
    )
    .group("server")
    .since("3.0.0")
    .summary("An internal command for configuring the replication stream")
    .complexity("O(1)"),
    CommandSpec::new(
        "psync",
        -3,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI,
        Keys::None,
        psync,
    )
    .group("server")
    .since("2.8.0")
    .summary("Internal command used for replication")
    .syntax("replicationid offset"),
    CommandSpec::new(
        "sync",
        1,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI,
        Keys::None,
        sync,
    )
    .group("server")
    .since("1.0.0")
    .summary("Internal command used for replication"),
    CommandSpec::new("wait", 3, NOSCRIPT, Keys::None, wait)
        .group("generic")
        .since("3.0.0")
        .summary("Wait for the synchronous replication of all the write commands sent in the context of the current connection")
        .complexity("O(1)")
        .syntax("numreplicas timeout"),
    CommandSpec::new("role", 1, NOSCRIPT | LOADING | STALE | FAST, Keys::None, role)
        .group("server")
        .since("2.8.12")
        .summary("Return the role of the instance in the context of replication")
        .complexity("O(1)"),
    CommandSpec::new("failover", -1, ADMIN | NOSCRIPT | STALE, Keys::None, failover)
        .group("server")
        .since("6.2.0")
        .summary("Start a coordinated failover between this server and one of its replicas.")
        .complexity("O(1)")
        .syntax("[TO host port] [FORCE] [ABORT] [TIMEOUT milliseconds]"),
];

/// `REPLICAOF host port` / `REPLICAOF NO ONE` (and SLAVEOF): follow a primary, or stop
/// following and become a primary keeping the history. O(1) here; the sync happens in the
/// background.
fn replicaof(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if cx.server.cluster.is_some() {
        return Err(CommandError::err("REPLICAOF not allowed in cluster mode."));
    }
    if cx.client.handle.info.lock().flags.contains('S') {
        return Err(E(CLIENT_IS_REPLICA));
    }
    let server = cx.server.arc();
    let target = if args[1].eq_ignore_ascii_case(b"no") && args[2].eq_ignore_ascii_case(b"one") {
        None
    } else {
        let port = parse_i64(args[2])
            .filter(|p| (0..=65535).contains(p))
            .ok_or(E(INVALID_MASTER_PORT))?;
        let host = String::from_utf8_lossy(args[1]).into_owned();
        if crate::repl::follows(&server, &host, port as u16) {
            cx.out.simple("OK Already connected to specified master");
            return Ok(());
        }
        Some((host, port as u16))
    };
    // Switching roles waits for the replication link to finish applying a command, and
    // the link waits for shards while applying: so it runs once this command (or its
    // EXEC) has released its shard locks, never while holding them.
    cx.after_unlock(move || {
        crate::repl::replicaof(&server, target);
    });
    cx.out.ok();
    Ok(())
}

/// CLUSTER REPLICATE: replicate `host:port` once the command's locks are released.
pub(super) fn follow_from_cluster(cx: &mut Ctx, host: &str, port: u16) {
    let server = cx.server.arc();
    let host = host.to_string();
    cx.after_unlock(move || {
        crate::repl::replicaof(&server, Some((host, port)));
    });
}

/// A replica's CLUSTER RESET: stop replicating (as REPLICAOF NO ONE) and empty the
/// dataset, as Redis does, once the command's locks are released.
pub(super) fn unfollow_from_cluster(cx: &mut Ctx) {
    let server = cx.server.arc();
    cx.after_unlock(move || {
        crate::repl::replicaof(&server, None);
        super::run_internal(&server, &[b"FLUSHALL"]);
    });
}

/// `REPLCONF option value [option value ...]`: what a replica announces before PSYNC
/// (`listening-port`, `ip-address`, `capa`), and its acknowledgements. `ACK` and `GETACK`
/// reach a replica link's own reader, never this handler, except from a client that is not
/// one: then they do nothing and reply nothing, as in Redis. O(1).
fn replconf(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(E(SYNTAX));
    }
    for pair in args[1..].chunks(2) {
        let (opt, val) = (pair[0], pair[1]);
        if opt.eq_ignore_ascii_case(b"listening-port") {
            let port = int(val)?;
            cx.client.repl.listening_port = u16::try_from(port).unwrap_or(0);
        } else if opt.eq_ignore_ascii_case(b"ip-address") {
            let ip = String::from_utf8_lossy(val).into_owned();
            if ip.len() >= 46 {
                return Err(CommandError::Owned(format!(
                    "ERR REPLCONF ip-address provided by replica instance is too long: {} bytes",
                    ip.len()
                )));
            }
            cx.client.repl.ip_address = Some(ip);
        } else if opt.eq_ignore_ascii_case(b"capa") {
            if val.eq_ignore_ascii_case(b"eof") {
                cx.client.repl.capa_eof = true;
            } else if val.eq_ignore_ascii_case(b"psync2") {
                cx.client.repl.capa_psync2 = true;
            }
        } else if opt.eq_ignore_ascii_case(b"ack")
            || opt.eq_ignore_ascii_case(b"fack")
            || opt.eq_ignore_ascii_case(b"getack")
        {
            // Only meaningful on a replica link (handled there): no reply at all.
            return Ok(());
        } else if opt.eq_ignore_ascii_case(b"rdb-only")
            || opt.eq_ignore_ascii_case(b"rdb-filter-only")
        {
            // Accepted for redis-cli --rdb / --replica; Kiln sends the whole snapshot.
        } else {
            return Err(CommandError::Owned(format!(
                "ERR Unrecognized REPLCONF option: {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    cx.out.ok();
    Ok(())
}

/// Checks shared by PSYNC and SYNC.
fn sync_allowed(cx: &Ctx) -> CmdResult {
    let repl = &cx.server.repl;
    if repl.failover_phase() != FailoverPhase::None {
        return Err(E(NOMASTERLINK_FAILOVER));
    }
    if repl.is_replica() && !repl.link_is_up() {
        return Err(E(NOMASTERLINK));
    }
    Ok(())
}

/// `PSYNC replicationid offset [FAILOVER]`: partial resync from the backlog, or a full
/// sync. The connection becomes a replica link. With `FAILOVER` (a primary handing over
/// to this replica), a replica whose replication id is `replicationid` first becomes a
/// primary, as REPLICAOF NO ONE makes it, so the old primary continues from its new id.
/// O(1) here.
fn psync(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if cx.client.handle.info.lock().flags.contains('S') {
        return Ok(());
    }
    if args.len() > 3 && args[3].eq_ignore_ascii_case(b"failover") {
        let server = cx.server.arc();
        if !server.repl.is_replica() {
            return Err(E(PSYNC_FAILOVER_TO_MASTER));
        }
        if args[1] != server.repl.replid().as_bytes() {
            return Err(E(PSYNC_FAILOVER_REPLID));
        }
        tracing::warn!(
            "Failover request received for replid {}.",
            String::from_utf8_lossy(args[1])
        );
        // PSYNC is NO_MULTI and NOSCRIPT, and holds no shard locks: promoting here is
        // what Redis does, before the checks below.
        crate::repl::replicaof(&server, None);
        tracing::info!(
            "MASTER MODE enabled (failover request from '{}')",
            cx.client.handle.addr
        );
    }
    sync_allowed(cx)?;
    let offset = parse_i64(args[2]).unwrap_or(-1);
    cx.client.repl.action = Some(Action::Sync {
        psync: Some((args[1].to_vec(), offset)),
    });
    Ok(())
}

/// `SYNC`: the old protocol's full sync (no `+FULLRESYNC` line). O(1) here.
fn sync(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    if cx.client.handle.info.lock().flags.contains('S') {
        return Ok(());
    }
    sync_allowed(cx)?;
    cx.client.repl.action = Some(Action::Sync { psync: None });
    Ok(())
}

/// `WAIT numreplicas timeout`: the number of replicas that acknowledged this client's
/// writes, waiting up to `timeout` ms (0: forever) for `numreplicas` of them. O(1).
fn wait(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let repl = &cx.server.repl;
    if repl.is_replica() {
        return Err(E(WAIT_ON_REPLICA));
    }
    let replicas = int(args[1])?;
    let timeout = parse_i64(args[2]).ok_or(E(TIMEOUT_NOT_INTEGER))?;
    if timeout < 0 {
        return Err(E(TIMEOUT_NEGATIVE));
    }
    let offset = cx.client.repl.woff;
    let acked = repl.count_acks(offset);
    if replicas <= 0 || acked >= replicas as u64 || cx.in_exec() {
        cx.out.int(acked as i64);
        return Ok(());
    }
    let deadline = (timeout > 0)
        .then(|| crate::clock::instant() + std::time::Duration::from_millis(timeout as u64));
    repl.request_acks(cx.server);
    cx.client.repl.action = Some(Action::Wait {
        replicas: replicas as u64,
        offset,
        deadline,
    });
    Ok(())
}

/// `ROLE`: `master` with its offset and online replicas, or `slave` with its primary, link
/// state and offset. O(replicas).
fn role(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    crate::repl::role(cx.server, &mut cx.out);
    Ok(())
}

/// `FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT milliseconds]`: hands the primary
/// role to a replica. Checks as Redis does, in its order, then pauses writes; the
/// replication cron carries the failover on (`repl::update_failover`). `FAILOVER ABORT`
/// gives one up. O(replicas).
fn failover(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let server = cx.server.arc();
    let repl = &server.repl;
    if args.len() == 2 && args[1].eq_ignore_ascii_case(b"ABORT") {
        if repl.failover_phase() == FailoverPhase::None {
            return Err(E(FAILOVER_NONE));
        }
        // Turning back into a primary waits for the replication link: after this
        // command (or its EXEC) released its locks.
        cx.after_unlock(move || {
            crate::repl::abort_failover(&server, "Failover manually aborted");
        });
        cx.out.ok();
        return Ok(());
    }
    let (mut timeout, mut force, mut target) = (0i64, false, None::<(&[u8], i64)>);
    let mut i = 1;
    while i < args.len() {
        let a = args[i];
        if a.eq_ignore_ascii_case(b"TIMEOUT") && i + 1 < args.len() && timeout == 0 {
            timeout = int(args[i + 1])?;
            if timeout <= 0 {
                return Err(E(FAILOVER_TIMEOUT));
            }
            i += 2;
        } else if a.eq_ignore_ascii_case(b"TO") && i + 2 < args.len() && target.is_none() {
            target = Some((args[i + 1], int(args[i + 2])?));
            i += 3;
        } else if a.eq_ignore_ascii_case(b"FORCE") && !force {
            force = true;
            i += 1;
        } else {
            return Err(E(SYNTAX));
        }
    }
    if repl.failover_phase() != FailoverPhase::None {
        return Err(E(FAILOVER_IN_PROGRESS));
    }
    if repl.is_replica() {
        return Err(E(FAILOVER_ON_REPLICA));
    }
    if repl.replica_count() == 0 {
        return Err(E(FAILOVER_NO_REPLICAS));
    }
    if force && (timeout == 0 || target.is_none()) {
        return Err(E(FAILOVER_FORCE));
    }
    let target = match target {
        None => None,
        Some((host, port)) => {
            let host = String::from_utf8_lossy(host).into_owned();
            let link = u16::try_from(port)
                .ok()
                .and_then(|p| repl.find_replica(&host, p))
                .ok_or(E(FAILOVER_NOT_A_REPLICA))?;
            if link.state() != ReplicaState::Online {
                return Err(E(FAILOVER_NOT_ONLINE));
            }
            Some((host, link.port))
        }
    };
    crate::repl::start_failover(&server, target, timeout as u64, force);
    cx.out.ok();
    Ok(())
}
