//! The accept loop: HTTP/1.1 connections with a header read timeout, the
//! client's address on every request (for the rate limits), and a graceful
//! shutdown that lets in-flight requests finish.
//!
//! `axum::serve` has no header read timeout, so a client sending its
//! headers a byte a minute would hold its connection for ever; this loop is
//! the same as `axum::serve`'s otherwise.
//!
//! With TLS (`crate::tls`) each accepted connection first completes its
//! handshake, which must end within the header timeout too, in its own
//! task, so a slow handshake never holds up the accept loop.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Serves `router` on `listener` until `stopping` turns true; then stops
/// accepting (new connections are refused), lets the open ones finish their
/// request in flight, and returns once every connection has closed.
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stopping: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    // The timeout runs from the first moment the connection waits for a
    // request head: it bounds slow headers and idle keep-alive alike.
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = stopped(&mut stopping) => break,
        };
        let router = router.clone();
        let service = service_fn(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(req)
        });
        match &tls {
            None => {
                let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        // A header timeout, a reset, a malformed head: the
                        // connection is gone; nothing in the error is the client's.
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                let http = http.clone();
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                // A client that does not trust the certificate
                                // (a pin mismatch) ends here, before any request.
                                tracing::debug!(error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake timed out");
                                return;
                            }
                        };
                    serve_one(watcher, &http, stream, service).await;
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

async fn serve_one<I, S>(
    watcher: hyper_util::server::graceful::Watcher,
    http: &http1::Builder,
    stream: I,
    service: S,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<hyper::Request<Incoming>, Response = axum::response::Response>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Err(e) = watcher
        .watch(http.serve_connection(TokioIo::new(stream), service))
        .await
    {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Completes once `stopping` is true (or its sender is gone).
pub(crate) async fn stopped(stopping: &mut watch::Receiver<bool>) {
    // The borrowed value is dropped here: the future stays `Send`.
    let _ = stopping.wait_for(|s| *s).await.map(|_| ());
}

/// What `axum::serve` does too: a failed connection is skipped; anything
/// else (out of file descriptors) is logged and waited out a moment, so
/// the loop does not spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
