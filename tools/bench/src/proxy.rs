//! Pass-throughs that count: an HTTP proxy in front of DynamoDB Local that counts requests
//! by `X-Amz-Target`, and TCP relays in front of the Stripe emulator that count the
//! connections they accept (optionally terminating TLS, optionally adding a round-trip
//! time). Each keeps one upstream connection per downstream connection, so the client's
//! connection reuse reaches the server unchanged.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::stats::Calls;

/// Requests seen by a [`DynamoProxy`], by operation.
#[derive(Debug, Default)]
pub struct OperationCounts(Mutex<Calls>);

impl OperationCounts {
    fn record(&self, operation: &str) {
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(operation.to_owned()).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> Calls {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// Binds a loopback listener and runs `accept` for each connection until dropped.
struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start<F, Fut>(on_connection: F) -> Result<Server, String>
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| format!("cannot bind a proxy: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(on_connection(stream));
            }
        });
        Ok(Server { addr, task })
    }
}

/// HTTP/1.1 pass-through to DynamoDB (Local) that counts requests by operation.
pub struct DynamoProxy {
    server: Server,
    counts: Arc<OperationCounts>,
}

impl DynamoProxy {
    pub async fn start(upstream: SocketAddr) -> Result<DynamoProxy, String> {
        let counts = Arc::new(OperationCounts::default());
        let shared = Arc::clone(&counts);
        let server = Server::start(move |stream| {
            let counts = Arc::clone(&shared);
            async move {
                let _ = relay_http(stream, upstream, counts).await;
            }
        })
        .await?;
        Ok(DynamoProxy { server, counts })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    pub fn counts(&self) -> &OperationCounts {
        &self.counts
    }
}

async fn relay_http(
    stream: TcpStream,
    upstream: SocketAddr,
    counts: Arc<OperationCounts>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let upstream = TcpStream::connect(upstream).await?;
    upstream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await?;
    let driver = tokio::spawn(connection);
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let service = service_fn(move |req: Request<Incoming>| {
        let sender = Arc::clone(&sender);
        let counts = Arc::clone(&counts);
        async move {
            let operation = req
                .headers()
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .map(|t| t.rsplit('.').next().unwrap_or(t).to_owned())
                .unwrap_or_else(|| "(no X-Amz-Target)".to_owned());
            counts.record(&operation);
            // HTTP/1.1 serves a connection's requests one at a time, so this never waits.
            let mut sender = sender.lock().await;
            sender.ready().await?;
            sender.send_request(req).await
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
    driver.abort();
    served.map_err(Into::into)
}

/// A TCP relay that counts accepted connections, optionally terminating TLS and adding a
/// simulated network round trip.
pub struct TcpRelay {
    server: Server,
    accepted: Arc<AtomicU64>,
    tls: bool,
}

impl TcpRelay {
    /// Relays to `upstream`. With `tls`, the relay is the TLS server and speaks plain TCP
    /// upstream. With a non-zero `rtt`, each direction is delayed by half of it and a new
    /// connection waits one more `rtt` before its first bytes go on (TCP's handshake).
    pub async fn start(
        upstream: SocketAddr,
        tls: Option<TlsAcceptor>,
        rtt: Duration,
    ) -> Result<TcpRelay, String> {
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&accepted);
        let is_tls = tls.is_some();
        let server = Server::start(move |stream| {
            counter.fetch_add(1, Ordering::SeqCst);
            let tls = tls.clone();
            async move {
                let Ok(up) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = up.set_nodelay(true);
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            relay(stream, up, rtt).await;
                        }
                    }
                    None => relay(stream, up, rtt).await,
                }
            }
        })
        .await?;
        Ok(TcpRelay {
            server,
            accepted,
            tls: is_tls,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.server.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn relay<D>(downstream: D, upstream: TcpStream, rtt: Duration)
where
    D: AsyncRead + AsyncWrite + Unpin + Send,
{
    if rtt.is_zero() {
        let mut downstream = downstream;
        let mut upstream = upstream;
        let _ = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await;
        return;
    }
    tokio::time::sleep(rtt).await;
    let (down_read, down_write) = tokio::io::split(downstream);
    let (up_read, up_write) = upstream.into_split();
    tokio::join!(
        delayed_copy(down_read, up_write, rtt / 2),
        delayed_copy(up_read, down_write, rtt / 2),
    );
}

/// Copies `from` to `to`, each chunk arriving `delay` after it was read, in order.
async fn delayed_copy<R, W>(mut from: R, mut to: W, delay: Duration)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0
                || tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
