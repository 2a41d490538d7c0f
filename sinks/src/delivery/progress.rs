//! Replay progress: a progress bar (records, lag, rate, ETA) when stderr is a terminal,
//! otherwise a log line every [`LOG_EVERY`]. The metrics (`…_consumer_lag_records`,
//! `…_records_total`) tell the same to a monitoring system.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::delivery::start::ReplayRange;

/// How often a non-terminal replay logs its progress.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Offsets replayed so far out of the offsets to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// Offsets passed (acknowledged, or skipped markers).
    pub done: u64,
    /// Offsets between the start and the end the log had when the replay began.
    pub total: u64,
    /// Offsets behind the log end now.
    pub lag: u64,
}

/// Progress of `range` given each partition's position (first offset not yet done) and the
/// log end offsets now.
pub fn measure(
    range: &ReplayRange,
    positions: &BTreeMap<i32, i64>,
    ends: &BTreeMap<i32, i64>,
) -> Done {
    let mut progress = Done {
        done: 0,
        total: 0,
        lag: 0,
    };
    for (partition, &(start, end)) in range {
        let span = (end - start).max(0);
        let position = positions.get(partition).copied().unwrap_or(start);
        let end_now = ends.get(partition).copied().unwrap_or(end).max(end);
        progress.total += span as u64;
        progress.done += (position - start).clamp(0, span) as u64;
        progress.lag += (end_now - position).max(0) as u64;
    }
    progress
}

/// Shows replay progress.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    /// A bar on stderr when `terminal`, log lines otherwise.
    pub fn new(total: u64, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "replay {bar:40} {pos}/{len} records · {msg} · {per_sec} · ETA {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        let now = Instant::now();
        Self {
            bar,
            started: now,
            last_log: now,
        }
    }

    /// Reports `done`.
    pub fn update(&mut self, done: Done) {
        if let Some(bar) = &self.bar {
            bar.set_length(done.total);
            bar.set_position(done.done);
            bar.set_message(format!("lag {}", done.lag));
            return;
        }
        if self.last_log.elapsed() < LOG_EVERY {
            return;
        }
        self.last_log = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            done.done as f64 / elapsed
        } else {
            0.0
        };
        let eta_seconds = if rate > 0.0 {
            (done.total.saturating_sub(done.done) as f64 / rate).round() as u64
        } else {
            0
        };
        tracing::info!(
            done = done.done,
            total = done.total,
            lag = done.lag,
            rate = format!("{rate:.1}/s"),
            eta_seconds,
            "replay progress"
        );
    }

    /// Ends the bar (or logs a last line).
    pub fn finish(&mut self, done: Done) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(format!("lag {}", done.lag));
            return;
        }
        tracing::info!(
            done = done.done,
            total = done.total,
            lag = done.lag,
            seconds = self.started.elapsed().as_secs(),
            "replay caught up"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_offsets_between_start_and_end() {
        let range: ReplayRange = [(0, (10, 110)), (1, (0, 50)), (2, (5, 5))].into();
        let positions = [(0, 60), (1, 50)].into();
        let ends = [(0, 130)].into();
        let done = measure(&range, &positions, &ends);
        assert_eq!(done.total, 150);
        assert_eq!(done.done, 100);
        // Partition 0 grew to 130 meanwhile: 70 behind; partition 1 caught up; 2 is empty.
        assert_eq!(done.lag, 70);
    }

    #[test]
    fn positions_past_the_start_end_do_not_overcount() {
        let range: ReplayRange = [(0, (0, 10))].into();
        let done = measure(&range, &[(0, 25)].into(), &[(0, 30)].into());
        assert_eq!(done.done, 10);
        assert_eq!(done.lag, 5);
    }
}
