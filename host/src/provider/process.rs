//! One provider process: spawn it, hand it its host data, wait until it
//! answers, watch it exit, and stop it.
//!
//! The stdin contract: the host writes one line, the base64 host data
//! followed by `\n`, and then keeps the pipe open for as long as the
//! process runs. A provider reads EOF on stdin as "my host is gone" and
//! exits, so a host that crashes or is killed takes its providers with it
//! instead of leaving orphans on the lattice.
//!
//! The process gets its own process group, so a Ctrl-C in the host's
//! terminal reaches the host alone; the host then stops its providers in
//! order rather than having them die under it.

use std::collections::VecDeque;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use trellis_lattice::HostData;
use trellis_lattice::provider::HealthCheckResponse;

use super::control::{ProviderControl, seconds};
use crate::HostError;

/// How many of the last output lines a start failure quotes.
const TAIL_LINES: usize = 5;
/// How often a starting provider is asked whether it is up yet.
const READY_POLL: Duration = Duration::from_millis(100);
/// How long one readiness health check may take.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long to wait for the output of a process that exited to drain.
const OUTPUT_DRAIN: Duration = Duration::from_millis(500);
/// How often to retry a spawn that races a concurrent write of the
/// executable (Linux's "text file busy").
const SPAWN_ATTEMPTS: u32 = 5;

/// The last lines a process printed, for failure messages.
#[derive(Clone, Default)]
struct OutputTail(Arc<Mutex<VecDeque<String>>>);

impl OutputTail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn quote(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.is_empty() {
            return String::new();
        }
        let joined: Vec<&str> = lines.iter().map(String::as_str).collect();
        format!("; its last output: {}", joined.join(" | "))
    }
}

/// A running provider process.
pub(crate) struct ProviderProcess {
    provider_id: String,
    child: Child,
    /// Never written after the host data, only held: see the module docs.
    stdin: ChildStdin,
    output: OutputTail,
    readers: Vec<JoinHandle<()>>,
}

impl ProviderProcess {
    /// Starts `executable` and writes `host_data` to its stdin.
    pub(crate) async fn spawn(
        executable: &Path,
        host_data: &HostData,
    ) -> Result<ProviderProcess, HostError> {
        let provider_id = host_data.provider_key.clone();
        let fail = |reason: String| HostError::Provider {
            provider_id: provider_id.clone(),
            reason,
        };
        let line = host_data.encode()?;
        let mut child = spawn_child(executable)
            .await
            .map_err(|e| fail(format!("could not be started: {e}")))?;
        let output = OutputTail::default();
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(forward_output(&provider_id, stdout, output.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(forward_output(&provider_id, stderr, output.clone()));
        }
        let mut process = ProviderProcess {
            provider_id: provider_id.clone(),
            stdin: match child.stdin.take() {
                Some(stdin) => stdin,
                None => return Err(fail("has no stdin pipe".into())),
            },
            child,
            output,
            readers,
        };
        if let Err(err) = process.write_host_data(&line).await {
            let exit = tokio::time::timeout(READY_CHECK_TIMEOUT, process.wait())
                .await
                .unwrap_or_else(|_| "closed its stdin".to_owned());
            let reason = format!(
                "{exit} before reading its host data ({err}){}",
                process.output.quote()
            );
            process.abandon().await;
            return Err(fail(reason));
        }
        tracing::info!(
            provider_id = %provider_id,
            pid = process.child.id().unwrap_or_default(),
            executable = %executable.display(),
            "provider process started"
        );
        Ok(process)
    }

    async fn write_host_data(&mut self, line: &str) -> std::io::Result<()> {
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await
    }

    /// Waits until the provider answers a health check (healthy or not),
    /// the process exits, or `timeout` passes. On failure the caller
    /// should [`ProviderProcess::abandon`] the process.
    pub(crate) async fn await_health(
        &mut self,
        control: &ProviderControl,
        timeout: Duration,
    ) -> Result<HealthCheckResponse, HostError> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.failure(format!(
                    "did not answer a health check within {} of starting{}",
                    seconds(timeout),
                    self.output.quote()
                )));
            }
            tokio::select! {
                status = self.child.wait() => {
                    let exit = describe_exit(status);
                    self.drain_output().await;
                    return Err(self.failure(format!(
                        "{exit} before answering a health check{}",
                        self.output.quote()
                    )));
                }
                answer = control.health(remaining.min(READY_CHECK_TIMEOUT)) => match answer {
                    Ok(health) => return Ok(health),
                    Err(err) => {
                        tracing::trace!(provider_id = %self.provider_id, error = %err, "not ready yet");
                        tokio::time::sleep(READY_POLL).await;
                    }
                },
            }
        }
    }

    /// Resolves when the process exits, with why ("exited with status 1").
    pub(crate) async fn wait(&mut self) -> String {
        let exit = describe_exit(self.child.wait().await);
        self.drain_output().await;
        exit
    }

    /// Asks the provider to shut down, and kills it if it has not exited
    /// within `grace`.
    pub(crate) async fn shutdown(
        mut self,
        control: &ProviderControl,
        host_id: &str,
        grace: Duration,
    ) {
        let deadline = Instant::now() + grace;
        // With NATS unreachable the request cannot arrive, and the
        // provider, cut off too, has nothing left to finish: waiting out
        // the grace would only hold up the host's own exit.
        if !control.connected() {
            tracing::warn!(
                provider_id = %self.provider_id,
                "NATS is unreachable, so the provider cannot be asked to shut down; killing it"
            );
            self.abandon().await;
            return;
        }
        if let Err(err) = control.shutdown(host_id, grace).await {
            tracing::debug!(provider_id = %self.provider_id, error = %err, "shutdown request not answered");
        }
        match tokio::time::timeout_at(deadline, self.child.wait()).await {
            Ok(status) => {
                tracing::info!(provider_id = %self.provider_id, "provider {}", describe_exit(status));
            }
            Err(_) => {
                tracing::warn!(
                    provider_id = %self.provider_id,
                    "provider did not exit within {} of being asked to; killing it",
                    seconds(grace)
                );
                self.abandon().await;
            }
        }
    }

    /// Kills the process (unless it already exited) and waits for it to be gone.
    pub(crate) async fn abandon(mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Err(err) = self.child.kill().await {
            tracing::warn!(provider_id = %self.provider_id, error = %err, "cannot kill provider process");
        }
    }

    fn failure(&self, reason: String) -> HostError {
        HostError::Provider {
            provider_id: self.provider_id.clone(),
            reason,
        }
    }

    /// Lets the output readers reach EOF, so a failure message quotes the
    /// process's last words. Bounded: a grandchild may hold the pipes open.
    async fn drain_output(&mut self) {
        let readers = std::mem::take(&mut self.readers);
        let _ = tokio::time::timeout(OUTPUT_DRAIN, futures::future::join_all(readers)).await;
    }
}

async fn spawn_child(executable: &Path) -> std::io::Result<Child> {
    let mut attempt = 1;
    loop {
        let mut command = Command::new(executable);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        match command.spawn() {
            Err(err)
                if err.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && attempt < SPAWN_ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(READY_POLL).await;
            }
            result => return result,
        }
    }
}

/// Re-logs each line the process prints through `tracing` (target
/// `provider`), keeping the last few for failure messages.
fn forward_output(
    provider_id: &str,
    stream: impl AsyncRead + Unpin + Send + 'static,
    tail: OutputTail,
) -> JoinHandle<()> {
    let provider_id = provider_id.to_owned();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                    if line.is_empty() {
                        continue;
                    }
                    tracing::info!(target: "provider", provider_id = %provider_id, "{line}");
                    tail.push(line);
                }
            }
        }
    })
}

/// "exited with status 1", "exited with signal 9".
pub(crate) fn describe_exit(status: std::io::Result<ExitStatus>) -> String {
    let status = match status {
        Ok(status) => status,
        Err(err) => return format!("could not be waited for ({err})"),
    };
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("exited with signal {signal}");
        }
    }
    format!("exited ({status})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let tail = OutputTail::default();
        assert_eq!(tail.quote(), "");
        for n in 0..7 {
            tail.push(format!("line {n}"));
        }
        assert_eq!(
            tail.quote(),
            "; its last output: line 2 | line 3 | line 4 | line 5 | line 6"
        );
    }

    #[cfg(unix)]
    #[test]
    fn exits_are_described_by_status_or_signal() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            describe_exit(Ok(ExitStatus::from_raw(1 << 8))),
            "exited with status 1"
        );
        assert_eq!(
            describe_exit(Ok(ExitStatus::from_raw(9))),
            "exited with signal 9"
        );
    }
}
