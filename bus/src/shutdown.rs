//! Ordered graceful shutdown. One root [`CancellationToken`] is cancelled by SIGINT/SIGTERM or
//! by the first task that fails; every role task watches it, stops intake, drains, flushes its
//! producers and commits its offsets, then returns. The process waits for all tasks up to a
//! grace period and exits non-zero when any task failed or the grace period ran out.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Tracks the role tasks of the process and the token that stops them.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
    failures: Arc<Mutex<Vec<String>>>,
}

/// Why the process did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// One or more tasks returned an error.
    #[error("{} task(s) failed: {}", .0.len(), .0.join("; "))]
    TasksFailed(Vec<String>),
    /// Tasks were still running when the grace period ended.
    #[error("tasks still running after the {0:?} grace period")]
    GracePeriodExceeded(Duration),
}

impl Shutdown {
    /// The token every task watches.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Runs `task` named `name`; its error is recorded and stops everything else.
    pub fn spawn<F, E>(&self, name: &str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let name = name.to_owned();
        let token = self.token.clone();
        let failures = self.failures.clone();
        self.tracker.spawn(async move {
            match task.await {
                Ok(()) => tracing::info!(task = %name, "task finished"),
                Err(e) => {
                    tracing::error!(task = %name, error = %e, "task failed; shutting down");
                    failures
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push(format!("{name}: {e}"));
                    token.cancel();
                }
            }
        });
    }

    /// Cancels the token on SIGINT or SIGTERM.
    pub fn cancel_on_signal(&self) {
        let token = self.token.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stop signal received; draining");
            token.cancel();
        });
    }

    /// Waits until every task has finished (after cancellation, at most `grace_period`), and
    /// reports failures.
    pub async fn wait(self, grace_period: Duration) -> Result<(), ShutdownError> {
        self.tracker.close();
        tokio::select! {
            () = self.tracker.wait() => {}
            () = async {
                self.token.cancelled().await;
                tokio::time::sleep(grace_period).await;
            } => return Err(ShutdownError::GracePeriodExceeded(grace_period)),
        }
        let failures = std::mem::take(
            &mut *self
                .failures
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ShutdownError::TasksFailed(failures))
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_task_stops_the_others_and_is_reported() {
        let shutdown = Shutdown::default();
        let token = shutdown.token();
        shutdown.spawn("worker", async move {
            token.cancelled().await;
            Ok::<(), String>(())
        });
        shutdown.spawn("broken", async { Err::<(), _>("boom".to_owned()) });
        let err = shutdown.wait(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.to_string(), "1 task(s) failed: broken: boom");
    }

    #[tokio::test]
    async fn a_task_ignoring_cancellation_exceeds_the_grace_period() {
        let shutdown = Shutdown::default();
        shutdown.spawn("stuck", async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<(), String>(())
        });
        shutdown.token().cancel();
        let err = shutdown.wait(Duration::from_millis(50)).await.unwrap_err();
        assert!(matches!(err, ShutdownError::GracePeriodExceeded(_)));
    }
}
