//! `CONFIG` and its subcommands. CONFIG SET validates every pair before changing anything
//! and swaps the whole configuration under the write lock, so it is all-or-nothing and
//! never observed half done. CONFIG REWRITE keeps the file's comments and layout.

use std::sync::atomic::Ordering::Relaxed;

use super::lazyfree::LAZYFREED;
use super::{container, enabled_for, help_reply};
use crate::command::flags::*;
use crate::command::{CommandSpec, Ctx, Keys};
use crate::config::{self, Config, Kind, Param};
use crate::error::{CmdResult, CommandError, E, NO_CONFIG_FILE, SYNTAX, TLS_UPDATE_FAILED};
use crate::server::InstMetrics;

const CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "get",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        config_get,
    )
    .group("server")
    .since("2.0.0")
    .summary("Get the values of configuration parameters")
    .complexity("O(N) when N is the number of configuration parameters provided")
    .syntax("parameter [parameter ...]"),
    CommandSpec::new(
        "set",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::WalkAll,
        config_set,
    )
    .group("server")
    .since("2.0.0")
    .summary("Set configuration parameters to the given values")
    .complexity("O(N) when N is the number of configuration parameters provided")
    .syntax("parameter value [parameter value ...]"),
    CommandSpec::new(
        "resetstat",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        config_resetstat,
    )
    .group("server")
    .since("2.0.0")
    .summary("Reset the stats returned by INFO")
    .complexity("O(1)"),
    CommandSpec::new(
        "rewrite",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        config_rewrite,
    )
    .group("server")
    .since("2.8.0")
    .summary("Rewrite the configuration file with the in memory configuration")
    .complexity("O(1)"),
    CommandSpec::new("help", 2, LOADING | STALE, Keys::None, config_help)
        .group("server")
        .since("5.0.0")
        .summary("Show helpful text about the different subcommands")
        .complexity("O(1)"),
];

/// The `CONFIG` entry of the family's table.
pub(super) const CONFIG: CommandSpec = CommandSpec::new("config", -2, 0, Keys::None, container)
    .group("server")
    .since("2.0.0")
    .summary("A container for server configuration commands")
    .complexity("Depends on subcommand.")
    .subcommands(CONFIG_SUBCOMMANDS);

/// `CONFIG GET parameter [parameter ...]`: name/value pairs of every parameter matching
/// any of the glob patterns. O(N) in the number of parameters.
fn config_get(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let cfg = cx.server.config.read();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for pat in &args[2..] {
        if !pat.iter().any(|c| b"*?[".contains(c)) {
            // A plain name (or alias) is looked up directly and echoed as the client wrote it.
            let name = String::from_utf8_lossy(pat);
            if let Some(p) = config::param(&name) {
                if seen.insert(name.to_ascii_lowercase()) {
                    pairs.push((name.into_owned(), config::shown(p.name, cfg.get(p.name))));
                }
            }
            continue;
        }
        for (name, value) in cfg.matching(pat) {
            if seen.insert(name.to_string()) {
                pairs.push((name.to_string(), value));
            }
        }
    }
    drop(cfg);
    cx.out.map(pairs.len());
    for (n, v) in &pairs {
        cx.out.bulk(n.as_bytes());
        cx.out.bulk(v.as_bytes());
    }
    Ok(())
}

/// `CONFIG SET parameter value [parameter value ...]`: all or nothing. O(N) in the number
/// of pairs.
fn config_set(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let pairs = &args[2..];
    if !pairs.chunks_exact(2).remainder().is_empty() {
        return Err(E(SYNTAX));
    }
    // First every name: unknown, immutable, protected and repeated names fail before any
    // value is looked at, in argument order (Redis's order of checks).
    let protected_ok = enabled_for(cx, "enable-protected-configs");
    let mut checked: Vec<(&'static Param, String, String)> = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        let name = String::from_utf8_lossy(pair[0]).into_owned();
        let p = config::param(&name).ok_or_else(|| CommandError::config_set_unknown(&name))?;
        // Kiln's own `threads` may be "set" to what it is (Redis has no such parameter).
        let unchanged = p.name == "threads"
            && config::normalise_value(p, &String::from_utf8_lossy(pair[1]))
                .is_ok_and(|v| v == cx.server.config.read().get(p.name));
        if !p.mutable && !unchanged {
            return Err(CommandError::config_set_failed(
                &name,
                "can't set immutable config",
            ));
        }
        if config::PROTECTED.contains(&p.name) && !protected_ok {
            return Err(CommandError::config_set_failed(
                &name,
                "can't set protected config",
            ));
        }
        if checked
            .iter()
            .any(|(_, n, _)| n.eq_ignore_ascii_case(&name))
        {
            return Err(CommandError::config_set_failed(
                &name,
                "duplicate parameter",
            ));
        }
        checked.push((p, name, String::from_utf8_lossy(pair[1]).into_owned()));
    }
    // Then the values, on a copy that replaces the configuration only if all of them pass.
    let mut cfg = cx.server.config.write();
    let mut new: Config = cfg.clone();
    for (p, name, value) in &checked {
        if !p.mutable {
            continue;
        }
        set_value(&mut new, p, value)
            .map_err(|reason| CommandError::config_set_failed(name, &reason))?;
    }
    // TLS settings apply to connections accepted from now on; a configuration that does
    // not load fails the command and the old one stays (Redis's wording and log lines).
    let mut tls = None;
    if let Some((p, name, _)) = checked.iter().find(|(p, _, _)| p.name.starts_with("tls-")) {
        if crate::tls::wanted(&new) {
            match crate::tls::server_config(&new) {
                Ok(c) => tls = Some(c),
                Err(e) => {
                    tracing::warn!("{e}");
                    tracing::warn!(
                        "Failed applying new configuration. Possibly related to new {} setting. Restoring previous settings.",
                        p.name
                    );
                    return Err(CommandError::config_set_failed(name, TLS_UPDATE_FAILED));
                }
            }
        }
    }
    // `port` / `tls-port` / `bind`: listen where the new values say before they count
    // (Redis's changeListenPort / changeBindAddr), the old listeners kept when that fails.
    let changed = |n: &str| new.get(n) != cfg.get(n);
    if changed("port") || changed("tls-port") || changed("bind") {
        if let Some(rebind) = cx.server.process.rebind.get() {
            let which = ["port", "tls-port", "bind"]
                .into_iter()
                .find(|n| changed(n))
                .unwrap_or("bind");
            drop(cfg);
            rebind(&new).map_err(|reason| CommandError::config_set_failed(which, &reason))?;
            cfg = cx.server.config.write();
        }
    }
    *cfg = new;
    drop(cfg);
    if let Some(c) = tls {
        cx.server.tls.install(Some(c));
    }
    cx.server.refresh_hot_config();
    if let Some((_, _, pass)) = checked.iter().find(|(p, _, _)| p.name == "requirepass") {
        cx.server.acl.set_default_password(pass.as_bytes());
    }
    // Turning the AOF on or off, and its fsync policy, take effect now; inside EXEC the
    // switch waits until the transaction released its shards (turning the AOF on takes a
    // snapshot point, which waits for every shard), and a failure is only logged.
    if cx.in_exec() {
        crate::aof::apply_policy(cx.server);
        let server = cx.server.arc();
        cx.after_unlock(move || {
            if let Err(e) = crate::aof::config_changed(&server) {
                tracing::warn!("Turning the AOF on failed: {e}");
            }
        });
    } else {
        crate::aof::config_changed(cx.server)
            .map_err(|reason| CommandError::config_set_failed("appendonly", &reason))?;
    }
    cx.out.ok();
    Ok(())
}

/// Sets one parameter from a CONFIG SET value.
fn set_value(cfg: &mut Config, p: &Param, value: &str) -> Result<(), String> {
    // A multi-word value arrives as one argument split on single spaces, so a doubled
    // space makes an empty word, which Redis refuses for `save`.
    if p.name == "save" && !value.is_empty() && value.split(' ').any(str::is_empty) {
        return Err("Invalid save parameters".into());
    }
    cfg.set(p.name, &[value.to_string()])
}

/// `CONFIG RESETSTAT`: zeroes INFO's counters. O(commands).
fn config_resetstat(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let server = cx.server;
    server.metrics.stats.reset();
    *server.metrics.inst.lock() = InstMetrics::default();
    LAZYFREED.store(0, Relaxed);
    server.metrics.mem_peak.store(server.used_memory(), Relaxed);
    cx.out.ok();
    Ok(())
}

/// `CONFIG REWRITE`: writes the configuration in force back to the config file the server
/// was started with, keeping its comments and layout. O(parameters).
fn config_rewrite(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let Some(path) = cx.server.process.config_file.get() else {
        return Err(E(NO_CONFIG_FILE));
    };
    let cfg = cx.server.config.read().clone();
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(CommandError::config_rewrite_failed(&os_error(&e))),
    };
    // Users are written as `user` lines unless they live in an ACL file.
    let users = if cfg.get("aclfile").is_empty() {
        crate::command::acl::user_lines(cx.server)
    } else {
        Vec::new()
    };
    let text = rewrite_config_with_users(&old, &cfg, Some(&users));
    // Write a sibling file and rename it over the old one: a crash never leaves a
    // truncated config behind.
    let mut tmp = path.clone().into_os_string();
    tmp.push(format!(".kiln-rewrite-{}", std::process::id()));
    let res = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(CommandError::config_rewrite_failed(&os_error(&e)));
    }
    tracing::info!("CONFIG REWRITE executed with success.");
    cx.out.ok();
    Ok(())
}

/// An I/O error as `strerror` words it (without Rust's "(os error N)" suffix).
pub(crate) fn os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Marks the lines CONFIG REWRITE appended to a config file.
const REWRITE_SIGNATURE: &str = "# Generated by CONFIG REWRITE";

/// One config-file line setting `p` to its value in `cfg`, or none when the setting is
/// expressed by leaving the parameter out (no `replicaof`: not a replica).
fn config_line(p: &Param, cfg: &Config) -> Option<String> {
    let v = cfg.get(p.name);
    Some(match p.kind {
        Kind::Special if v.is_empty() && p.name == "replicaof" => return None,
        // Multi-word values are written as words, each quoted if it has to be (a bind
        // address or replicaof host may hold a quote); an empty one must stay visible.
        Kind::Special if !v.is_empty() => {
            let words: Vec<String> = v.split(' ').map(config::quote_config_arg).collect();
            format!("{} {}", p.name, words.join(" "))
        }
        Kind::Special | Kind::Str => format!("{} {}", p.name, config::quote_config_arg(v)),
        _ => format!("{} {v}", p.name),
    })
}

/// The new text of a config file: each known parameter's first line rewritten in place
/// with the value in force (later repeats dropped), comments and anything else kept, and
/// parameters that differ from their default but were not in the file appended after the
/// signature line.
pub fn rewrite_config_text(old: &str, cfg: &Config) -> String {
    rewrite_config_with_users(old, cfg, None)
}

/// [`rewrite_config_text`], with the ACL users: `Some(lines)` replaces the file's `user`
/// lines (where the first one was, or at the end), `Some(&[])` drops them (users live in
/// an ACL file then), `None` leaves them as they are.
pub fn rewrite_config_with_users(old: &str, cfg: &Config, users: Option<&[String]>) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut users_written = false;
    let mut written = std::collections::HashSet::new();
    let mut has_signature = false;
    for line in old.lines() {
        let trimmed = line.trim();
        if trimmed == REWRITE_SIGNATURE {
            has_signature = true;
        }
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            let words = config::split_config_line(trimmed).unwrap_or_default();
            if let (Some(users), Some(true)) =
                (users, words.first().map(|w| w.eq_ignore_ascii_case("user")))
            {
                if !std::mem::replace(&mut users_written, true) {
                    lines.extend(users.iter().cloned());
                }
                continue;
            }
            if let Some(p) = words.first().and_then(|name| config::param(name)) {
                if written.insert(p.name) {
                    lines.extend(config_line(p, cfg));
                }
                continue;
            }
        }
        // `lines` drops one `\r` before a `\n`, none at the end of a last line without
        // `\n`: drop them all, or a second rewrite would change the file again.
        lines.push(line.trim_end_matches('\r').to_string());
    }
    let mut appended = config::PARAMS
        .iter()
        .filter(|p| !written.contains(p.name) && cfg.get(p.name) != p.default)
        .peekable();
    let users_left: &[String] = match users {
        Some(u) if !users_written => u,
        _ => &[],
    };
    if (appended.peek().is_some() || !users_left.is_empty()) && !has_signature {
        lines.push(REWRITE_SIGNATURE.to_string());
    }
    lines.extend(appended.filter_map(|p| config_line(p, cfg)));
    lines.extend(users_left.iter().cloned());
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// `CONFIG HELP`
fn config_help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    help_reply(
        &mut cx.out,
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewritten_config_quotes_words_of_multi_word_values() {
        // Caught by the config_file fuzz target: `bind "\"x"` was rewritten as `bind "x`, which does not load.
        let text = "bind \"\\\"x\" 'a b'\nreplicaof \"h'\" 6379\nsave 60 1\n";
        let mut cfg = Config::default();
        cfg.load_text(text).unwrap();
        let rewritten = rewrite_config_text(text, &cfg);
        assert_eq!(
            rewritten,
            "bind \"\\\"x\" a b\nreplicaof \"h'\" 6379\nsave 60 1\n"
        );
        let mut again = Config::default();
        again.load_text(&rewritten).unwrap();
        assert_eq!(again.matching(b"*"), cfg.matching(b"*"));
    }

    #[test]
    fn rewriting_a_rewritten_config_changes_nothing() {
        // Found by fuzzing: a last line "#\r" without a newline became "#\r\n", then "#\n".
        let cfg = Config::default();
        let once = rewrite_config_text("port 6379\r\n#\r", &cfg);
        assert_eq!(once, "port 6379\n#\n");
        assert_eq!(rewrite_config_text(&once, &cfg), once);
        let once = rewrite_config_text("# a\r\r\n# b\r\r\r", &cfg);
        assert_eq!(once, "# a\n# b\n");
        assert_eq!(rewrite_config_text(&once, &cfg), once);
    }

    #[test]
    fn config_rewrite_keeps_comments_and_appends_changes() {
        let mut cfg = Config::default();
        cfg.set("port", &["7000".into()]).unwrap();
        cfg.set("maxmemory", &["1mb".into()]).unwrap();
        cfg.set("save", &["".into()]).unwrap();
        cfg.set("requirepass", &["a b".into()]).unwrap();
        let old = "# my server\nport 6000\n\nport 6001\nslave-read-only yes\nreplicaof no one\n";
        let text = rewrite_config_text(old, &cfg);
        assert_eq!(
            text,
            "# my server\nport 7000\n\nreplica-read-only yes\n# Generated by CONFIG REWRITE\n\
             requirepass \"a b\"\nsave \"\"\nmaxmemory 1048576\n"
        );
        // What was written reads back to the same configuration.
        let mut back = Config::default();
        back.load_text(&text).unwrap();
        for p in config::PARAMS {
            assert_eq!(back.get(p.name), cfg.get(p.name), "{}", p.name);
        }
        // A second rewrite changes nothing.
        assert_eq!(rewrite_config_text(&text, &cfg), text);
    }
}
