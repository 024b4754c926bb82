//! The seam between persistence and the function engine (FUNCTION LOAD and friends).
//!
//! RDB files, full syncs, AOF bases and FUNCTION DUMP / RESTORE carry Redis 7.0 function
//! libraries as their code (`#!lua name=<library>` and the rest; the codec is
//! `kiln_formats::rdb`). Persistence reaches the engine only through the two hooks here,
//! which the engine registers once with [`set_hooks`]:
//!
//! * `load(server, code)`: create the library from its code, as FUNCTION LOAD would
//!   (without REPLACE: a library that exists is an error). Called by every RDB load
//!   (start-up, DEBUG RELOAD, a replica's full sync, an AOF's RDB base) for each library
//!   record, in file order, before the keys. An `Err` fails the load, as a library Redis
//!   cannot create fails Redis's (`Failed loading library, <error>`). It may run while the
//!   loading thread holds every shard lock (DEBUG RELOAD inside EXEC), so it must not take
//!   shard locks.
//! * `list(server)`: the code of every library, in the order to write them. Called at each
//!   snapshot point (SAVE, BGSAVE, full sync, AOF rewrite) while every shard lock is
//!   held, so that the libraries written are those of that point: it must be quick and
//!   must not take shard locks, nor wait on a lock whose holder may wait for one.
//!
//! Until the hooks are set, [`restore_library`] is an error and [`library_codes`] is
//! empty: files are written without libraries, and the server's RDB loader logs and skips
//! the libraries of a file rather than failing (see its `rdb::Functions` implementation).
//!
//! Clearing the libraries before a load that replaces the dataset (full sync, DEBUG
//! RELOAD) is the engine's side too: Redis empties them along with the keys there.

use std::sync::OnceLock;

use crate::server::Server;

/// Creates a library from its code (see the module docs).
pub type LoadHook = fn(&Server, &[u8]) -> Result<(), String>;
/// The code of every library (see the module docs).
pub type ListHook = fn(&Server) -> Vec<Vec<u8>>;

/// The engine's hooks.
#[derive(Clone, Copy, Debug)]
pub struct Hooks {
    pub load: LoadHook,
    pub list: ListHook,
}

/// The registered hooks; empty until the function engine calls [`set_hooks`].
pub static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Registers the engine's hooks. The first registration holds for the life of the process
/// (several servers in one process, as in tests, share it); later calls are ignored.
pub fn set_hooks(load: LoadHook, list: ListHook) {
    let _ = HOOKS.set(Hooks { load, list });
}

/// Whether the engine registered its hooks.
pub fn hooks_set() -> bool {
    HOOKS.get().is_some()
}

/// Creates the library whose code is `code` in `server` through the engine's load hook;
/// an error without one.
pub fn restore_library(server: &Server, code: &[u8]) -> Result<(), String> {
    match HOOKS.get() {
        Some(h) => (h.load)(server, code),
        None => Err("functions are not supported".to_string()),
    }
}

/// The code of every library of `server`, through the engine's list hook; none without
/// one.
pub fn library_codes(server: &Server) -> Vec<Vec<u8>> {
    match HOOKS.get() {
        Some(h) => (h.list)(server),
        None => Vec::new(),
    }
}
