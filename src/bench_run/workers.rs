//! Pipeline stages as separate `gavel` processes on a private pipeline, and
//! their resource use read from /proc: resident memory (VmRSS, peak VmHWM)
//! and CPU seconds (utime + stime).

use anyhow::{bail, Context, Result};
use gavel_runtime::Config;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Worker {
    pub role: &'static str,
    /// Its GAVEL_INSTANCE_ID: a restart with the same one is the same replica.
    pub instance: String,
    pub child: Child,
    probe: String,
    pub log: PathBuf,
}

/// A /proc reading of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    pub rss_mib: f64,
    pub hwm_mib: f64,
    pub cpu_s: f64,
}

impl Worker {
    /// `gavel <role> [args]` with `config` as its environment and its probes on a free port.
    pub fn spawn(config: &Config, role: &'static str, args: &[String]) -> Result<Self> {
        let instance = format!("{}-{role}", config.instance_id);
        Self::spawn_as(config, role, &instance, args)
    }

    /// `spawn` as replica `instance` (several of one role; a restart as the same one).
    pub fn spawn_as(
        config: &Config,
        role: &'static str,
        instance: &str,
        args: &[String],
    ) -> Result<Self> {
        let probe = free_address()?;
        let log_dir = std::env::temp_dir().join("gavel-bench-logs");
        std::fs::create_dir_all(&log_dir)?;
        let started = uuid::Uuid::now_v7().simple().to_string();
        let log = log_dir.join(format!("{instance}-{}.log", &started[20..]));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(std::env::current_exe()?)
            .arg(role)
            .args(args)
            .envs(config.to_env())
            .env("GAVEL_METRICS_ADDR", &probe)
            .env("GAVEL_INSTANCE_ID", instance)
            // Quiet by default (the harness prints the figures); a filter
            // such as `warn,gavel_processors::aggregate=debug` to look inside.
            .env(
                "GAVEL_LOG",
                std::env::var("GAVEL_BENCH_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("spawning gavel {role}"))?;
        Ok(Self {
            role,
            instance: instance.to_owned(),
            child,
            probe,
            log,
        })
    }

    /// Waits until the worker's /ready answers 200 (its loop runs, restore done).
    pub async fn ready(&mut self, within: Duration) -> Result<()> {
        let url = format!("http://{}/ready", self.probe);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "gavel {} exited with {status}; log: {}",
                    self.role,
                    self.log.display()
                );
            }
            let answer = client
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "gavel {} not ready within {within:?}; log: {}",
            self.role,
            self.log.display()
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (finish the batch, commit, exit), then kill after `grace`.
    pub fn stop(mut self, grace: Duration) -> Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

/// Waits until every worker is ready (see `Worker::ready`).
pub async fn ready_all(workers: &mut [Worker], within: Duration) -> Result<()> {
    for worker in workers.iter_mut() {
        worker.ready(within).await?;
    }
    Ok(())
}

/// Stops every worker (see `Worker::stop`); a worker that will not stop is
/// logged, not an error, so the run's figures are still reported.
pub fn stop_all(workers: Vec<Worker>, grace: Duration) {
    for worker in workers {
        let role = worker.role;
        if let Err(error) = worker.stop(grace) {
            tracing::warn!(%error, role, "stopping a bench worker");
        }
    }
}

/// Where `free_address` looks: below Linux's ephemeral range (32768-60999).
/// A port from that range, which `bind(0)` hands out, can be taken by any
/// outgoing connection before the worker binds it (a bench run failed on
/// "Address already in use" that way).
const WORKER_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback address with a port nobody listens on right now, never one
/// handed out before in this process (the worker given it binds it later).
pub fn free_address() -> Result<String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Counts the ports tried; starts where the process id says, so two
    // benches side by side rarely meet.
    static TRIED: AtomicU32 = AtomicU32::new(u32::MAX);
    let (start, span) = (
        u32::from(WORKER_PORTS.start),
        u32::from(WORKER_PORTS.end - WORKER_PORTS.start),
    );
    let _ = TRIED.compare_exchange(
        u32::MAX,
        std::process::id() % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let offset = TRIED.fetch_add(1, Ordering::SeqCst) % span;
        let port = u16::try_from(start + offset).context("a port below 32000")?;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(format!("127.0.0.1:{port}"));
        }
    }
    bail!("no free loopback port in {WORKER_PORTS:?}")
}

/// Memory and CPU time of process `pid`; None once it is gone.
pub fn sample_pid(pid: u32, ticks_per_s: f64) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (rss_mib, hwm_mib) = memory(&status)?;
    Some(ProcSample {
        rss_mib,
        hwm_mib,
        cpu_s: cpu_ticks(&stat)? as f64 / ticks_per_s,
    })
}

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux
/// unless `getconf` says otherwise).
pub fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (VmRSS, VmHWM) in MiB from /proc/<pid>/status.
fn memory(status: &str) -> Option<(f64, f64)> {
    let kib = |key: &str| -> Option<f64> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
}

/// utime + stime (fields 14 and 15) from /proc/<pid>/stat. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its
/// last ')'.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_stat_lines_are_parsed() {
        let status = "Name:\tgavel\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(memory(status), Some((10.0, 20.0)));
        let stat = "4242 (gavel (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(memory(&status).unwrap().0 > 0.0);
        assert!(cpu_ticks(&stat).is_some());
    }
}
