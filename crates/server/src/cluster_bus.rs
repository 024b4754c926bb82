//! The cluster bus: this node's side of Redis Cluster's node-to-node protocol, on the
//! cluster port, and the cluster's cron (state, nodes.conf). Started by `main` in cluster
//! mode; it drives `crate::cluster`'s state with the whole server, so only `main` names it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::server::Server;

/// How often the cluster's cron runs (Redis's `clusterCron`: 10 times a second).
const TICK: Duration = Duration::from_millis(100);

/// Starts the cluster side of a cluster-mode server: this node's ports as bound, its
/// nodes.conf written, and the cron thread. Nothing outside cluster mode.
pub fn start(server: &Arc<Server>) -> Result<(), String> {
    let Some(cluster) = server.cluster.as_ref() else {
        return Ok(());
    };
    {
        let port = server.process.port.load(Relaxed);
        let mut st = cluster.state.write();
        let me = st.me_mut();
        if me.port == 0 || port != 0 {
            let bus_from_port = me.cport == me.port.wrapping_add(10000);
            me.port = port;
            if bus_from_port {
                me.cport = port.wrapping_add(10000);
            }
        }
        tracing::info!(
            "No cluster configuration found, I'm {}",
            crate::cluster::name_str(&st.myself)
        );
    }
    crate::command::cluster::save(cluster)
        .map_err(|e| format!("Could not save the cluster configuration file: {e}"))?;
    let weak = Arc::downgrade(server);
    std::thread::Builder::new()
        .name("kiln-cluster".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            let Some(server) = weak.upgrade() else { return };
            if server.process.shutting_down.load(Relaxed) {
                return;
            }
            if let Some(c) = server.cluster.as_ref() {
                cron(c);
            }
        })
        .map_err(|e| format!("cluster thread: {e}"))?;
    Ok(())
}

/// One cron step: recompute `cluster_state`, write nodes.conf if something changed.
fn cron(c: &Cluster) {
    let save = {
        let mut st = c.state.write();
        let s = &c.settings;
        st.update_state(
            crate::clock::now_ms(),
            s.require_full_coverage.load(Relaxed),
            s.node_timeout.load(Relaxed),
        );
        st.save_pending
    };
    if save {
        if let Err(e) = crate::command::cluster::save(c) {
            tracing::warn!("Could not save the cluster configuration file: {e}");
        }
    }
}
