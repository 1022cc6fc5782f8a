//! One path measured: wrk runs repeated until enough are valid, with the CPU of every party.

use super::*;

/// What one store's paths are measured against: the shop, the store's processes and the work
/// folder for flame graphs.
pub(crate) struct Bench<'a> {
    pub(crate) server: &'a Server,
    pub(crate) store: Backend,
    /// The subject's name, for the flame graphs' files.
    pub(crate) name: String,
    pub(crate) options: &'a Options,
}

/// The machine is quiet enough to start a run when its cores, with our processes idle, are on
/// average at most this busy.
pub(crate) const QUIET: f64 = 0.10;
/// wrk using this much of its core could not have sent more: the load, not the shop, limited.
pub(crate) const WRK_SATURATED: f64 = 0.90;

impl Bench<'_> {
    /// One run: the machine's quiet before, wrk's figures, everyone's CPU, the store calls.
    pub(crate) async fn once(&self, load: &Load<'_>) -> anyhow::Result<Sample> {
        // What the last run left (a queue of password hashes, say) may still be running: give
        // the machine up to 15 s to become quiet, then count the run as invalid if it is not.
        let mut busy_before = 1.0;
        for _ in 0..30 {
            busy_before = cpu::machine_busy(Duration::from_millis(500)).await;
            if busy_before <= QUIET {
                break;
            }
        }
        let before = self.server.counters().await?;
        let processes = store_processes(self.store);
        let readings = cpu::Readings::start(self.server.pid(), processes);
        let wrk = wrk::run(load).await?;
        let cpu = readings.finish(self.server.pid(), processes);
        let after = self.server.counters().await?;
        let invalid = if busy_before > QUIET {
            Some(format!(
                "machine {:.0}% busy before the run",
                busy_before * 100.0
            ))
        } else if wrk.wrk_cpu / f64::from(load.threads()) >= WRK_SATURATED
            && self.store != Backend::Memory
        {
            // The ceiling may be wrk-bound (the report says so); a shop's run may not.
            Some(format!(
                "wrk saturated its {} ({:.0}% of a core)",
                if load.pinned { "core" } else { "threads" },
                wrk.wrk_cpu * 100.0
            ))
        } else {
            None
        };
        Ok(Sample {
            wrk,
            cpu,
            calls: after.0 - before.0,
            writes: after.1 - before.1,
            bytes: after.2 - before.2,
            invalid,
        })
    }

    /// Runs until `options.runs` runs are valid, or twice that many have been tried; `None`
    /// for a path not asked for.
    pub(crate) async fn measure(
        &self,
        path: BenchPath,
        load: &Load<'_>,
    ) -> anyhow::Result<Option<Row>> {
        if !self.options.paths.contains(&path) && self.store != Backend::Memory {
            return Ok(None);
        }
        let mut samples = Vec::new();
        while samples
            .iter()
            .filter(|s: &&Sample| s.invalid.is_none())
            .count()
            < self.options.runs
            && samples.len() < 2 * self.options.runs
        {
            let sample = self.once(load).await?;
            if let Some(why) = &sample.invalid {
                println!("   {} run invalid: {why}", path.label());
            }
            samples.push(sample);
        }
        let row = Row { path, samples };
        report::print_row(&row);
        // Flame graphs of the pinned runs: one worker on one core is what the ratios compare.
        if self.options.flames
            && self.store != Backend::Memory
            && self.server.pinned
            && matches!(path, BenchPath::Read | BenchPath::Write)
        {
            self.flame(path, load).await?;
        }
        Ok(Some(row))
    }

    /// One more run with `perf` sampling the shop's stacks, folded by inferno into
    /// `flame-<store>-<path>[-2-workers].svg` in the results folder.
    pub(crate) async fn flame(&self, path: BenchPath, load: &Load<'_>) -> anyhow::Result<()> {
        let work = tempfile::tempdir()?;
        let data = work.path().join("perf.data");
        let mut perf = Command::new("perf")
            .args(["record", "-F", "499", "--call-graph", "dwarf,16384", "-o"])
            .arg(&data)
            .args(["-p", &self.server.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("could not run perf (apt-get install linux-perf)")?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        wrk::run(load).await?;
        // perf writes its data when interrupted.
        let _ = Command::new("kill")
            .args(["-INT", &perf.id().context("perf's pid")?.to_string()])
            .status()
            .await;
        perf.wait().await?;
        let suffix = if self.server.pinned { "" } else { "-2-workers" };
        let name = self
            .options
            .results
            .join(format!("flame-{}-{}{suffix}.svg", self.name, path.slug()))
            .display()
            .to_string();
        let title = format!(
            "{}: {} ({} worker{})",
            self.name,
            path.label(),
            if self.server.pinned { 1 } else { 2 },
            if self.server.pinned { "" } else { "s" }
        );
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "perf script -i {data} 2>/dev/null | inferno-collapse-perf > {folded} && \
                 inferno-flamegraph --minwidth 2 --title '{title}' < {folded} > {name}",
                data = data.display(),
                // BENCH_FOLDED_DIR keeps the folded stacks, for `inferno-diff-folded`.
                folded = std::env::var("BENCH_FOLDED_DIR")
                    .map_or_else(|_| work.path().to_owned(), PathBuf::from)
                    .join(format!("{}-{}{}.folded", self.name, path.slug(), suffix))
                    .display()
            ))
            .status()
            .await?;
        if !status.success() {
            bail!("the flame graph failed (cargo install inferno)");
        }
        println!("   flame graph: {name}");
        Ok(())
    }
}
