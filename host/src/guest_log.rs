//! Guest stdout and stderr, as lines in the host's log, within a budget.
//!
//! A guest's output goes to the host's log with the component's id, one
//! line per log event. Each component has a line budget shared by all its
//! instances, a token bucket: a burst allowance that refills at a steady
//! rate. Lines past the budget are dropped and counted, and the count is
//! logged once lines flow again, so a guest that floods its output costs
//! the host a bounded amount of log and memory. Long lines are cut.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// How much a component may write to the host's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestLogLimits {
    /// Lines a component may write at once before the rate applies.
    pub burst_lines: u32,
    /// Lines per second a component may write in the long run.
    pub lines_per_second: u32,
    /// Bytes of one line that are kept; the rest is cut.
    pub max_line_bytes: usize,
}

impl Default for GuestLogLimits {
    fn default() -> Self {
        GuestLogLimits {
            burst_lines: 200,
            lines_per_second: 50,
            max_line_bytes: 4096,
        }
    }
}

/// One component's budget, shared by its instances and both its streams.
#[derive(Debug)]
pub struct GuestLogBudget {
    component_id: String,
    limits: GuestLogLimits,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    dropped: u64,
}

impl GuestLogBudget {
    /// A full budget for `component_id`.
    pub fn new(component_id: &str, limits: GuestLogLimits) -> Arc<Self> {
        Arc::new(GuestLogBudget {
            component_id: component_id.to_owned(),
            limits,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(limits.burst_lines),
                refilled: Instant::now(),
                dropped: 0,
            }),
        })
    }

    /// The stream a guest's stdout or stderr (`name`) writes to.
    pub fn stream(self: &Arc<Self>, name: &'static str) -> GuestOutput {
        GuestOutput {
            budget: Arc::clone(self),
            name,
        }
    }

    /// Takes one line's worth of budget at `now`; returns whether the line
    /// may be logged and how many lines were dropped before it.
    fn admit(&self, now: Instant) -> (bool, u64) {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(bucket.refilled);
        bucket.refilled = now;
        bucket.tokens = (bucket.tokens
            + elapsed.as_secs_f64() * f64::from(self.limits.lines_per_second))
        .min(f64::from(self.limits.burst_lines));
        if bucket.tokens < 1.0 {
            bucket.dropped += 1;
            return (false, 0);
        }
        bucket.tokens -= 1.0;
        (true, std::mem::take(&mut bucket.dropped))
    }

    /// Whether one more line may be logged now; reports earlier drops.
    fn take_line(&self, now: Instant) -> bool {
        let (admitted, dropped) = self.admit(now);
        if admitted && dropped > 0 {
            tracing::warn!(
                component = %self.component_id,
                dropped,
                "dropped lines of guest output over the log budget"
            );
        }
        admitted
    }

    /// One `wasi:logging` entry, at its own level, within the same budget
    /// as the component's stdout and stderr.
    pub fn record(&self, level: &str, context: &str, message: &str) {
        if !self.take_line(Instant::now()) {
            return;
        }
        let max = self.limits.max_line_bytes;
        let message = if message.len() > max {
            // The longest prefix of at most `max` bytes that ends on a
            // character boundary, as the stdout/stderr path cuts lines.
            let cut = (0..=max)
                .rev()
                .find(|&i| message.is_char_boundary(i))
                .unwrap_or(0);
            format!("{}…", &message[..cut])
        } else {
            message.to_owned()
        };
        let component = &self.component_id;
        match level {
            "trace" => tracing::trace!(component = %component, context, "{message}"),
            "debug" => tracing::debug!(component = %component, context, "{message}"),
            "info" => tracing::info!(component = %component, context, "{message}"),
            "warn" => tracing::warn!(component = %component, context, "{message}"),
            _ => tracing::error!(component = %component, context, level, "{message}"),
        }
    }

    fn log(&self, stream: &'static str, line: &[u8], now: Instant) {
        if !self.take_line(now) {
            return;
        }
        let cut = line.len() > self.limits.max_line_bytes;
        let kept = &line[..line.len().min(self.limits.max_line_bytes)];
        let text = String::from_utf8_lossy(kept);
        let text = text.trim_end_matches(['\r', '\n']);
        if cut {
            tracing::info!(component = %self.component_id, stream, truncated = true, "{text}…");
        } else {
            tracing::info!(component = %self.component_id, stream, "{text}");
        }
    }
}

/// A guest's stdout or stderr.
pub struct GuestOutput {
    budget: Arc<GuestLogBudget>,
    name: &'static str,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            budget: Arc::clone(&self.budget),
            name: self.name,
            pending: Vec::new(),
        })
    }
}

/// Splits what a guest writes into lines. A partial line waits for its end,
/// but never grows past the line limit: the rest of a long line is dropped.
struct LineWriter {
    budget: Arc<GuestLogBudget>,
    name: &'static str,
    pending: Vec<u8>,
}

impl LineWriter {
    fn take(&mut self, bytes: &[u8]) {
        let max = self.budget.limits.max_line_bytes;
        let now = Instant::now();
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            // Keep one byte past the limit, so the log says it was cut.
            let room = (max + 1).saturating_sub(self.pending.len());
            self.pending
                .extend_from_slice(&piece[..piece.len().min(room)]);
            if piece.ends_with(b"\n") {
                self.budget.log(self.name, &self.pending, now);
                self.pending.clear();
            }
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.budget.log(self.name, &pending, Instant::now());
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        // The last line of an instance that ended without a newline.
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.budget.log(self.name, &pending, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits() -> GuestLogLimits {
        GuestLogLimits {
            burst_lines: 10,
            lines_per_second: 5,
            max_line_bytes: 8,
        }
    }

    #[test]
    fn a_burst_is_allowed_then_the_rate_applies_and_drops_are_counted() {
        let budget = GuestLogBudget::new("noisy", limits());
        let t0 = Instant::now();
        let admitted = (0..100).filter(|_| budget.admit(t0).0).count();
        assert_eq!(admitted, 10);
        // One second later, five more lines, and the first says how many
        // were dropped.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(budget.admit(t1), (true, 90));
        let more = (0..100).filter(|_| budget.admit(t1).0).count();
        assert_eq!(more, 4);
    }

    #[test]
    fn a_long_line_is_held_only_up_to_the_limit() {
        let budget = GuestLogBudget::new("noisy", limits());
        let mut writer = LineWriter {
            budget,
            name: "stderr",
            pending: Vec::new(),
        };
        writer.take(&vec![b'x'; 1 << 20]);
        assert_eq!(writer.pending.len(), 9);
        writer.take(b"yyy\nnext");
        assert_eq!(writer.pending, b"next");
    }
}
