//! The Lua interpreter scripts run in.
//!
//! Each thread that runs a script has an interpreter of its own ([`with_vm`]), built once
//! with the libraries and the `redis` table Redis 7.0 gives scripts, and with its globals
//! protected: a script reads globals through a read-only view (a missing one is an error,
//! as is any assignment), so no script can leave state for the next one, and interpreters
//! on different threads behave alike. Compiled scripts are kept per interpreter, by SHA1;
//! `SCRIPT FLUSH` bumps a generation that makes every interpreter start afresh.
//!
//! A run ([`Vm::run`]) calls the script under `xpcall` with a message handler that notes the
//! script line an error came from (Redis's `script: <sha>, on @user_script:<line>.`).
//! `redis.call` and `redis.pcall` reach the command that runs the script through the run's
//! command function, which borrows the command's context: it is lent to the thread for the
//! run only ([`call_current`]), so the borrow never outlives the run. (An `mlua` scope does
//! the same without `unsafe`, but costs a closure, two registry writes, a destructor list
//! and a second crossing into Lua for every call: about a third of the instructions of a
//! one-command script, measured with `bench/instructions.py --only EVALSHA`.)

use hashbrown::HashMap;
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::Arc;

use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

/// What a run needs beyond the interpreter: set before the script starts, read by the
/// `redis.*` functions and the instruction hook.
pub struct Run {
    /// `redis.setresp`: the protocol replies reach the script in.
    pub resp3: bool,
    /// `redis.set_repl` flags (`REPL_*`).
    pub repl: u32,
    /// The script line an error was raised at (found by the message handler).
    pub err_line: Option<i32>,
    /// When the run started, and after how long it counts as busy.
    pub started: std::time::Instant,
    pub limit: std::time::Duration,
    /// A speculative run (`atomic`): how long it may run before it stops to run alone.
    pub budget: Option<std::time::Duration>,
    /// The speculative run stopped (`atomic::Abort`): every later call and hook raises
    /// again, so that no `pcall` in the script keeps it going.
    pub aborted: bool,
    /// Reported busy once (the gate told, the log written).
    pub busy: bool,
    /// SCRIPT KILL stopped it.
    pub killed: bool,
    /// Memory was over `maxmemory` with nothing to evict when the script started, and it
    /// is not `allow-oom`: `denyoom` commands are refused until it has written (Redis's
    /// `scriptVerifyOOM`).
    pub deny_oom: bool,
    /// Checked by the hook: a SCRIPT KILL request, a busy report. A run alone has it; a
    /// speculative one never runs long enough to be killed.
    pub control: Option<Arc<super::Control>>,
    /// Cluster mode: the slot the script's keys so far hash to (its declared keys', then
    /// its calls'), and whether its calls may leave it (`allow-cross-slot-keys`, or a
    /// script without a shebang).
    pub slot: Option<u16>,
    pub cross_slot: bool,
}

impl Run {
    /// The time checks, from the instruction hook and before every `redis.call` (a script
    /// spending its time in commands runs few instructions): a speculative run past its
    /// budget stops (`atomic::Abort`); a run alone stops if SCRIPT KILL asked, and is
    /// reported busy once past `busy-reply-threshold`.
    pub fn tick(&mut self) -> mlua::Result<()> {
        if let Some(budget) = self.budget {
            if self.aborted || self.started.elapsed() >= budget {
                self.aborted = true;
                return Err(mlua::Error::external(super::atomic::Abort));
            }
            return Ok(());
        }
        let Some(control) = self.control.clone() else {
            return Ok(());
        };
        if control.kill_requested() {
            self.killed = true;
            return Err(mlua::Error::runtime(
                "Script killed by user with SCRIPT KILL...",
            ));
        }
        if !self.busy && self.started.elapsed() >= self.limit {
            self.busy = true;
            control.set_busy(true);
        }
        Ok(())
    }
}

/// The command function of a run (`redis.call`'s mode, then its arguments).
type CallFn<'a> = dyn FnMut(&Lua, i64, MultiValue) -> mlua::Result<Value> + 'a;

thread_local! {
    /// The command function of the run in progress on this thread, lent by [`Vm::run`].
    static CALL: Cell<Option<NonNull<CallFn<'static>>>> = const { Cell::new(None) };
}

/// `redis.call` (mode 0), `redis.pcall` (1) and `redis.acl_check_cmd` (2): runs the command
/// function of this thread's run in progress.
#[allow(unsafe_code)]
pub fn call_current(lua: &Lua, mode: i64, args: MultiValue) -> mlua::Result<Value> {
    let Some(f) = CALL.take() else {
        return Err(mlua::Error::runtime(
            "redis.call is only available while a script runs",
        ));
    };
    /// Puts the function back when the call ends, however it ends.
    struct Lent(NonNull<CallFn<'static>>);
    impl Drop for Lent {
        fn drop(&mut self) {
            CALL.set(Some(self.0));
        }
    }
    let lent = Lent(f);
    // SAFETY: `Vm::run` stored this pointer from a `&mut` to its `call` closure, which stays
    // alive and is not otherwise used until `run` empties the cell (by a guard, so also
    // when unwinding). While the closure runs the pointer is out of the cell, so a nested
    // call finds none and no second `&mut` is ever made from it.
    let f = unsafe { &mut *lent.0.as_ptr() };
    f(lua, mode, args)
}

/// One thread's interpreter.
pub struct Vm {
    pub lua: Lua,
    generation: u64,
    funcs: HashMap<[u8; 40], Function>,
    /// What [`Vm::report`] last added to the total.
    reported: usize,
    /// The message handler `xpcall` runs scripts with.
    handler: Function,
    xpcall: Function,
    /// The real globals (KEYS and ARGV are set here) and the scripts' read-only view.
    globals: Table,
    env: Table,
    /// The view libraries and their functions see, its load-time switch, and the caller of
    /// a registered function (see the bootstrap).
    fenv: Table,
    set_loading: Function,
    invoke: Function,
    /// Registered functions by name, as of library generation `fn_generation`.
    pub functions: HashMap<String, Function>,
    pub fn_generation: u64,
}

/// What to run: an EVAL script (`KEYS` and `ARGV` globals) or a registered function
/// (called with the two tables).
pub enum Target<'f> {
    Script(&'f Function),
    Function(&'f Function),
}

/// A function a library registers (`redis.register_function`), collected while its code
/// runs.
pub struct Registered {
    pub name: String,
    pub description: Option<Vec<u8>>,
    pub flags: super::ScriptFlags,
    pub callback: Function,
}

/// The app data a library load collects into.
#[derive(Default)]
pub struct Registering(pub Vec<Registered>);

thread_local! {
    static VM: RefCell<Option<Vm>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's interpreter, made (or made again after a SCRIPT FLUSH of
/// `generation`) first.
pub fn with_vm<R>(generation: u64, f: impl FnOnce(&mut Vm) -> R) -> mlua::Result<R> {
    VM.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|vm| vm.generation != generation) {
            *slot = None;
            *slot = Some(Vm::new(generation)?);
        }
        Ok(f(slot.as_mut().expect("made above")))
    })
}

/// Memory every thread's interpreter uses together (INFO `used_memory_lua`), as of each
/// one's last run.
pub fn used_memory() -> usize {
    LUA_MEMORY.load(std::sync::atomic::Ordering::Relaxed)
}

static LUA_MEMORY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Vm {
    /// Brings [`used_memory`] up to date with this interpreter.
    pub fn report(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.lua.used_memory();
        LUA_MEMORY.fetch_add(now, Relaxed);
        LUA_MEMORY.fetch_sub(std::mem::replace(&mut self.reported, now), Relaxed);
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        LUA_MEMORY.fetch_sub(self.reported, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The Lua half of the environment: `pcall` turning errors into their text (as Redis 7.0's
/// does), the read-only view of the globals and library tables, and the removal of what
/// scripts do not get. Returns the view.
const BOOTSTRAP: &str = r#"
local G = _G
local error, type, rawget, rawset, pcall, tostring, setmetatable, setfenv, loadstring, select =
      error, type, rawget, rawset, pcall, tostring, setmetatable, setfenv, loadstring, select
-- `rawset` (Kiln's, refusing read-only tables) and the functions above stay reachable.
local errtext = rawget(G, '__kiln').errtext
rawset(G, '__kiln', nil)
local function fix(ok, ...)
  if not ok then
    local e = ...
    if type(e) == 'table' and type(rawget(e, 'err')) == 'string' then
      return false, rawget(e, 'err')
    end
    if type(e) == 'userdata' then
      local text = errtext(e)
      if text then return false, text end
    end
  end
  return ok, ...
end
G.pcall = function(...) return fix(pcall(...)) end

local function deny() error("Attempt to modify a readonly table", 2) end
local function protect(t)
  return setmetatable({}, { __index = t, __newindex = deny, __metatable = false,
                            __readonly = true })
end
for _, name in ipairs({ 'string', 'table', 'math', 'coroutine', 'redis', 'bit', 'cjson',
                        'cmsgpack', 'struct' }) do
  if type(rawget(G, name)) == 'table' then rawset(G, name, protect(rawget(G, name))) end
end
-- Reads go straight to the globals table (no function call for a global that exists);
-- a missing one reaches the globals' own `__index`, set at the end, which raises.
local env = setmetatable({}, {
  __index = G,
  __newindex = deny,
  __metatable = false,
  __readonly = true,
})
G.loadstring = function(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then
    return nil, 'binary chunks are not loaded'
  end
  local f, e = loadstring(s, name)
  if f then setfenv(f, env) end
  return f, e
end
for _, name in ipairs({ 'print', 'setfenv', 'getfenv', 'newproxy', 'module', 'require',
                        'dofile', 'loadfile' }) do
  rawset(G, name, nil)
end
rawset(G, '_G', env)

-- Functions (FUNCTION LOAD): a library's code runs once with only `redis` (its load-time
-- table: register_function, log, the constants) in sight; the functions it registers run
-- later with everything a script sees. Both through one view, switched by `set_loading`.
local load_redis = rawget(G, '__kiln_load')
rawset(G, '__kiln_load', nil)
local function missing(k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 3)
end
local load_redis_view = setmetatable({}, {
  __index = function(_, k)
    local v = rawget(load_redis, k)
    if v == nil then missing(k) end
    return v
  end,
  __newindex = deny, __metatable = false, __readonly = true,
})
local function loading_index(_, k)
  if k == 'redis' then return load_redis_view end
  missing(k)
end
local fenv_mt = { __index = G, __newindex = deny, __metatable = false, __readonly = true }
local fenv = setmetatable({}, fenv_mt)
local function set_loading(on)
  fenv_mt.__index = on and loading_index or G
end
-- Calls a registered function with its two tables under `xpcall` (which passes no
-- arguments in Lua 5.1).
local function invoke(f, handler, keys, args)
  return xpcall(function() return f(keys, args) end, handler)
end
setmetatable(G, {
  __index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
  __metatable = false,
})
return env, fenv, set_loading, invoke
"#;

impl Vm {
    fn new(generation: u64) -> mlua::Result<Self> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::new(),
        )?;
        kiln_lua::register_all(&lua)?;
        super::api::register(&lua)?;
        let globals = lua.globals();
        let (env, fenv, set_loading, invoke): (Table, Table, Function, Function) =
            lua.load(BOOTSTRAP).set_name("=kiln").call(())?;
        let handler = lua.create_function(|lua, err: Value| {
            // The innermost frame of the script itself: where Redis reports the error.
            let line = (1..64)
                .map_while(|level| lua.inspect_stack(level))
                .find(|d| {
                    matches!(
                        d.source().source.as_deref(),
                        Some("@user_script" | "@user_function")
                    )
                })
                .map(|d| d.curr_line());
            if let Some(mut run) = lua.app_data_mut::<Run>() {
                run.err_line = line;
            }
            Ok(err)
        })?;
        let xpcall: Function = globals.raw_get("xpcall")?;
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(100_000),
            |lua, _| {
                if let Some(mut run) = lua.app_data_mut::<Run>() {
                    run.tick()?;
                }
                Ok(VmState::Continue)
            },
        );
        Ok(Self {
            lua,
            generation,
            funcs: HashMap::new(),
            reported: 0,
            handler,
            xpcall,
            globals,
            env,
            fenv,
            set_loading,
            invoke,
            functions: HashMap::new(),
            fn_generation: u64::MAX,
        })
    }

    /// The callback of function `name`, the libraries' code re-run first if the registry
    /// changed since this interpreter last ran it.
    pub fn callback(
        &mut self,
        libs: &super::functions::Libraries,
        name: &str,
    ) -> Result<Function, String> {
        if self.fn_generation != libs.generation {
            self.functions.clear();
            for lib in libs.iter() {
                let body = super::lua_body(&lib.code);
                // Each library loaded once already, so it loads again; one that no longer
                // would (it cannot change) leaves its functions missing.
                if let Ok(registered) = self.load_library(&body) {
                    for r in registered {
                        self.functions.insert(r.name, r.callback);
                    }
                }
            }
            self.fn_generation = libs.generation;
        }
        self.functions
            .get(name)
            .cloned()
            .ok_or_else(|| "ERR Function not found".to_string())
    }

    /// Runs a library's code (`body`: the shebang line blanked) to collect the functions
    /// it registers. `Err`: Redis's text for a compile or registration failure.
    pub fn load_library(&mut self, body: &[u8]) -> Result<Vec<Registered>, String> {
        let lua = &self.lua;
        let chunk = lua
            .load(body)
            .set_name("@user_function")
            .set_mode(mlua::ChunkMode::Text)
            .set_environment(self.fenv.clone())
            .into_function()
            .map_err(|e| {
                let msg = match &e {
                    mlua::Error::SyntaxError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                format!("ERR Error compiling function: {msg}")
            })?;
        lua.set_app_data(Registering::default());
        let _ = self.set_loading.call::<()>(true);
        let out = self
            .xpcall
            .call::<MultiValue>((chunk, self.handler.clone()));
        let _ = self.set_loading.call::<()>(false);
        let collected = lua
            .remove_app_data::<Registering>()
            .map(|r| r.0)
            .unwrap_or_default();
        let mut out = out.map_err(|e| format!("ERR {e}"))?.into_iter();
        if !matches!(out.next(), Some(Value::Boolean(true))) {
            let e = out.next().unwrap_or(Value::Nil);
            let text = super::error_text(lua, &e, false);
            self.report();
            return Err(format!("ERR Error registering functions: {text}"));
        }
        self.report();
        if collected.is_empty() {
            return Err("ERR No functions registered".into());
        }
        Ok(collected)
    }

    /// The compiled script `sha`, compiling `body` if this interpreter has not yet. `Err`
    /// carries Redis's compile error text.
    pub fn function(&mut self, sha: &[u8; 40], body: &[u8]) -> Result<Function, String> {
        if let Some(f) = self.funcs.get(sha) {
            return Ok(f.clone());
        }
        let f = self
            .lua
            .load(body)
            .set_name("@user_script")
            .set_mode(mlua::ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                let msg = match &e {
                    mlua::Error::SyntaxError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                format!("ERR Error compiling script (new function): {msg}")
            })?;
        self.funcs.insert(*sha, f.clone());
        Ok(f)
    }

    /// Runs `f` with `KEYS` and `ARGV` set and `call` as the per-run command function
    /// (`api::CALL`: called with the mode and the arguments of `redis.call`, `pcall` or
    /// `acl_check_cmd`). The script's result, or the error value it raised.
    pub fn run(
        &mut self,
        target: Target,
        keys: &[&[u8]],
        argv: &[&[u8]],
        run: Run,
        mut call: impl FnMut(&Lua, i64, MultiValue) -> mlua::Result<Value>,
    ) -> (Result<Value, Value>, Run) {
        /// Empties the cell when the run ends, however it ends, before `call` is dropped.
        struct Clear;
        impl Drop for Clear {
            fn drop(&mut self) {
                CALL.set(None);
            }
        }
        let f: &mut CallFn<'_> = &mut call;
        // SAFETY: only the lifetime is erased; `_clear` empties the cell before `call` goes
        // out of scope, and nothing else reads it (see `call_current`).
        #[allow(unsafe_code)]
        let f: NonNull<CallFn<'static>> = unsafe { std::mem::transmute(NonNull::from(f)) };
        CALL.set(Some(f));
        let _clear = Clear;
        let lua = &self.lua;
        let result = (|| -> mlua::Result<Result<Value, Value>> {
            let (keys, argv) = (strings(lua, keys)?, strings(lua, argv)?);
            let script = matches!(target, Target::Script(_));
            // Functions get no KEYS / ARGV globals (a stale pair must not show through).
            self.globals
                .raw_set("KEYS", if script { Some(&keys) } else { None })?;
            self.globals
                .raw_set("ARGV", if script { Some(&argv) } else { None })?;
            lua.set_app_data(run);
            let out = match target {
                Target::Script(f) => self.xpcall.call::<MultiValue>((f, &self.handler)),
                Target::Function(f) => {
                    self.invoke
                        .call::<MultiValue>((f, &self.handler, keys, argv))
                }
            };
            let mut out = out?.into_iter();
            let ok = matches!(out.next(), Some(Value::Boolean(true)));
            let v = out.next().unwrap_or(Value::Nil);
            Ok(if ok { Ok(v) } else { Err(v) })
        })();
        let run = lua.remove_app_data::<Run>().expect("set above");
        let result = result.unwrap_or_else(|e| {
            Err(lua
                .create_string(e.to_string())
                .map_or(Value::Nil, Value::String))
        });
        self.report();
        (result, run)
    }
}

fn strings(lua: &Lua, items: &[&[u8]]) -> mlua::Result<Table> {
    lua.create_sequence_from(items.iter().map(|s| mlua::BString::from(*s)))
}
