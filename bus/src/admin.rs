//! The admin HTTP server: `/metrics` (Prometheus text format), `/health/live` and
//! `/health/ready`. Readiness is the conjunction of every registered component's flag; the
//! answer lists the components that are not ready.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Readiness of the components running in this process.
#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<String, bool>>>,
}

/// A component's handle to report its readiness.
#[derive(Debug, Clone)]
pub struct Readiness {
    health: Health,
    name: String,
}

impl Health {
    /// Registers component `name`, not ready until it says so.
    pub fn component(&self, name: &str) -> Readiness {
        self.lock().insert(name.to_owned(), false);
        Readiness {
            health: self.clone(),
            name: name.to_owned(),
        }
    }

    /// Names of the components that are not ready (empty when all are).
    pub fn not_ready(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, ready)| !**ready)
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, bool>> {
        self.components
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Readiness {
    /// Reports whether the component is ready.
    pub fn set(&self, ready: bool) {
        self.health.lock().insert(self.name.clone(), ready);
    }
}

/// Binds the admin server's address, so a taken port fails the start at once.
pub async fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("admin server cannot bind {listen}: {e}"))
    })
}

/// Serves the admin routes on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "admin server listening");
    axum::serve(listener, router(health))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The admin routes.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .with_state(health)
}

async fn metrics() -> Response {
    let mut body = Vec::new();
    match TextEncoder::new().encode(&prometheus::gather(), &mut body) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                TextEncoder::new().format_type().to_owned(),
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn ready(State(health): State<Health>) -> Response {
    let not_ready = health.not_ready();
    let status = if not_ready.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "ready": not_ready.is_empty(), "not_ready": not_ready });
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_is_the_conjunction_of_components() {
        let health = Health::default();
        assert!(health.not_ready().is_empty());
        let registry = health.component("registry");
        let sink = health.component("sink");
        assert_eq!(health.not_ready(), vec!["registry", "sink"]);
        registry.set(true);
        sink.set(true);
        assert!(health.not_ready().is_empty());
        sink.set(false);
        assert_eq!(health.not_ready(), vec!["sink"]);
    }
}
