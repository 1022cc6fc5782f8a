//! Processes a test owns, stopped when it drops them: a store server on a spare loopback port,
//! and three shop replicas behind a real nginx.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};

/// A store server this test owns.
pub struct StoreProcess {
    kind: &'static str,
    pub port: u16,
    child: Option<Child>,
    data: Option<tempfile::TempDir>,
}

fn postgres_bin(tool: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed")
        .map(|e| e.unwrap().path())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL version")
        .join("bin")
        .join(tool)
}

async fn run(command: &mut Command) {
    let status = command
        .stdout(Stdio::null())
        .status()
        .await
        .expect("the command runs");
    assert!(status.success(), "{command:?} failed");
}

impl StoreProcess {
    pub async fn start(kind: &'static str) -> Self {
        let mut process = Self {
            kind,
            port: shop_lab::free_port().unwrap(),
            child: None,
            data: None,
        };
        if kind == "postgres" {
            let dir = tempfile::tempdir().unwrap();
            run(Command::new("chown").arg("postgres").arg(dir.path())).await;
            run(Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(postgres_bin("initdb"))
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(dir.path().join("data")))
            .await;
            process.data = Some(dir);
        }
        process.resume().await;
        process
    }

    /// Starts (again) on the same port.
    pub async fn resume(&mut self) {
        let port = self.port.to_string();
        match self.kind {
            "redis" => {
                let child = Command::new("redis-server")
                    .args([
                        "--port",
                        &port,
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .stdout(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("redis-server starts");
                self.child = Some(child);
            }
            "memcached" => {
                let child = Command::new("memcached")
                    .args(["-u", "nobody", "-l", "127.0.0.1", "-p", &port, "-m", "16"])
                    .kill_on_drop(true)
                    .spawn()
                    .expect("memcached starts");
                self.child = Some(child);
            }
            "postgres" => {
                let data = self.data.as_ref().unwrap().path();
                run(Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(postgres_bin("pg_ctl"))
                    .args(["-w", "-l"])
                    .arg(data.join("log"))
                    .arg("-D")
                    .arg(data.join("data"))
                    .arg("-o")
                    .arg(format!(
                        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                        data.display()
                    ))
                    .arg("start"))
                .await;
            }
            other => panic!("no process for the {other} store"),
        }
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the {} server did not listen on {port}", self.kind);
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server: unreachable, its data kept. For
    /// PostgreSQL, which keeps its data on disk, a stop and start does the same.
    pub async fn freeze(&mut self, frozen: bool) {
        if self.kind == "postgres" {
            if frozen {
                self.stop().await;
            } else {
                self.resume().await;
            }
            return;
        }
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("a running server");
        let signal = if frozen { "-STOP" } else { "-CONT" };
        run(Command::new("kill").args([signal, &pid.to_string()])).await;
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
        self.pg_stop();
    }

    /// Stops this test's PostgreSQL at once, if it runs.
    fn pg_stop(&self) {
        let Some(dir) = self.data.as_ref().filter(|_| self.kind == "postgres") else {
            return;
        };
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(postgres_bin("pg_ctl"))
            .args(["-m", "immediate", "-D"])
            .arg(dir.path().join("data"))
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Points an instance's settings at this server.
    pub fn configure(&self, settings: &mut std::collections::HashMap<String, String>) {
        let port = self.port;
        match self.kind {
            "redis" => settings.insert("REDIS_URL".into(), format!("redis://127.0.0.1:{port}")),
            "memcached" => settings.insert("MEMCACHED_SERVERS".into(), format!("127.0.0.1:{port}")),
            _ => settings.insert(
                "SESSION_DATABASE_URL".into(),
                format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            ),
        };
        settings.insert("SESSION_BACKEND".into(), self.kind.into());
    }
}

impl Drop for StoreProcess {
    fn drop(&mut self) {
        self.pg_stop();
    }
}

/// Three real shop processes on `settings` behind a real nginx with round-robin.conf, on
/// loopback; everything stops when the returned values are dropped.
pub async fn round_robin_cluster(
    mut settings: HashMap<String, String>,
) -> (shop_lab::Cluster, TempDir) {
    for variable in ["PORT", "HOST", "INSTANCE_NAME"] {
        settings.remove(variable);
    }
    let work = tempfile::tempdir().unwrap();
    let cluster = shop_lab::Cluster::start(shop_lab::ClusterConfig {
        program: std::path::PathBuf::from(env!("CARGO_BIN_EXE_shop")),
        args: Vec::new(),
        replicas: 3,
        balancing: shop_lab::Balancing::RoundRobin,
        env: settings,
        work_dir: work.path().to_owned(),
        nginx: shop_lab::NginxConfs::BuiltIn,
    })
    .await
    .expect("the cluster starts");
    (cluster, work)
}
