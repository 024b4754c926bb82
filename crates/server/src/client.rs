//! Per-connection state, owned by the connection's task.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::server::ClientHandle;

/// One client connection's state.
pub struct Client {
    pub id: u64,
    /// Selected database.
    pub db: usize,
    /// RESP3 after `HELLO 3`.
    pub resp3: bool,
    /// False until AUTH succeeds when `requirepass` is set.
    pub authenticated: bool,
    /// Close the connection once the pending replies are written (QUIT, CLIENT KILL,
    /// protocol errors).
    pub close_after_reply: bool,
    /// CLIENT REPLY OFF: every reply is dropped until CLIENT REPLY ON.
    pub reply_off: bool,
    /// CLIENT REPLY SKIP ran: the next command's reply is dropped.
    pub reply_skip_next: bool,
    /// The reply of the command now running is dropped (armed from `reply_skip_next`).
    pub reply_skip: bool,
    /// CLIENT NO-TOUCH ON: the client's reads leave keys' access time alone.
    pub no_touch: bool,
    /// In MONITOR mode: its `subscriber` queue receives the monitor feed.
    pub monitor: bool,
    /// Cluster mode: ASKING was sent (served once by a node importing the slot), and
    /// READONLY (reads served by a replica of the slot's primary).
    pub asking: bool,
    pub cluster_readonly: bool,
    /// The server's own client (the cluster dropping a lost slot's keys): never
    /// redirected.
    pub internal: bool,
    /// The shared view other connections see (CLIENT LIST / KILL).
    pub handle: Arc<ClientHandle>,
    /// Set by a blocking command that found nothing: the connection waits on it.
    pub blocked: Option<crate::command::blocking::Blocked>,
    /// Commands queued since MULTI.
    pub multi: Option<crate::command::transaction::Multi>,
    /// Set when a WATCHed key is modified.
    pub watch_flag: Arc<AtomicBool>,
    /// WATCHed keys.
    pub watched: Vec<crate::command::transaction::Watched>,
    /// The message queue, once the client subscribed to anything.
    pub subscriber: Option<Arc<crate::pubsub::Subscriber>>,
    /// Subscribed channels, patterns and shard channels.
    pub subscriptions: [hashbrown::HashSet<Vec<u8>>; 3],
    /// Replication: the primary's link, the offset WAIT waits for, what a replica
    /// announced before PSYNC (see `repl`).
    pub repl: crate::repl::ClientRepl,
    /// The ACL user and the rules last read; `None` for the server's own clients (an AOF
    /// being loaded, the primary's link), which may run anything.
    pub acl: Option<crate::acl::Session>,
    /// CLIENT TRACKING (see `command::tracking`).
    pub tracking: crate::command::tracking::ClientTracking,
    /// Set by MIGRATE once it has read its keys: the connection runs the network exchange,
    /// then the command's end (see `command::migrate`).
    pub migrate: Option<Box<crate::command::migrate::Pending>>,
}

impl Client {
    pub fn new(handle: Arc<ClientHandle>, auth_required: bool) -> Self {
        Self {
            id: handle.id,
            db: 0,
            resp3: false,
            authenticated: !auth_required,
            close_after_reply: false,
            reply_off: false,
            reply_skip_next: false,
            reply_skip: false,
            no_touch: false,
            monitor: false,
            asking: false,
            cluster_readonly: false,
            internal: false,
            handle,
            blocked: None,
            multi: None,
            watch_flag: Arc::new(AtomicBool::new(false)),
            watched: Vec::new(),
            subscriber: None,
            subscriptions: Default::default(),
            repl: Default::default(),
            acl: None,
            tracking: Default::default(),
            migrate: None,
        }
    }

    /// Whether the client has any subscription (RESP2 clients are then in subscribed mode).
    pub fn subscribed(&self) -> bool {
        self.subscriptions.iter().any(|s| !s.is_empty())
    }

    /// Selects a database, keeping the shared view in sync.
    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.handle
            .db
            .store(db as u32, std::sync::atomic::Ordering::Relaxed);
    }

    /// Switches protocol version, keeping the shared view in sync.
    pub fn set_resp(&mut self, v: u8) {
        self.resp3 = v == 3;
        if let Some(s) = &self.subscriber {
            s.resp3.store(v == 3, std::sync::atomic::Ordering::Relaxed);
        }
        self.handle
            .resp
            .store(v, std::sync::atomic::Ordering::Relaxed);
    }
}
