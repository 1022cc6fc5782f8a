//! Replicas of the shop as real processes, and nginx in front of them, all on loopback. Every
//! process is killed when the cluster is dropped, also when the lab is interrupted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use super::free_port;

/// How nginx spreads requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balancing {
    /// `deploy/nginx/round-robin.conf`: no affinity.
    RoundRobin,
    /// `deploy/nginx/sticky.conf`: `ip_hash`, the anti-pattern.
    Sticky,
}

impl Balancing {
    /// The file's name in `deploy/nginx` (or in the folder `NginxConfs::Dir` names).
    pub fn conf_file(self) -> &'static str {
        match self {
            Balancing::RoundRobin => "round-robin.conf",
            Balancing::Sticky => "sticky.conf",
        }
    }

    /// The file as the lab was built with it, so the lab runs from any directory.
    fn built_in(self) -> &'static str {
        match self {
            Balancing::RoundRobin => include_str!("../../deploy/nginx/round-robin.conf"),
            Balancing::Sticky => include_str!("../../deploy/nginx/sticky.conf"),
        }
    }
}

/// Where nginx's site configurations come from.
#[derive(Debug, Clone, Default)]
pub enum NginxConfs {
    /// `deploy/nginx` as it was when the lab was built.
    #[default]
    BuiltIn,
    /// A folder with `round-robin.conf` and `sticky.conf`, to try an edited configuration
    /// without rebuilding (the lab's `LAB_NGINX_DIR`).
    Dir(PathBuf),
}

impl NginxConfs {
    fn read(&self, balancing: Balancing) -> anyhow::Result<String> {
        match self {
            NginxConfs::BuiltIn => Ok(balancing.built_in().to_owned()),
            NginxConfs::Dir(dir) => {
                let file = dir.join(balancing.conf_file());
                std::fs::read_to_string(&file)
                    .with_context(|| format!("could not read {}", file.display()))
            }
        }
    }
}

pub struct ClusterConfig {
    /// The program that runs one replica, and its arguments.
    pub program: PathBuf,
    pub args: Vec<String>,
    pub replicas: usize,
    pub balancing: Balancing,
    /// The environment every replica shares (store, secret, database).
    pub env: HashMap<String, String>,
    /// Where nginx's configuration, logs and pid file go.
    pub work_dir: PathBuf,
    /// nginx's site configurations, the deployment's own.
    pub nginx: NginxConfs,
}

pub struct Replica {
    pub name: String,
    pub port: u16,
    /// The program this replica runs, when not the cluster's (a deploy replaces it).
    program: Option<PathBuf>,
    /// Whether nginx sends it requests (`down` in the upstream while a deploy replaces it).
    in_rotation: bool,
    child: Option<Child>,
}

pub struct Cluster {
    config: ClusterConfig,
    /// nginx's `fail_timeout`: how long a replica that failed is left alone. A replica that
    /// comes back gets traffic again only after it.
    fail_timeout: Duration,
    pub replicas: Vec<Replica>,
    nginx: Option<Child>,
    /// nginx's port on loopback.
    nginx_port: u16,
    /// nginx's address, the one URL shoppers use.
    pub url: String,
}

/// The nginx binary, or a message saying how to install it.
pub fn find_nginx() -> anyhow::Result<PathBuf> {
    for candidate in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return Ok(candidate.into());
        }
    }
    bail!(
        "nginx is not installed. On Debian or Ubuntu: `sudo apt-get install nginx` \
         (the lab runs its own nginx on a loopback port; the system service can stay off)"
    )
}

async fn wait_healthy(url: &str, what: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..150 {
        let healthy = client
            .get(format!("{url}/healthz"))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if healthy {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what} did not become healthy within 15 seconds")
}

impl Cluster {
    /// Starts the replicas one after another (the first applies the migrations), then nginx.
    pub async fn start(config: ClusterConfig) -> anyhow::Result<Self> {
        let nginx_binary = find_nginx()?;
        let mut cluster = Cluster {
            fail_timeout: Duration::ZERO,
            replicas: Vec::new(),
            nginx: None,
            nginx_port: 0,
            url: String::new(),
            config,
        };
        for i in 1..=cluster.config.replicas {
            let replica = Replica {
                name: format!("replica-{i}"),
                port: free_port()?,
                program: None,
                in_rotation: true,
                child: None,
            };
            cluster.replicas.push(replica);
            cluster.start_replica(i - 1).await?;
        }
        let port = free_port()?;
        cluster.nginx_port = port;
        cluster.write_nginx_conf(port)?;
        // Its own process group, master and workers: stopping the group stops them all, even
        // when the work folder with the pid file is already gone.
        let child = Command::new(nginx_binary)
            .arg("-p")
            .arg(&cluster.config.work_dir)
            .args(["-c", "nginx.conf", "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("could not start nginx")?;
        cluster.nginx = Some(child);
        cluster.url = format!("http://127.0.0.1:{port}");
        wait_healthy(&cluster.url, "nginx").await?;
        Ok(cluster)
    }

    fn index(&self, name: &str) -> anyhow::Result<usize> {
        self.replicas
            .iter()
            .position(|r| r.name == name)
            .with_context(|| format!("no replica named {name}"))
    }

    async fn start_replica(&mut self, index: usize) -> anyhow::Result<()> {
        let replica = &self.replicas[index];
        let child = Command::new(replica.program.as_ref().unwrap_or(&self.config.program))
            .args(&self.config.args)
            .envs(&self.config.env)
            .env("PORT", replica.port.to_string())
            .env("HOST", "127.0.0.1")
            .env("INSTANCE_NAME", &replica.name)
            // nginx on loopback is the proxy: its X-Forwarded-For names each shopper's address.
            .env("TRUSTED_PROXIES", "127.0.0.1")
            .env(
                "RUST_LOG",
                std::env::var("LAB_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start {}", replica.name))?;
        let (name, url) = (
            replica.name.clone(),
            format!("http://127.0.0.1:{}", replica.port),
        );
        self.replicas[index].child = Some(child);
        wait_healthy(&url, &name).await
    }

    /// Starts a replica that was killed or stopped, on its old port, and waits until nginx
    /// sends it traffic again (its `fail_timeout` has passed).
    pub async fn start_again(&mut self, name: &str) -> anyhow::Result<()> {
        let index = self.index(name)?;
        self.start_replica(index).await?;
        tokio::time::sleep(self.fail_timeout + Duration::from_millis(500)).await;
        Ok(())
    }

    /// A deploy's step, as an orchestrator drives nginx: the replica is taken out of the
    /// upstream (`down`, a graceful reload), stopped with SIGTERM (it drains), started again on
    /// its port running `program`, and put back once healthy. nginx never sends a request to a
    /// replica that is stopping: a POST it had sent on a connection the replica closed while
    /// stopping is answered 502, since nginx never sends a POST twice (5 of 71,006 requests when
    /// replicas were stopped while still in the upstream).
    pub async fn replace_with(&mut self, name: &str, program: &Path) -> anyhow::Result<()> {
        let index = self.index(name)?;
        self.set_in_rotation(index, false).await?;
        self.terminate(name).await?;
        self.replicas[index].program = Some(program.to_owned());
        self.start_replica(index).await?;
        self.set_in_rotation(index, true).await
    }

    /// Puts a replica in or out of nginx's upstream: the configuration is rewritten and nginx
    /// reloads it gracefully (SIGHUP: new workers take new requests, old ones finish theirs).
    async fn set_in_rotation(&mut self, index: usize, in_rotation: bool) -> anyhow::Result<()> {
        self.replicas[index].in_rotation = in_rotation;
        self.write_nginx_conf(self.nginx_port)?;
        let master = self
            .nginx
            .as_ref()
            .and_then(Child::id)
            .context("nginx is not running")?;
        signal_group_leader(master, "HUP");
        // The old workers finish what they were sending the replica; a second is plenty here.
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    }

    /// SIGKILL: the replica dies at once, mid-request if need be, as in a crash.
    pub async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let index = self.index(name)?;
        if let Some(mut child) = self.replicas[index].child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// SIGTERM, then waits: the replica stops accepting, finishes what is in flight, exits.
    pub async fn terminate(&mut self, name: &str) -> anyhow::Result<()> {
        let index = self.index(name)?;
        let Some(mut child) = self.replicas[index].child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await
                .context("could not send SIGTERM")?;
        }
        match tokio::time::timeout(Duration::from_secs(40), child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                child.kill().await?;
                bail!("{name} did not stop within 40 seconds of SIGTERM");
            }
        }
        Ok(())
    }

    /// Stops and restarts every replica in turn, each healthy again before the next goes.
    pub async fn rolling_restart(&mut self) -> anyhow::Result<()> {
        let names: Vec<String> = self.replicas.iter().map(|r| r.name.clone()).collect();
        for name in names {
            self.terminate(&name).await?;
            self.start_again(&name).await?;
        }
        Ok(())
    }

    fn write_nginx_conf(&mut self, port: u16) -> anyhow::Result<()> {
        let dir = &self.config.work_dir;
        let shop_conf = self.config.nginx.read(self.config.balancing)?;
        let ports: Vec<u16> = self.replicas.iter().map(|r| r.port).collect();
        let mut conf = localize(&shop_conf, &ports, port);
        for replica in self.replicas.iter().filter(|r| !r.in_rotation) {
            let server = format!("    server 127.0.0.1:{} ", replica.port);
            conf = conf
                .lines()
                .map(|line| match line.starts_with(&server) {
                    true => format!("{server}down;\n"),
                    false => format!("{line}\n"),
                })
                .collect();
        }
        std::fs::write(dir.join("shop.conf"), conf)?;
        self.fail_timeout = fail_timeout(&shop_conf);
        write_nginx_main(dir, "shop.conf")
    }

    /// The process groups of everything this cluster started (nginx's master and workers, and
    /// each replica), to check that nothing outlives it.
    pub fn process_groups(&self) -> Vec<u32> {
        self.nginx
            .iter()
            .chain(self.replicas.iter().filter_map(|r| r.child.as_ref()))
            .filter_map(Child::id)
            .collect()
    }

    /// Stops nginx: SIGTERM to its whole process group (the master alone would orphan its
    /// workers, and `nginx -s stop` needs the pid file, which may be gone), a few seconds for
    /// a graceful exit, then SIGKILL to whatever is left of the group.
    fn stop_nginx(&mut self) {
        let Some(mut master) = self.nginx.take() else {
            return;
        };
        let Some(group) = master.id() else { return };
        signal_group(group, "TERM");
        for _ in 0..50 {
            if !matches!(master.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal_group(group, "KILL");
    }
}

/// Sends a signal to a process group with kill(1), which needs no unsafe code.
/// Sends `signal` to one process (a group's leader, without its group).
fn signal_group_leader(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn signal_group(group: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{group}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_nginx();
        // Each replica is its own process group, with no children of its own.
        for replica in &mut self.replicas {
            if let Some(group) = replica.child.as_ref().and_then(Child::id) {
                signal_group(group, "KILL");
            }
        }
    }
}

/// Writes `dir/nginx.conf`: one worker, everything (pid, logs, temporary files) inside `dir`,
/// and the site file `dir/<site>` included in `http { }`. For nginx run with `-p dir`.
pub fn write_nginx_main(dir: &Path, site: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("logs"))?;
    let main = format!(
        "worker_processes 1;\n\
         pid {dir}/nginx.pid;\n\
         error_log {dir}/logs/error.log warn;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   proxy_max_temp_file_size 0;\n\
         \x20   client_body_temp_path {dir}/tmp-body;\n\
         \x20   proxy_temp_path {dir}/tmp-proxy;\n\
         \x20   fastcgi_temp_path {dir}/tmp-fastcgi;\n\
         \x20   uwsgi_temp_path {dir}/tmp-uwsgi;\n\
         \x20   scgi_temp_path {dir}/tmp-scgi;\n\
         \x20   include {dir}/{site};\n\
         }}\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), main)?;
    Ok(())
}

/// The longest `fail_timeout=Ns` in an nginx file (nginx's default is 10 s).
fn fail_timeout(conf: &str) -> Duration {
    let seconds = conf
        .split("fail_timeout=")
        .skip(1)
        .filter_map(|rest| rest.split('s').next()?.parse::<u64>().ok())
        .max()
        .unwrap_or(10);
    Duration::from_secs(seconds)
}

/// The deployment file with loopback addresses: one `server` line per replica port, and nginx
/// listening on `listen_port`. Everything else (health, retries) is kept as written.
pub fn localize(conf: &str, ports: &[u16], listen_port: u16) -> String {
    let mut out = String::new();
    let mut servers_written = false;
    for line in conf.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("server shop") {
            if !servers_written {
                let options = trimmed
                    .split_once(' ')
                    .and_then(|(_, rest)| rest.split_once(' '))
                    .map_or(";", |(_, options)| options);
                for port in ports {
                    out.push_str(&format!("    server 127.0.0.1:{port} {options}\n"));
                }
                servers_written = true;
            }
        } else if trimmed.starts_with("listen ") {
            out.push_str(&format!("    listen 127.0.0.1:{listen_port};\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::localize;

    #[test]
    fn the_deployment_file_is_pointed_at_loopback_ports() {
        let conf = super::Balancing::RoundRobin.built_in();
        let local = localize(conf, &[9001, 9002, 9003, 9004], 9000);
        assert!(!local.contains("shop1:8080"));
        assert!(local.contains("server 127.0.0.1:9004 max_fails=2 fail_timeout=2s;"));
        assert_eq!(super::fail_timeout(conf), std::time::Duration::from_secs(2));
        assert!(local.contains("listen 127.0.0.1:9000;"));
        assert!(local.contains("proxy_next_upstream error timeout http_502;"));
        assert!(!local.contains("ip_hash;"));
        let sticky = localize(super::Balancing::Sticky.built_in(), &[9001], 9000);
        assert!(sticky.contains("ip_hash;"));
    }
}
