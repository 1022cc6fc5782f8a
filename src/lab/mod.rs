//! The live proof, as code both the `lab` command and the proof test run: real shop processes
//! behind a real nginx on loopback ports, shoppers driving them like browsers, a replica killed,
//! and an account of what was lost.

pub mod cluster;
pub mod redis_cluster;
pub mod report;
pub mod scenario;
pub mod shopper;
pub mod svg;

pub use cluster::{Balancing, Cluster, ClusterConfig, signal_group};
pub use redis_cluster::RedisCluster;
pub use scenario::{Mode, Outcome};
pub use shopper::Shopper;

/// A free TCP port on loopback, for a replica or nginx.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
