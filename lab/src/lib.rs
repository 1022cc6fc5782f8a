//! The live proof, as code both the `lab` command and the proof test run: real shop processes
//! behind a real nginx on loopback ports, shoppers driving them like browsers, a replica killed,
//! and an account of what was lost.

pub mod cluster;
pub mod deploy;
pub mod redis_cluster;
pub mod report;
pub mod scenario;
pub mod shopper;
pub mod svg;
pub mod tls;

pub use cluster::{Balancing, Cluster, ClusterConfig, NginxConfs, signal_group};
pub use redis_cluster::RedisCluster;
pub use scenario::{Mode, Outcome};
pub use shopper::Shopper;

/// A free TCP port on loopback, for a replica or nginx.
pub fn free_port() -> std::io::Result<u16> {
    free_ports().map(|[port]| port)
}

/// `N` different free TCP ports on loopback. Each probe stays bound until all are chosen: a
/// port is free again as soon as its probe closes, and the kernel may hand it to the next
/// probe (seen: a Redis node's bus port chosen again as another node's port, which then could
/// not start).
pub fn free_ports<const N: usize>() -> std::io::Result<[u16; N]> {
    let probes = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, probe) in ports.iter_mut().zip(&probes) {
        *port = probe.local_addr()?.port();
    }
    Ok(ports)
}
