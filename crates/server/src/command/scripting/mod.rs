//! Lua scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT.
//!
//! **Atomicity.** A script may touch keys it did not declare, in any database, so it cannot
//! plan its shards as other commands do. Its key spec is [`Keys::Script`]: the dispatcher
//! (or EXEC, for a queued script) takes the keyspace's gate whole before the script starts
//! (`storage::locks::Gate`), which waits for every other command holding shards to finish
//! and holds new ones off until the script ends. The script's commands then lock whatever
//! shards they need, and no client on any thread sees a state between two of them. Commands
//! that touch no shard (PING, INFO server, ...) still run on other threads meanwhile, as do
//! clients' reads of their own sockets.
//!
//! **Commands inside.** `redis.call` checks the command as Redis's `scriptCall` does (unknown,
//! arity, `noscript`, writes in a read-only script), then runs it through the dispatcher as
//! EXEC runs a queued command: inside the script's locks, never blocking, its effects joining
//! the script's batch, which reaches the feed as one MULTI ... EXEC once the script ends
//! (Redis 7.0's effects replication). The reply is written to the output buffer, decoded and
//! handed to Lua ([`convert`]), and cut from the buffer again.
//!
//! **Long scripts.** After `busy-reply-threshold` the instruction hook marks the gate busy:
//! clients then get `-BUSY` instead of waiting, except for `allow_busy` commands (SCRIPT
//! KILL). SCRIPT KILL stops a script that has not written.

mod api;
pub(crate) mod atomic;
pub(crate) mod convert;
mod engine;
pub mod functions;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use hashbrown::HashMap;
use mlua::{Lua, MultiValue, Value};
use parking_lot::{Mutex, RwLock};
use smallvec::SmallVec;

use super::flags::*;
use super::{CommandSpec, Ctx, Keys, Mode};
use crate::error::{CmdResult, CommandError, E};

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "eval",
        -3,
        NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS,
        Keys::Script,
        eval,
    )
    .group("scripting")
    .since("2.6.0")
    .summary("Executes a server-side Lua script.")
    .complexity("Depends on the script that is executed.")
    .syntax("script numkeys [key [key ...]] [arg [arg ...]]"),
    CommandSpec::new(
        "evalsha",
        -3,
        NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS,
        Keys::Script,
        evalsha,
    )
    .group("scripting")
    .since("2.6.0")
    .summary("Executes a server-side Lua script by SHA1 digest.")
    .complexity("Depends on the script that is executed.")
    .syntax("sha1 numkeys [key [key ...]] [arg [arg ...]]"),
    CommandSpec::new(
        "eval_ro",
        -3,
        READONLY | NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS,
        Keys::Script,
        eval_ro,
    )
    .group("scripting")
    .since("7.0.0")
    .summary("Executes a read-only server-side Lua script.")
    .complexity("Depends on the script that is executed.")
    .syntax("script numkeys [key [key ...]] [arg [arg ...]]"),
    CommandSpec::new(
        "evalsha_ro",
        -3,
        READONLY | NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS,
        Keys::Script,
        evalsha_ro,
    )
    .group("scripting")
    .since("7.0.0")
    .summary("Executes a read-only server-side Lua script by SHA1 digest.")
    .complexity("Depends on the script that is executed.")
    .syntax("sha1 numkeys [key [key ...]] [arg [arg ...]]"),
    CommandSpec::new(
        "fcall",
        -3,
        NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS,
        Keys::Script,
        fcall,
    )
    .group("scripting")
    .since("7.0.0")
    .summary("Invokes a function.")
    .complexity("Depends on the function that is executed.")
    .syntax("function numkeys [key [key ...]] [arg [arg ...]]"),
    CommandSpec::new(
        "fcall_ro",
        -3,
        READONLY | NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS,
        Keys::Script,
        fcall_ro,
    )
    .group("scripting")
    .since("7.0.0")
    .summary("Invokes a read-only function.")
    .complexity("Depends on the function that is executed.")
    .syntax("function numkeys [key [key ...]] [arg [arg ...]]"),
    CommandSpec::new("function", -2, 0, Keys::None, container)
        .group("scripting")
        .since("7.0.0")
        .summary("A container for function commands.")
        .complexity("Depends on subcommand.")
        .subcommands(FUNCTION_SUBCOMMANDS),
    CommandSpec::new("script", -2, 0, Keys::None, container)
        .group("scripting")
        .since("2.6.0")
        .summary("A container for Lua scripts management commands.")
        .complexity("Depends on subcommand.")
        .subcommands(SCRIPT_SUBCOMMANDS),
];

const FUNCTION_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "load",
        -3,
        WRITE | DENYOOM | NOSCRIPT,
        Keys::None,
        functions::function_load,
    )
    .group("scripting")
    .since("7.0.0")
    .summary("Creates a library.")
    .complexity("O(1) (considering compilation time is redundant)")
    .syntax("[REPLACE] function-code"),
    CommandSpec::new(
        "delete",
        3,
        WRITE | NOSCRIPT,
        Keys::None,
        functions::function_delete,
    )
    .group("scripting")
    .since("7.0.0")
    .summary("Deletes a library and its functions.")
    .complexity("O(1)")
    .syntax("library-name"),
    CommandSpec::new(
        "flush",
        -2,
        WRITE | NOSCRIPT,
        Keys::None,
        functions::function_flush,
    )
    .group("scripting")
    .since("7.0.0")
    .summary("Deletes all libraries and functions.")
    .complexity("O(N) where N is the number of functions deleted")
    .syntax("[ASYNC | SYNC]"),
    CommandSpec::new("list", -2, NOSCRIPT, Keys::None, functions::function_list)
        .group("scripting")
        .since("7.0.0")
        .summary("Returns information about all libraries.")
        .complexity("O(N) where N is the number of functions")
        .syntax("[LIBRARYNAME library-name-pattern] [WITHCODE]"),
    CommandSpec::new("dump", 2, NOSCRIPT, Keys::None, functions::function_dump)
        .group("scripting")
        .since("7.0.0")
        .summary("Dumps all libraries into a serialized binary payload.")
        .complexity("O(N) where N is the number of functions"),
    CommandSpec::new(
        "restore",
        -3,
        WRITE | DENYOOM | NOSCRIPT,
        Keys::None,
        functions::function_restore,
    )
    .group("scripting")
    .since("7.0.0")
    .summary("Restores all libraries from a payload.")
    .complexity("O(N) where N is the number of functions on the payload")
    .syntax("serialized-value [FLUSH | APPEND | REPLACE]"),
    CommandSpec::new(
        "stats",
        2,
        NOSCRIPT | ALLOW_BUSY,
        Keys::None,
        functions::function_stats,
    )
    .group("scripting")
    .since("7.0.0")
    .summary("Returns information about a function during execution.")
    .complexity("O(1)"),
    CommandSpec::new("kill", 2, NOSCRIPT | ALLOW_BUSY, Keys::None, function_kill)
        .group("scripting")
        .since("7.0.0")
        .summary("Terminates a function during execution.")
        .complexity("O(1)"),
    CommandSpec::new(
        "help",
        2,
        LOADING | STALE,
        Keys::None,
        functions::function_help,
    )
    .group("scripting")
    .since("7.0.0")
    .summary("Returns helpful text about the different subcommands.")
    .complexity("O(1)"),
];

const SCRIPT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("load", 3, NOSCRIPT | STALE, Keys::None, script_load)
        .group("scripting")
        .since("2.6.0")
        .summary("Loads a server-side Lua script to the script cache.")
        .complexity("O(N) with N being the length in bytes of the script body.")
        .syntax("script"),
    CommandSpec::new("exists", -3, NOSCRIPT, Keys::None, script_exists)
        .group("scripting")
        .since("2.6.0")
        .summary("Determines whether server-side Lua scripts exist in the script cache.")
        .complexity("O(N) with N being the number of scripts to check (so checking a single script is an O(1) operation).")
        .syntax("sha1 [sha1 ...]"),
    CommandSpec::new("flush", -2, NOSCRIPT, Keys::None, script_flush)
        .group("scripting")
        .since("2.6.0")
        .summary("Removes all server-side Lua scripts from the script cache.")
        .complexity("O(N) with N being the number of scripts in cache")
        .syntax("[ASYNC | SYNC]"),
    CommandSpec::new("kill", 2, NOSCRIPT | ALLOW_BUSY, Keys::None, script_kill)
        .group("scripting")
        .since("2.6.0")
        .summary("Terminates a server-side Lua script during execution.")
        .complexity("O(1)"),
    CommandSpec::new("debug", 3, NOSCRIPT, Keys::None, script_debug)
        .group("scripting")
        .since("3.2.0")
        .summary("Sets the debug mode of server-side Lua scripts.")
        .complexity("O(1)")
        .syntax("YES | SYNC | NO"),
    CommandSpec::new("help", 2, LOADING | STALE, Keys::None, script_help)
        .group("scripting")
        .since("5.0.0")
        .summary("Returns helpful text about the different subcommands.")
        .complexity("O(1)"),
];

fn container(_cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    Err(CommandError::err("unknown subcommand"))
}

/// A cached script: its body and the flags its shebang declares.
pub struct Script {
    pub body: Box<[u8]>,
    pub flags: ScriptFlags,
    /// How it has fared speculating (`atomic`).
    streak: atomic::Streak,
}

/// What a `#!lua flags=...` shebang says (Redis 7.0's script flags). A script without a
/// shebang has none of them and keeps the pre-7.0 behaviour.
#[derive(Clone, Copy, Default, Debug)]
pub struct ScriptFlags {
    pub shebang: bool,
    pub no_writes: bool,
    pub allow_oom: bool,
    pub allow_stale: bool,
    pub no_cluster: bool,
    pub allow_cross_slot: bool,
}

impl ScriptFlags {
    /// Sets the flag named `name` (a shebang's or `register_function`'s); false if unknown.
    pub fn set(&mut self, name: &[u8]) -> bool {
        match name {
            b"no-writes" => self.no_writes = true,
            b"allow-oom" => self.allow_oom = true,
            b"allow-stale" => self.allow_stale = true,
            b"no-cluster" => self.no_cluster = true,
            b"allow-cross-slot-keys" => self.allow_cross_slot = true,
            _ => return false,
        }
        true
    }

    /// The flags set, by name, in Redis's order (FUNCTION LIST).
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.no_writes, "no-writes"),
            (self.allow_oom, "allow-oom"),
            (self.allow_stale, "allow-stale"),
            (self.no_cluster, "no-cluster"),
            (self.allow_cross_slot, "allow-cross-slot-keys"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n)
        .collect()
    }
}

/// Telling a running script to stop, and the script telling the server it runs long.
pub struct Control {
    running: AtomicBool,
    /// The running code is a function (FCALL), not an EVAL script.
    function: AtomicBool,
    kill: AtomicBool,
    wrote: AtomicBool,
    /// The keyspace gate's busy flag (see `storage::locks::Gate`).
    gate_busy: Arc<AtomicBool>,
}

impl Control {
    pub fn kill_requested(&self) -> bool {
        self.kill.load(Relaxed)
    }

    pub fn set_busy(&self, on: bool) {
        self.gate_busy
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The running function's name, command and start (FUNCTION STATS).
type RunningFunction = (String, Vec<Vec<u8>>, std::time::Instant);

/// The script cache and the running script's controls (`Server::scripts`).
pub struct Scripts {
    cache: RwLock<HashMap<[u8; 40], Arc<Script>>>,
    /// Bumped by SCRIPT FLUSH: interpreters made for an older generation are rebuilt.
    generation: AtomicU64,
    control: Arc<Control>,
    /// Bytes of script bodies cached (INFO `used_memory_scripts`).
    bytes: AtomicU64,
    /// The function libraries (see `functions`).
    pub libraries: RwLock<functions::Libraries>,
    /// The running function, its command and start (FUNCTION STATS).
    running_function: Mutex<Option<RunningFunction>>,
    /// DEBUG SET-DISABLE-DENY-SCRIPTS: commands flagged `noscript` may run from scripts.
    pub allow_deny_script: AtomicBool,
}

impl Scripts {
    pub fn new(gate_busy: Arc<AtomicBool>) -> Self {
        Self {
            cache: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            control: Arc::new(Control {
                running: AtomicBool::new(false),
                function: AtomicBool::new(false),
                kill: AtomicBool::new(false),
                wrote: AtomicBool::new(false),
                gate_busy,
            }),
            bytes: AtomicU64::new(0),
            libraries: RwLock::new(functions::Libraries::default()),
            running_function: Mutex::new(None),
            allow_deny_script: AtomicBool::new(false),
        }
    }

    /// Stops the running script or function, if any, at its next instruction check (the
    /// server is shutting down).
    pub fn stop_running(&self) {
        if self.control.running.load(Relaxed) {
            self.control.kill.store(true, Relaxed);
        }
    }

    /// The running function's name, command and milliseconds so far.
    pub fn running_function(&self) -> Option<(String, Vec<Vec<u8>>, u64)> {
        self.running_function
            .lock()
            .as_ref()
            .map(|(n, c, t)| (n.clone(), c.clone(), t.elapsed().as_millis() as u64))
    }

    /// The `-BUSY` text for the code running now (a function names FUNCTION KILL).
    pub fn busy_text(&self) -> &'static str {
        if self.control.function.load(Relaxed) {
            "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
        } else {
            crate::error::BUSY
        }
    }

    /// Number of cached scripts (INFO `number_of_cached_scripts`).
    pub fn count(&self) -> usize {
        self.cache.read().len()
    }

    /// Bytes of cached script bodies.
    pub fn memory(&self) -> u64 {
        self.bytes.load(Relaxed)
    }

    /// Whether a script is running now.
    pub fn running(&self) -> bool {
        self.control.running.load(Relaxed)
    }

    fn get(&self, sha: &[u8; 40]) -> Option<Arc<Script>> {
        self.cache.read().get(sha).cloned()
    }

    fn insert(&self, sha: [u8; 40], script: Script) -> Arc<Script> {
        let mut cache = self.cache.write();
        cache
            .entry(sha)
            .or_insert_with(|| {
                self.bytes.fetch_add(script.body.len() as u64, Relaxed);
                Arc::new(script)
            })
            .clone()
    }

    fn flush(&self) {
        let old = std::mem::take(&mut *self.cache.write());
        self.bytes.store(0, Relaxed);
        self.generation.fetch_add(1, Relaxed);
        drop(old);
    }
}

/// Bytes the Lua interpreters use (INFO `used_memory_lua`).
pub fn lua_memory() -> usize {
    engine::used_memory()
}

/// Parses a script's shebang line (`#!lua flags=no-writes,...`), if it has one.
fn shebang(body: &[u8]) -> Result<ScriptFlags, String> {
    let mut flags = ScriptFlags::default();
    if !body.starts_with(b"#!") {
        return Ok(flags);
    }
    flags.shebang = true;
    let line = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or("");
    if engine != "#!lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {engine}"));
    }
    for opt in parts {
        let Some(list) = opt.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {opt}"));
        };
        for f in list.split(',').filter(|f| !f.is_empty()) {
            if !flags.set(f.as_bytes()) {
                return Err(format!("ERR Unexpected flag in script shebang: {f}"));
            }
        }
    }
    Ok(flags)
}

/// The body Lua compiles: the shebang line blanked (so line numbers stay).
fn lua_body(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if body.starts_with(b"#!") {
        let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
        std::borrow::Cow::Owned(body[end..].to_vec())
    } else {
        std::borrow::Cow::Borrowed(body)
    }
}

/// Caches `body` (checking its shebang and that it compiles) and returns its SHA1.
fn load(cx: &Ctx, body: &[u8]) -> Result<([u8; 40], Arc<Script>), CommandError> {
    let sha = api::sha1_hex(body);
    if let Some(s) = cx.server.scripts.get(&sha) {
        return Ok((sha, s));
    }
    let flags = shebang(body).map_err(CommandError::Owned)?;
    let generation = cx.server.scripts.generation.load(Relaxed);
    engine::with_vm(generation, |vm| {
        vm.function(&sha, &lua_body(body)).map(|_| ())
    })
    .map_err(|e| CommandError::Owned(format!("ERR {e}")))?
    .map_err(CommandError::Owned)?;
    let script = cx.server.scripts.insert(
        sha,
        Script {
            body: body.into(),
            flags,
            streak: atomic::Streak::default(),
        },
    );
    Ok((sha, script))
}

fn eval(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    numkeys(args, false)?;
    let (sha, script) = load(cx, args[1])?;
    run(cx, args, Code::Eval { sha, script }, false)
}

fn eval_ro(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    numkeys(args, false)?;
    let (sha, script) = load(cx, args[1])?;
    run(cx, args, Code::Eval { sha, script }, true)
}

fn by_sha(cx: &Ctx, arg: &[u8]) -> Result<([u8; 40], Arc<Script>), CommandError> {
    let mut sha = [0u8; 40];
    if arg.len() == 40 {
        sha.copy_from_slice(arg);
        sha.make_ascii_lowercase();
        if let Some(s) = cx.server.scripts.get(&sha) {
            return Ok((sha, s));
        }
    }
    Err(E(NO_MATCHING))
}

const NO_MATCHING: &str = "NOSCRIPT No matching script. Please use EVAL.";

fn evalsha(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    // A name that cannot be a SHA1 is not found before the key count is read (Redis).
    if args[1].len() != 40 {
        return Err(E(NO_MATCHING));
    }
    numkeys(args, false)?;
    let (sha, script) = by_sha(cx, args[1])?;
    run(cx, args, Code::Eval { sha, script }, false)
}

fn evalsha_ro(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    // A name that cannot be a SHA1 is not found before the key count is read (Redis).
    if args[1].len() != 40 {
        return Err(E(NO_MATCHING));
    }
    numkeys(args, false)?;
    let (sha, script) = by_sha(cx, args[1])?;
    run(cx, args, Code::Eval { sha, script }, true)
}

/// The number of keys (`args[2]`) checked against the arguments, as Redis checks it before
/// it looks at the script or function.
fn numkeys(args: &[&[u8]], function: bool) -> Result<usize, CommandError> {
    let n = match crate::util::parse_i64(args[2]) {
        Some(n) => n,
        None if function => return Err(CommandError::err("Bad number of keys provided")),
        None => return Err(E(crate::error::NOT_INTEGER)),
    };
    if n < 0 {
        return Err(CommandError::err("Number of keys can't be negative"));
    }
    if n as usize > args.len() - 3 {
        return Err(CommandError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    Ok(n as usize)
}

/// What a run executes: a cached EVAL script, or a registered function.
enum Code {
    Eval {
        sha: [u8; 40],
        script: Arc<Script>,
    },
    Function {
        name: String,
        flags: ScriptFlags,
        lib: Arc<functions::Library>,
        index: usize,
    },
}

impl Code {
    /// How the code has fared speculating (`atomic::Streak`).
    fn streak(&self) -> &atomic::Streak {
        match self {
            Code::Eval { script, .. } => &script.streak,
            Code::Function { lib, index, .. } => &lib.functions[*index].streak,
        }
    }
}

/// Runs a cached script (`EVAL*` / `EVALSHA*`) or a function (`FCALL*`); `args` are the
/// command's arguments (name, script or function, numkeys, keys, args).
fn run(cx: &mut Ctx, args: &[&[u8]], code: Code, read_only: bool) -> CmdResult {
    let function = matches!(code, Code::Function { .. });
    let numkeys = numkeys(args, function)?;
    let split = 3 + numkeys;
    let (keys, argv) = (&args[3..split], &args[split..]);
    let flags = match &code {
        Code::Eval { script, .. } => script.flags,
        Code::Function { flags, .. } => *flags,
    };
    if read_only && (function || flags.shebang) && !flags.no_writes {
        return Err(CommandError::err(
            "Can not execute a script with write flag using *_ro command.",
        ));
    }
    if cx.server.cluster.is_some() && (function || flags.shebang) && flags.no_cluster {
        return Err(CommandError::err(
            "Can not run script on cluster, 'no-cluster' flag is set.",
        ));
    }
    // A script that may write (Redis 7.0 flags: a shebang without no-writes, or a function
    // without it) is refused up front where writes are (a read-only replica, too few
    // replicas); one without flags finds out at its first write.
    if (function || flags.shebang) && !flags.no_writes {
        if let Some(e) = cx.server.repl.gate(cx.client, WRITE) {
            return Err(E(e));
        }
        // Such a script is a `denyoom` command unless `allow-oom`.
        if cx.oom && !flags.allow_oom {
            return Err(E(crate::error::OOM));
        }
    }
    let read_only = read_only || flags.no_writes;

    // The script's commands run as EXEC runs queued ones; their effects gather in a batch
    // that reaches the feed as one MULTI ... EXEC (or joins the EXEC this script is in).
    let outer = cx.mode;
    let own_batch = cx.batch.is_none();
    if own_batch {
        cx.batch = Some(Default::default());
    }
    let db = cx.client.db;
    let client_resp3 = cx.out.resp3;
    let streak = code.streak();
    let mut speculate = atomic::may_speculate(cx) && streak.speculate();
    // A rerun alone counts its time from the first try: a script that ran past the limit
    // speculatively is busy as soon as it runs again.
    let started = crate::clock::instant();
    let outcome = loop {
        if speculate {
            if atomic::begin_speculative(cx, keys).is_err() {
                break Ok(Err(cx.server.scripts.busy_text().to_string()));
            }
        } else if !cx.in_exec() {
            atomic::begin_exclusive(cx);
        }
        cx.mode = Mode::Exec;
        let outcome = attempt(cx, args, &code, (keys, argv), read_only, speculate, started);
        cx.mode = outer;
        cx.client.db = db;
        cx.out.resp3 = client_resp3;
        match outcome {
            Attempt::Aborted => {
                atomic::roll_back(cx);
                streak.aborted();
                speculate = false;
            }
            Attempt::Done(outcome) => {
                if speculate {
                    atomic::commit(cx);
                }
                break outcome;
            }
        }
    };
    if own_batch {
        if let Some(batch) = cx.batch.take() {
            cx.server.feed.append_batch(&batch);
        }
    }
    cx.propagate_nothing();
    match outcome {
        Ok(Ok(reply)) => {
            cx.out.raw(&reply);
            Ok(())
        }
        Ok(Err(busy)) => Err(CommandError::Owned(busy)),
        Err(e) => Err(CommandError::Owned(e)),
    }
}

/// How one try at running a script ended.
enum Attempt {
    /// It ran (its reply, or the text of a compile error or `-BUSY`), or it could not
    /// start (an interpreter error).
    Done(Result<Result<Vec<u8>, String>, String>),
    /// A speculative run stopped; it is rolled back and runs again alone.
    Aborted,
}

/// Runs the script once under the locks its caller took (see `atomic`).
fn attempt(
    cx: &mut Ctx,
    args: &[&[u8]],
    code: &Code,
    (keys, argv): (&[&[u8]], &[&[u8]]),
    read_only: bool,
    speculative: bool,
    started: std::time::Instant,
) -> Attempt {
    let server = cx.server;
    let function = matches!(code, Code::Function { .. });
    // Only a run alone can go on long enough to be killed or reported busy.
    let control = (!speculative).then(|| {
        let control = server.scripts.control.clone();
        control.kill.store(false, Relaxed);
        control.wrote.store(false, Relaxed);
        control.function.store(function, Relaxed);
        control.running.store(true, Relaxed);
        control
    });
    if let (Some(_), Code::Function { name, .. }) = (&control, code) {
        *server.scripts.running_function.lock() = Some((
            name.clone(),
            args.iter().map(|a| a.to_vec()).collect(),
            crate::clock::instant(),
        ));
    }
    let limit = std::time::Duration::from_millis(server.hot.busy_reply_ms.load(Relaxed));
    let allow_oom = match code {
        Code::Eval { script, .. } => script.flags.allow_oom,
        Code::Function { flags, .. } => flags.allow_oom,
    };
    let (slot, cross_slot) = match code {
        Code::Eval { script, .. } => (
            keys.first().map(|k| crate::cluster::key_slot(k)),
            !script.flags.shebang || script.flags.allow_cross_slot,
        ),
        Code::Function { flags, .. } => (
            keys.first().map(|k| crate::cluster::key_slot(k)),
            flags.allow_cross_slot,
        ),
    };
    let run = engine::Run {
        slot,
        cross_slot,
        deny_oom: cx.oom && !allow_oom,
        resp3: false,
        repl: api::REPL_ALL,
        err_line: None,
        started,
        limit,
        budget: speculative.then_some(limit),
        aborted: false,
        busy: false,
        killed: false,
        control: control.clone(),
    };
    let client_resp3 = cx.out.resp3;
    let generation = server.scripts.generation.load(Relaxed);
    let mut aborted = false;
    let outcome = engine::with_vm(generation, |vm| {
        let (f, source) = match code {
            Code::Eval { sha, script } => {
                (vm.function(sha, &lua_body(&script.body))?, "@user_script")
            }
            Code::Function { name, .. } => {
                let libs = server.scripts.libraries.read();
                (vm.callback(&libs, name)?, "@user_function")
            }
        };
        let target = if function {
            engine::Target::Function(&f)
        } else {
            engine::Target::Script(&f)
        };
        let (result, run) = vm.run(target, keys, argv, run, |lua, mode, call_args| {
            call(cx, lua, mode, call_args, read_only)
        });
        aborted = run.aborted;
        let mut reply = Vec::new();
        match &result {
            Ok(v) => {
                let mut out = crate::reply::Out::new(&mut reply, client_resp3);
                convert::lua_to_reply(&mut out, v);
            }
            Err(e) => {
                let text = error_text(&vm.lua, e, run.killed);
                let located = match run.err_line {
                    Some(line) => {
                        let who = match code {
                            Code::Eval { sha, .. } => String::from_utf8_lossy(sha),
                            Code::Function { name, .. } => name.as_str().into(),
                        };
                        format!("{text} script: {who}, on {source}:{line}.")
                    }
                    _ => text,
                };
                crate::reply::Out::new(&mut reply, client_resp3).error(&located);
            }
        }
        Ok::<_, String>(reply)
    });
    if let Some(control) = control {
        control.running.store(false, Relaxed);
        control.set_busy(false);
        if function {
            *server.scripts.running_function.lock() = None;
        }
    }
    if aborted {
        return Attempt::Aborted;
    }
    Attempt::Done(outcome.map_err(|e| format!("ERR {e}")))
}

/// `FCALL function numkeys [key ...] [arg ...]`
fn fcall(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let code = lookup_function(cx, args[1])?;
    run(cx, args, code, false)
}

/// `FCALL_RO function numkeys [key ...] [arg ...]`
fn fcall_ro(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let code = lookup_function(cx, args[1])?;
    run(cx, args, code, true)
}

fn lookup_function(cx: &Ctx, name: &[u8]) -> Result<Code, CommandError> {
    let name = String::from_utf8_lossy(name);
    let libs = cx.server.scripts.libraries.read();
    let (lib, i) = libs
        .function(&name)
        .ok_or_else(|| CommandError::err("Function not found"))?;
    Ok(Code::Function {
        name: name.into_owned(),
        flags: lib.functions[i].flags,
        lib: lib.clone(),
        index: i,
    })
}

/// `FUNCTION KILL`
fn function_kill(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    kill(cx, true)
}

/// The text of the error a script raised: an `{err=...}` table's text as it is, a string
/// with `ERR ` before it (Redis's message handler does the same).
pub(super) fn error_text(lua: &Lua, e: &Value, killed: bool) -> String {
    if killed {
        return "ERR Script killed by user with SCRIPT KILL...".into();
    }
    match e {
        Value::Table(t) => match t.raw_get::<Value>("err") {
            Ok(Value::String(s)) => {
                let s = String::from_utf8_lossy(&s.as_bytes()).into_owned();
                s.strip_prefix('-').map(str::to_string).unwrap_or(s)
            }
            _ => "ERR unknown error".into(),
        },
        other => {
            let s = lua
                .coerce_string(other.clone())
                .ok()
                .flatten()
                .map(|s| String::from_utf8_lossy(&s.as_bytes()).into_owned())
                .unwrap_or_default();
            if let Value::Error(e) = other {
                // Raised from Rust: a command's error as it is, a message after `ERR `.
                let (text, reply) = api::error_text(e);
                return if reply {
                    text.strip_prefix('-').map(str::to_string).unwrap_or(text)
                } else {
                    format!("ERR {text}")
                };
            }
            format!("ERR {s}")
        }
    }
}

/// `redis.call` / `redis.pcall` / `redis.acl_check_cmd`: the first Lua argument says which
/// (0, 1, 2). A failure is raised ([`api::CallError`]) by `call` and `acl_check_cmd`, and
/// returned as an `{err=...}` table by `pcall`.
fn call(
    cx: &mut Ctx,
    lua: &Lua,
    mode: i64,
    args: MultiValue,
    read_only: bool,
) -> mlua::Result<Value> {
    let it = args.into_iter();
    let fail = |msg: &str| -> mlua::Result<Value> {
        if mode == 1 {
            let t = lua.create_table()?;
            t.raw_set("err", msg)?;
            return Ok(Value::Table(t));
        }
        Err(mlua::Error::external(api::CallError(msg.to_string())))
    };
    let mut argv: SmallVec<[Vec<u8>; 8]> = SmallVec::new();
    for v in it {
        match v {
            Value::String(s) => argv.push(s.as_bytes().to_vec()),
            // Redis 7.0 writes numbers with `%.17g`.
            Value::Integer(n) => argv.push(crate::util::fmt_g17(n as f64).into_bytes()),
            Value::Number(n) => argv.push(crate::util::fmt_g17(n).into_bytes()),
            _ => return fail("ERR Lua redis lib command arguments must be strings or integers"),
        }
    }
    if argv.is_empty() {
        return fail("ERR Please specify at least one argument for this redis lib call");
    }
    let refs: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| &a[..]).collect();
    let cmd = match cx.server.commands.resolve(&refs) {
        Ok(c) => c,
        Err(_) if mode == 2 => return fail("ERR Invalid command passed to redis.acl_check_cmd()"),
        Err(_) => return fail("ERR Unknown Redis command called from script"),
    };
    if mode == 2 {
        return Ok(Value::Boolean(super::acl::permits(cx, cmd, &refs)));
    }
    let spec = cmd.spec;
    if !spec.arity_ok(refs.len()) {
        return fail("ERR Wrong number of args calling Redis command from script");
    }
    if spec.flags & NOSCRIPT != 0 && !cx.server.scripts.allow_deny_script.load(Relaxed) {
        return fail("ERR This Redis command is not allowed from script");
    }
    if let Err(e) = super::acl::check(cx, cmd, &refs, super::acl::Place::Script) {
        return fail(e.text());
    }
    // Cluster mode: only keys this node serves, and (unless the script allows otherwise)
    // only the one slot the script started on.
    if cx.server.cluster.is_some() && !cx.trusted_stream() {
        match super::cluster::route_script_call(cx, cmd, &refs) {
            Err(e) => return fail(e),
            Ok(Some(slot)) => {
                if let Some(mut run) = lua.app_data_mut::<engine::Run>() {
                    match run.slot {
                        Some(s) if s != slot && !run.cross_slot => {
                            drop(run);
                            return fail(
                                "ERR Script attempted to access keys that do not hash to the same slot",
                            );
                        }
                        None => run.slot = Some(slot),
                        _ => {}
                    }
                }
            }
            Ok(None) => {}
        }
    }
    // One look at the run: its time checks, and how the command's reply and effects go.
    let (resp3, repl, deny_oom) = match lua.app_data_mut::<engine::Run>() {
        Some(mut run) => {
            run.tick()?;
            (run.resp3, run.repl as u8, run.deny_oom)
        }
        None => (false, crate::feed::TO_ALL, false),
    };
    // A speculative run stops (uncatchably) where it would have to wait out of order or
    // do what it cannot undo (see `atomic`).
    if cx.speculation.is_some() {
        let stop = |lua: &Lua| {
            if let Some(mut run) = lua.app_data_mut::<engine::Run>() {
                run.aborted = true;
            }
            Err(mlua::Error::external(atomic::Abort))
        };
        if spec.flags & WRITE != 0 && read_only {
            // Refused below without touching anything.
        } else if atomic::prepare(cx, cmd, &refs).is_err() {
            return stop(lua);
        }
    }
    if deny_oom && spec.flags & DENYOOM != 0 {
        return fail(crate::error::OOM);
    }
    if spec.flags & WRITE != 0 {
        if read_only {
            return fail("ERR Write commands are not allowed from read-only scripts.");
        }
        if deny_oom {
            if let Some(mut run) = lua.app_data_mut::<engine::Run>() {
                run.deny_oom = false;
            }
        }
        // The replication write gate, as for a client's own write (READONLY, NOREPLICAS).
        if let Some(e) = cx.server.repl.gate(cx.client, spec.flags) {
            return fail(e);
        }
        if cx.speculation.is_none() {
            cx.server.scripts.control.wrote.store(true, Relaxed);
        }
    }
    let saved = std::mem::replace(&mut cx.out.resp3, resp3);
    let mark = cx.out.buf.len();
    // `redis.set_repl`: where this command's effects go (the flags are the feed's).
    cx.repl_to = repl;
    cx.script_call = true;
    // The command's own duration (slow log, commandstats), not the script's so far.
    cx.mark = crate::clock::instant();
    super::execute(cx, &refs);
    cx.script_call = false;
    cx.repl_to = crate::feed::TO_ALL;
    cx.out.resp3 = saved;
    let decoded = kiln_resp::decode(&cx.out.buf[mark..]);
    cx.out.buf.truncate(mark);
    let reply = match decoded {
        Ok((v, _)) => v,
        Err(_) => return fail("ERR the command's reply could not be read"),
    };
    match convert::reply_to_lua(lua, reply, resp3)? {
        Ok(v) => Ok(v),
        Err(e) => fail(&e),
    }
}

/// `SCRIPT LOAD script`
fn script_load(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (sha, _) = load(cx, args[2])?;
    cx.out.bulk(&sha);
    Ok(())
}

/// `SCRIPT EXISTS sha1 [sha1 ...]`
fn script_exists(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    cx.out.array(args.len() - 2);
    for a in &args[2..] {
        let found = by_sha(cx, a).is_ok();
        cx.out.int(found as i64);
    }
    Ok(())
}

/// `SCRIPT FLUSH [ASYNC|SYNC]`
fn script_flush(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    match args.get(2) {
        None => {}
        Some(m)
            if args.len() == 3
                && (m.eq_ignore_ascii_case(b"sync") || m.eq_ignore_ascii_case(b"async")) => {}
        _ => {
            return Err(CommandError::err(
                "SCRIPT FLUSH only support SYNC|ASYNC option",
            ))
        }
    }
    cx.server.scripts.flush();
    cx.out.ok();
    Ok(())
}

/// `SCRIPT KILL`
fn script_kill(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    kill(cx, false)
}

/// SCRIPT KILL (`function` false) or FUNCTION KILL: stops the running script or function
/// if it has not written.
fn kill(cx: &mut Ctx, function: bool) -> CmdResult {
    let control = &cx.server.scripts.control;
    if !control.running.load(Relaxed) {
        return Err(E("NOTBUSY No scripts in execution right now."));
    }
    if control.function.load(Relaxed) != function {
        return Err(E(if function {
            "NOTBUSY No scripts in execution right now."
        } else {
            "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
        }));
    }
    if control.wrote.load(Relaxed) {
        return Err(E("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command."));
    }
    control.kill.store(true, Relaxed);
    cx.out.ok();
    Ok(())
}

/// `SCRIPT DEBUG YES|SYNC|NO`: Kiln has no Lua debugger; NO is accepted.
fn script_debug(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mode = args[2];
    if mode.eq_ignore_ascii_case(b"no") {
        cx.out.ok();
        return Ok(());
    }
    if mode.eq_ignore_ascii_case(b"yes") || mode.eq_ignore_ascii_case(b"sync") {
        return Err(CommandError::err(
            "SCRIPT DEBUG is not supported: this server has no Lua debugger",
        ));
    }
    Err(CommandError::err("Use SCRIPT DEBUG YES/SYNC/NO"))
}

/// `SCRIPT HELP`
fn script_help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    super::server::help_reply(
        &mut cx.out,
        "SCRIPT",
        &[
            "DEBUG (YES|SYNC|NO)",
            "    Set the Lua debugger mode for later scripts (this server has none: NO only).",
            "EXISTS <sha1> [<sha1> ...]",
            "    For each <sha1>, 1 if the script is in the cache, else 0.",
            "FLUSH [ASYNC|SYNC]",
            "    Empty the script cache.",
            "KILL",
            "    Stop the running script, if it has not written anything.",
            "LOAD <script>",
            "    Put <script> in the cache without running it; reply with its SHA1.",
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs() {
        assert!(!shebang(b"return 1").unwrap().shebang);
        let f = shebang(b"#!lua flags=no-writes,allow-stale\nreturn 1").unwrap();
        assert!(f.shebang && f.no_writes && f.allow_stale && !f.allow_oom);
        assert_eq!(
            shebang(b"#!lua flags=bogus\n").unwrap_err(),
            "ERR Unexpected flag in script shebang: bogus"
        );
        assert_eq!(
            shebang(b"#!py\n").unwrap_err(),
            "ERR Unexpected engine in script shebang: #!py"
        );
        assert_eq!(
            shebang(b"#!lua name=x\n").unwrap_err(),
            "ERR Unknown lua shebang option: name=x"
        );
        assert_eq!(&lua_body(b"#!lua\nreturn 1")[..], b"\nreturn 1");
    }
}
