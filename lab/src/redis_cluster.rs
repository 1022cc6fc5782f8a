//! A real Redis Cluster on loopback for the tests, the lab and the benchmark: six
//! `redis-server --cluster-enabled yes` processes, three masters and three replicas, joined by
//! `redis-cli --cluster create`. Each node is its own process group, killed when the cluster is
//! dropped. Administration goes through `redis-cli`, which comes with the server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use super::{free_ports, signal_group};

/// How long a master may be unreachable before the cluster fails it over.
pub const NODE_TIMEOUT_MS: u64 = 1000;

pub struct RedisNode {
    pub port: u16,
    /// The cluster bus port, kept across a restart.
    bus: u16,
    child: Option<Child>,
}

pub struct RedisCluster {
    pub nodes: Vec<RedisNode>,
    dir: PathBuf,
}

/// One line of `CLUSTER NODES`: a node's id and port, whether it is a master that is up, the
/// master it replicates, and the slot ranges it serves.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    /// The line of the node that answered.
    pub myself: bool,
    pub master: bool,
    pub failed: bool,
    pub replica_of: Option<String>,
    pub slots: Vec<(u16, u16)>,
}

async fn redis_cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .context("could not run redis-cli (apt-get install redis-tools)")?;
    if !output.status.success() {
        bail!(
            "redis-cli {args:?} on {port}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn parse_nodes(text: &str) -> Vec<NodeInfo> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
            let flags = fields.get(2)?;
            let has = |flag: &str| flags.split(',').any(|f| f == flag);
            let slots = fields
                .iter()
                .skip(8)
                .filter(|f| !f.starts_with('['))
                .filter_map(|range| match range.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => range.parse().ok().map(|s| (s, s)),
                })
                .collect();
            Some(NodeInfo {
                id: (*fields.first()?).to_owned(),
                port,
                myself: has("myself"),
                master: has("master"),
                // `fail?` is one node's suspicion; `fail` is the cluster's verdict.
                failed: has("fail"),
                replica_of: fields
                    .get(3)
                    .filter(|master| **master != "-")
                    .map(|master| (*master).to_owned()),
                slots,
            })
        })
        .collect()
}

impl RedisCluster {
    /// Starts six nodes in `dir` and joins them, each master with one replica; returns when
    /// every node reports the cluster ok and every replica is in sync.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir: dir.to_owned(),
        };
        let ports: [u16; 12] = free_ports()?;
        for pair in ports.chunks(2) {
            let (port, bus) = (pair[0], pair[1]);
            let child = cluster.spawn(port, bus)?;
            cluster.nodes.push(RedisNode {
                port,
                bus,
                child: Some(child),
            });
        }
        for node in &cluster.nodes {
            wait_for(Duration::from_secs(10), || async {
                redis_cli(node.port, &["PING"])
                    .await
                    .is_ok_and(|r| r.contains("PONG"))
            })
            .await
            .with_context(|| format!("redis node {} did not start", node.port))?;
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        redis_cli(cluster.nodes[0].port, &args)
            .await
            .context("redis-cli --cluster create failed")?;
        cluster.wait_healthy(Duration::from_secs(20)).await?;
        cluster.pair_unpaired_replicas().await?;
        cluster.wait_replicated(Duration::from_secs(20)).await?;
        Ok(cluster)
    }

    /// `redis-cli --cluster create` sends each replica `CLUSTER REPLICATE` and ignores a
    /// refusal (a replica that did not know its master yet, which it retries once after the
    /// join and then ignores again); such a node stays an empty master and its master never
    /// gets a replica. Each such node is made the replica of a master that has none. Each node
    /// is asked about itself, whose answer is current, not a peer's gossip.
    async fn pair_unpaired_replicas(&self) -> anyhow::Result<()> {
        let mut selves = Vec::new();
        for node in &self.nodes {
            let text = redis_cli(node.port, &["CLUSTER", "NODES"]).await?;
            let me = parse_nodes(&text)
                .into_iter()
                .find(|n| n.myself)
                .with_context(|| {
                    format!("node {} does not say which line is its own", node.port)
                })?;
            selves.push(me);
        }
        for (replica, master) in unpaired_pairs(&selves) {
            eprintln!(
                "redis-cli left node {} without a master; it now replicates {}",
                replica.port, master.port
            );
            // redis-cli exits 0 on an error reply too: the reply says.
            let reply = redis_cli(replica.port, &["CLUSTER", "REPLICATE", &master.id]).await?;
            if reply.trim() != "OK" {
                bail!(
                    "node {} would not replicate {}: {}",
                    replica.port,
                    master.port,
                    reply.trim()
                );
            }
        }
        Ok(())
    }

    fn spawn(&self, port: u16, bus: u16) -> anyhow::Result<Child> {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-port", &bus.to_string()])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly", "no"])
            .args(["--logfile", &format!("redis-{port}.log")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("could not start redis-server")
    }

    /// The seed list for `REDIS_CLUSTER_NODES`.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The cluster as a live node sees it.
    pub async fn topology(&self) -> anyhow::Result<Vec<NodeInfo>> {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            if let Ok(text) = redis_cli(node.port, &["CLUSTER", "NODES"]).await {
                return Ok(parse_nodes(&text));
            }
        }
        bail!("no cluster node answers")
    }

    /// The ports of the masters serving slots, alive or not.
    pub async fn masters(&self) -> anyhow::Result<Vec<u16>> {
        let mut masters: Vec<u16> = self
            .topology()
            .await?
            .into_iter()
            .filter(|n| n.master && !n.slots.is_empty())
            .map(|n| n.port)
            .collect();
        masters.sort_unstable();
        Ok(masters)
    }

    /// The keys under `prefix` each master holds: (port, keys).
    pub async fn keys_by_master(&self, prefix: &str) -> anyhow::Result<Vec<(u16, Vec<String>)>> {
        let mut out = Vec::new();
        for port in self.masters().await? {
            let keys = redis_cli(port, &["--scan", "--pattern", &format!("{prefix}*")])
                .await?
                .lines()
                .map(str::to_owned)
                .collect();
            out.push((port, keys));
        }
        Ok(out)
    }

    /// SIGKILLs the node on `port`: no goodbye, as a crashed machine.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port)
            && let Some(child) = node.child.take()
            && let Some(group) = child.id()
        {
            signal_group(group, "KILL");
        }
    }

    /// Starts a killed node again on its port, with its identity (its nodes file): it rejoins
    /// the cluster, as a replica of whoever took over its slots.
    pub async fn restart(&mut self, port: u16) -> anyhow::Result<()> {
        let index = self
            .nodes
            .iter()
            .position(|n| n.port == port && n.child.is_none())
            .context("no killed node on that port")?;
        let child = self.spawn(port, self.nodes[index].bus)?;
        self.nodes[index].child = Some(child);
        Ok(())
    }

    /// Whether every master serving slots has a replica in sync (`state=online`): what a write
    /// waiting for one replica (`WAIT 1`) needs.
    pub async fn every_master_replicated(&self) -> bool {
        let Ok(topology) = self.topology().await else {
            return false;
        };
        for master in topology.iter().filter(|n| n.master && !n.slots.is_empty()) {
            let online = redis_cli(master.port, &["INFO", "replication"])
                .await
                .is_ok_and(|info| info.contains("state=online"));
            if !online {
                return false;
            }
        }
        true
    }

    /// Waits until [`Self::every_master_replicated`].
    pub async fn wait_replicated(&self, within: Duration) -> anyhow::Result<()> {
        self.wait_or_explain(within, "a Redis master has no replica in sync", || async {
            self.every_master_replicated().await
        })
        .await
    }

    /// [`wait_for`], failing with `what` and the cluster's [`Self::diagnosis`].
    async fn wait_or_explain<F, Fut>(
        &self,
        within: Duration,
        what: &str,
        check: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        match wait_for(within, check).await {
            Ok(()) => Ok(()),
            Err(err) => Err(err.context(format!(
                "{what}; the cluster then:\n{}",
                self.diagnosis().await
            ))),
        }
    }

    /// What each live node says of the cluster and of its replication, and the end of its
    /// log: what a failed wait shows, so that a failure says why.
    async fn diagnosis(&self) -> String {
        let mut out = String::new();
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let nodes = redis_cli(node.port, &["CLUSTER", "NODES"]).await;
            let replication = redis_cli(node.port, &["INFO", "replication"]).await;
            let log = std::fs::read_to_string(self.dir.join(format!("redis-{}.log", node.port)))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out.push_str(&format!(
                "-- node {}\nCLUSTER NODES:\n{}\nINFO replication:\n{}\nlog (last lines):\n{}\n",
                node.port,
                nodes.unwrap_or_else(|err| format!("{err:#}")),
                replication
                    .unwrap_or_else(|err| format!("{err:#}"))
                    .replace('\r', ""),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        out
    }

    /// Waits until every live node reports `cluster_state:ok` and every slot is served by a
    /// live master with an in-sync replica or, after a kill, by a promoted one.
    pub async fn wait_healthy(&self, within: Duration) -> anyhow::Result<()> {
        self.wait_or_explain(
            within,
            "the Redis Cluster did not become healthy",
            || async { self.all_slots_served().await },
        )
        .await
    }

    /// Whether every live node says the cluster is ok and no master serving slots is dead.
    pub async fn all_slots_served(&self) -> bool {
        let live: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect();
        for port in &live {
            let ok = redis_cli(*port, &["CLUSTER", "INFO"])
                .await
                .is_ok_and(|info| info.contains("cluster_state:ok"));
            if !ok {
                return false;
            }
        }
        let Ok(topology) = self.topology().await else {
            return false;
        };
        let served: u32 = topology
            .iter()
            .filter(|n| n.master && live.contains(&n.port))
            .flat_map(|n| n.slots.iter())
            .map(|(a, b)| u32::from(b - a) + 1)
            .sum();
        served == 16384
    }

    /// The master that took over `dead`'s slots, once one has.
    pub async fn promoted_for(&self, dead_slots: &[(u16, u16)]) -> Option<u16> {
        let topology = self.topology().await.ok()?;
        topology
            .iter()
            .find(|n| {
                n.master
                    && !n.failed
                    && self
                        .nodes
                        .iter()
                        .any(|m| m.port == n.port && m.child.is_some())
                    && dead_slots.iter().all(|range| n.slots.contains(range))
            })
            .map(|n| n.port)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(group) = node.child.take().as_ref().and_then(Child::id) {
                signal_group(group, "KILL");
            }
        }
    }
}

/// Among nodes as each describes itself: the empty masters (replicas `CLUSTER REPLICATE` never
/// reached), each beside a master serving slots that no node replicates.
fn unpaired_pairs(selves: &[NodeInfo]) -> Vec<(&NodeInfo, &NodeInfo)> {
    let unpaired = selves.iter().filter(|n| n.master && n.slots.is_empty());
    let alone = selves.iter().filter(|m| {
        !m.slots.is_empty() && !selves.iter().any(|r| r.replica_of.as_ref() == Some(&m.id))
    });
    unpaired.zip(alone).collect()
}

/// Polls `check` every 100 ms until it holds, or fails after `within`.
async fn wait_for<F, Fut>(within: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < within {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("not within {within:?}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_nodes_lines_are_read() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 [5461->-e7d1]
2928 127.0.0.1:30003@40003 master,fail - 1426238316232 0 3 disconnected 10923-16383
";
        let nodes = super::parse_nodes(text);
        assert_eq!(nodes.len(), 4);
        assert!(!nodes[0].master);
        assert_eq!(nodes[0].replica_of.as_deref(), Some("e7d1"));
        assert_eq!(nodes[1].replica_of, None);
        assert_eq!(nodes[2].id, "e7d1");
        assert!(nodes[2].myself && !nodes[1].myself);
        assert_eq!(nodes[1].slots, vec![(5461, 10922)]);
        assert_eq!(
            (nodes[2].port, nodes[2].slots.clone()),
            (30001, vec![(0, 5460)])
        );
        assert!(nodes[3].failed && nodes[3].master);
        assert!(!nodes[1].failed);
    }

    #[test]
    fn an_empty_master_is_paired_with_the_master_nobody_replicates() {
        let selves = super::parse_nodes(
            "\
a1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:30002@40002 myself,master - 0 0 2 connected 5461-10922
a3 127.0.0.1:30003@40003 myself,master - 0 0 3 connected 10923-16383
b1 127.0.0.1:30004@40004 myself,slave a1 0 0 1 connected
b2 127.0.0.1:30005@40005 myself,master - 0 0 0 connected
b3 127.0.0.1:30006@40006 myself,slave a3 0 0 3 connected
",
        );
        let pairs: Vec<(u16, u16)> = super::unpaired_pairs(&selves)
            .into_iter()
            .map(|(replica, master)| (replica.port, master.port))
            .collect();
        assert_eq!(pairs, vec![(30005, 30002)]);

        let paired = super::parse_nodes(
            "\
a1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-16383
b1 127.0.0.1:30004@40004 myself,slave a1 0 0 1 connected
",
        );
        assert!(super::unpaired_pairs(&paired).is_empty());
    }
}
