//! The client registry: the shared, read-mostly view of every connection that CLIENT
//! LIST, CLIENT KILL, INFO clients and shutdown see. A connection owns its state
//! (`client::Client`); what other threads may read or ask of it lives in its
//! [`ClientHandle`], registered here for the connection's lifetime. Nothing here knows the
//! server, so pub/sub and replication can hold handles without depending on it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

/// Every registered connection by id (ascending: CLIENT LIST's order).
#[derive(Default)]
pub struct Registry(Mutex<BTreeMap<u64, Arc<ClientHandle>>>);

impl Registry {
    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<ClientHandle>>> {
        self.0.lock()
    }

    /// For the crash report, which must not wait on a lock a crashing thread may hold.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, BTreeMap<u64, Arc<ClientHandle>>>> {
        self.0.try_lock()
    }
}

/// The shared, read-mostly view of a connection (CLIENT LIST, CLIENT KILL, INFO clients).
pub struct ClientHandle {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
    pub created_ms: u64,
    pub db: AtomicU32,
    pub last_interaction_ms: AtomicU64,
    /// Command id of the last command, `u32::MAX` for none.
    pub last_cmd: AtomicU32,
    pub resp: AtomicU8,
    pub multi: AtomicU32,
    /// Channel, pattern and shard-channel subscription counts (CLIENT LIST sub/psub/ssub).
    pub sub: AtomicU32,
    pub psub: AtomicU32,
    pub ssub: AtomicU32,
    pub query_buf: AtomicU64,
    pub output_buf: AtomicU64,
    pub info: Mutex<ClientInfo>,
    /// Set to ask the connection to close (CLIENT KILL, SHUTDOWN).
    pub killed: AtomicBool,
    pub kill: tokio::sync::Notify,
}

/// The parts of a client's state that change rarely.
#[derive(Default, Clone)]
pub struct ClientInfo {
    pub name: Vec<u8>,
    pub lib_name: Vec<u8>,
    pub lib_ver: Vec<u8>,
    pub flags: String,
}

impl ClientHandle {
    pub fn new(id: u64, addr: String, laddr: String, fd: i32, now_ms: u64) -> Self {
        Self {
            id,
            addr,
            laddr,
            fd,
            created_ms: now_ms,
            db: AtomicU32::new(0),
            last_interaction_ms: AtomicU64::new(now_ms),
            last_cmd: AtomicU32::new(u32::MAX),
            resp: AtomicU8::new(2),
            multi: AtomicU32::new(0),
            sub: AtomicU32::new(0),
            psub: AtomicU32::new(0),
            ssub: AtomicU32::new(0),
            query_buf: AtomicU64::new(0),
            output_buf: AtomicU64::new(0),
            info: Mutex::new(ClientInfo::default()),
            killed: AtomicBool::new(false),
            kill: tokio::sync::Notify::new(),
        }
    }

    /// Asks the connection to close after its current command.
    pub fn kill(&self) {
        self.killed.store(true, Relaxed);
        self.kill.notify_one();
    }
}
