//! Probes for a load balancer or orchestrator, and the metrics for Prometheus.

use actix_web::{HttpResponse, web};

use crate::error::RETRY_AFTER_SECONDS;
use crate::state::AppState;

/// The process is alive and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// The database and the session store both answer; 503 names which does not.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_draining() {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", RETRY_AFTER_SECONDS))
            .content_type("text/plain")
            .body("draining: this instance is stopping\n");
    }
    let (db, store) = tokio::join!(state.db.ping(), state.store.ping());
    let mut problems = Vec::new();
    if let Err(err) = db {
        log::warn!("Readiness: the database does not answer: {err:#}");
        problems.push("database: unavailable");
    }
    if let Err(err) = store {
        log::warn!(
            "Readiness: the {} session store does not answer: {err:#}",
            state.backend
        );
        problems.push("session store: unavailable");
    }
    if problems.is_empty() {
        HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", RETRY_AFTER_SECONDS))
            .content_type("text/plain")
            .body(problems.join("\n") + "\n")
    }
}

/// `GET /metrics`: the Prometheus text format (see `metrics`).
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, crate::error::ShopError> {
    let body = state.metrics.render()?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body))
}
