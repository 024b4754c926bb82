//! Kiln: a Redis 7 compatible, multi-threaded in-memory data store.
//!
//! # Layout
//!
//! * [`net`]: listener, worker threads, the per-connection read/execute/write loop;
//!   [`transport`]: the TCP, Unix socket and TLS transports it runs over; [`tls`]: TLS settings.
//! * [`command`]: the command table, the dispatcher, and one file per command family.
//! * [`storage`]: the sharded keyspace, compact entries and values, expiry. No RESP here.
//! * [`reply`]: the RESP2/RESP3 reply writer; [`error`]: every error text.
//! * [`config`]: parameters for the config file, command line and CONFIG GET/SET.
//! * [`server`]: process-wide shared state and stats; [`client`]: per-connection state.
//! * [`cron`]: active expiry and metrics sampling; [`clock`]: the only reader of time.
//! * [`exporter`] and [`metrics_http`]: the optional Prometheus endpoint (`metrics-port`).
//!
//! `docs/ARCHITECTURE.md` walks through the life of a command.

pub mod acl;
pub mod aof;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod cluster_bus;
pub mod command;
pub mod config;
pub mod crash;
pub mod cron;
pub mod error;
pub mod exporter;
pub mod feed;
pub mod geohash;
pub mod histogram;
pub mod latency;
pub mod maxmemory;
pub mod metrics_http;
pub mod migrate;
pub mod monitor;
pub mod net;
pub mod notify;
pub mod pause;
pub mod persist;
pub mod pqsort;
pub mod pubsub;
pub mod rdb;
pub mod registry;
pub mod repl;
pub mod reply;
pub mod server;
pub mod slowlog;
pub mod snapshot;
pub mod tls;
pub mod tracking;
pub mod transport;

/// The Redis version Kiln is compatible with, reported where clients read `redis_version`
/// (INFO, HELLO, the `redis-ver` field of the RDB files it writes).
pub const REDIS_VERSION: &str = "7.0.15";

// The layers below the server, under the names the server's modules use for them.
pub use kiln_store as storage;
pub use kiln_store::{digest, longdouble, util};
