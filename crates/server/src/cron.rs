//! Background jobs that run `hz` times a second: active expiry and the samples behind
//! INFO's instantaneous metrics.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::server::Server;
use crate::storage::SHARDS;

/// Keys with a TTL examined per shard visit.
const KEYS_PER_SHARD_VISIT: usize = 256;

/// Share of each cron period that active expiry may use (Redis: 25%).
const EXPIRE_TIME_PERCENT: u64 = 25;

pub async fn run(server: Arc<Server>) {
    let mut cursor = 0usize; // position over all (db, shard) pairs
    loop {
        let hz = u64::from(server.hot.hz.load(Relaxed).max(1));
        let period = Duration::from_millis(1000 / hz);
        tokio::time::sleep(period).await;
        if server.shutting_down.load(Relaxed) {
            return;
        }
        if server.active_expire.load(Relaxed) {
            let budget = period * EXPIRE_TIME_PERCENT as u32 / 100;
            cursor = active_expire(&server, cursor, budget);
        }
        sample_metrics(&server);
    }
}

/// Visits shards round robin from `cursor`, deleting expired keys, until `budget` is spent
/// or every shard was visited once. Returns the next cursor.
pub fn active_expire(server: &Server, mut cursor: usize, budget: Duration) -> usize {
    let start = crate::clock::instant();
    let total = server.keyspace.dbs.len() * SHARDS;
    for _ in 0..total {
        let (db, idx) = (cursor / SHARDS, cursor % SHARDS);
        cursor = (cursor + 1) % total;
        let now = crate::clock::now_ms();
        let mut shard = server.keyspace.dbs[db].shards[idx].lock();
        if shard.expires_len() == 0 {
            continue;
        }
        // Keep going on this shard while it is mostly expired keys, like Redis's cycle.
        loop {
            let (examined, deleted) = shard.expire_cycle(now, KEYS_PER_SHARD_VISIT);
            if deleted * 4 < examined || examined < KEYS_PER_SHARD_VISIT || start.elapsed() >= budget {
                break;
            }
        }
        let keys = std::mem::take(&mut shard.expired);
        drop(shard);
        server.keys_expired(db, keys);
        if start.elapsed() >= budget {
            break;
        }
    }
    cursor
}

fn sample_metrics(server: &Server) {
    let now = crate::clock::now_ms();
    let ops = server.stats.sum(|s| &s.commands);
    let inp = server.stats.sum(|s| &s.net_input);
    let out = server.stats.sum(|s| &s.net_output);
    let mut m = server.inst.lock();
    let dt = now.saturating_sub(m.last_sample_ms);
    if m.last_sample_ms != 0 && dt > 0 {
        m.ops_per_sec = ops.saturating_sub(m.last_ops) * 1000 / dt;
        m.in_kbps = inp.saturating_sub(m.last_in) as f64 * 1000.0 / dt as f64 / 1024.0;
        m.out_kbps = out.saturating_sub(m.last_out) as f64 * 1000.0 / dt as f64 / 1024.0;
    }
    m.last_sample_ms = now;
    m.last_ops = ops;
    m.last_in = inp;
    m.last_out = out;
}
