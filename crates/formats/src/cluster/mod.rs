//! Redis Cluster's formats: the binary messages nodes exchange on the cluster bus (`bus`)
//! and the `nodes.conf` file each node keeps its view of the cluster in (`nodes_conf`,
//! whose node lines are also CLUSTER NODES's reply). Both as Redis 7.0 writes them, so a
//! Kiln node can join a cluster of Redis nodes; no networking and no cluster state here.

pub mod bus;
pub mod nodes_conf;
