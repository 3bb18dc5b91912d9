//! A provider's own executable, started the way a host starts it: host data
//! as the first line of its stdin, and stdin held open for as long as the
//! provider should live.

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use trellis_lattice::HostData;

/// How often [`ProviderProcess::close_stdin_and_wait`] looks for the exit.
const EXIT_POLL: Duration = Duration::from_millis(50);

/// A running provider executable; killed on drop if it is still running.
pub struct ProviderProcess {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl ProviderProcess {
    /// Starts `executable` (for a crate's own binary,
    /// `env!("CARGO_BIN_EXE_<name>")`) and writes `host_data` to its stdin;
    /// its stdout and stderr are discarded.
    ///
    /// Panics if it cannot be started or told its host data.
    pub fn spawn(executable: impl AsRef<Path>, host_data: &HostData) -> Self {
        let executable = executable.as_ref();
        let mut child = Command::new(executable)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", executable.display()));
        let mut stdin = child.stdin.take();
        let encoded = host_data
            .encode()
            .unwrap_or_else(|e| panic!("cannot encode host data: {e}"));
        if let Some(stdin) = stdin.as_mut() {
            writeln!(stdin, "{encoded}").unwrap_or_else(|e| {
                panic!("cannot write host data to {}: {e}", executable.display())
            });
        }
        ProviderProcess { child, stdin }
    }

    /// Closes the provider's stdin, as a host that stops or dies does, and
    /// waits for the process to exit; panics if it has not exited `within`.
    pub async fn close_stdin_and_wait(mut self, within: Duration) -> ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + within;
        loop {
            let exited = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("cannot wait for the provider: {e}"));
            if let Some(status) = exited {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the provider did not exit within {within:?} of its stdin closing"
            );
            tokio::time::sleep(EXIT_POLL).await;
        }
    }
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
