//! The operator's HTTP endpoint: `/metrics` (OpenMetrics text), `/healthz` (process alive),
//! `/readyz` (controller running). Plain hyper: kube already brings it in.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Pure routing, unit-tested without sockets.
pub fn route(path: &str, metrics: &Metrics, ready: bool) -> (StatusCode, &'static str, String) {
    match path {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" if ready => (StatusCode::OK, "text/plain", "ready\n".to_string()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    }
}

/// Serves until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let metrics = metrics.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (code, ctype, body) =
                    route(req.uri().path(), &metrics, ready.load(Ordering::SeqCst));
                let mut resp = Response::new(Full::new(Bytes::from(body)));
                *resp.status_mut() = code;
                if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
                    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
                }
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_health_readiness_and_metrics() {
        let m = Metrics::default();
        assert_eq!(route("/healthz", &m, false).0, StatusCode::OK);
        assert_eq!(
            route("/readyz", &m, false).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(route("/readyz", &m, true).0, StatusCode::OK);
        assert!(route("/metrics", &m, true)
            .2
            .contains("tandem_operator_reconciles_total"));
        assert_eq!(route("/nope", &m, true).0, StatusCode::NOT_FOUND);
    }
}
