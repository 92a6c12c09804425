//! Lever (b): what async-stripe's transport costs. Its hyper client is built with
//! `pool_max_idle_per_host(0)`, so every Stripe call opens a new connection (a new TLS
//! handshake against api.stripe.com). Here the same create-customer request goes to the
//! emulator through: async-stripe itself, a hyper client built the same way, and a hyper
//! client that keeps its connection alive; over plain HTTP and over TLS (rustls and
//! aws-lc-rs, as async-stripe uses them, against a throwaway CA), without and with a
//! simulated network round trip. Each relay counts the connections it accepts.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use stripe_emulator::StripeEmulator;
use tokio_rustls::TlsAcceptor;

use crate::proxy::TcpRelay;
use crate::stats::Latency;
use stripe_emulator::DEFAULT_SECRET_KEY as STRIPE_KEY;

/// How a client reaches Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// async-stripe's own client, as our functions build it.
    AsyncStripe,
    /// hyper-util's pooled client over hyper-rustls, the client async-stripe wraps.
    Hyper {
        /// Off: `pool_max_idle_per_host(0)`, as async-stripe builds it.
        keep_alive: bool,
        /// `TCP_NODELAY`; off in hyper's `HttpConnector` by default, and so in async-stripe.
        nodelay: bool,
    },
}

impl Transport {
    /// The hyper variants measured: async-stripe's settings, then one change at a time.
    pub const HYPER: [Transport; 3] = [
        Transport::Hyper {
            keep_alive: false,
            nodelay: false,
        },
        Transport::Hyper {
            keep_alive: false,
            nodelay: true,
        },
        Transport::Hyper {
            keep_alive: true,
            nodelay: true,
        },
    ];

    pub fn label(self) -> String {
        match self {
            Transport::AsyncStripe => "async-stripe client as shipped".to_owned(),
            Transport::Hyper {
                keep_alive,
                nodelay,
            } => format!(
                "hyper client, {}, {}",
                if keep_alive {
                    "keep-alive"
                } else {
                    "pool_max_idle_per_host(0)"
                },
                if nodelay { "TCP_NODELAY" } else { "Nagle" }
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TransportRun {
    pub transport: Transport,
    pub tls: bool,
    pub rtt: Duration,
    pub latency: Latency,
    pub connections_per_call: f64,
}

#[derive(Debug, Clone)]
pub struct TransportReport {
    pub runs: Vec<TransportRun>,
    /// Why TLS runs are missing, if they are.
    pub tls_note: Option<String>,
}

type HyperClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn hyper_client(tls: &rustls::ClientConfig, keep_alive: bool, nodelay: bool) -> HyperClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(nodelay);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let mut builder = Client::builder(TokioExecutor::new());
    if !keep_alive {
        builder.pool_max_idle_per_host(0);
    }
    builder.build(connector)
}

// One per transport run: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Caller {
    Stripe(stripe::Client),
    Hyper(HyperClient),
}

impl Caller {
    async fn create_customer(&self, base: &str, n: u64) -> Result<(), String> {
        let email = format!("transport-{n}@example.com");
        match self {
            Caller::Stripe(client) => stripe_core::customer::CreateCustomer::new()
                .email(email)
                .name("Transport")
                .send(client)
                .await
                .map(|_| ())
                .map_err(|e| format!("async-stripe create customer: {e}")),
            Caller::Hyper(client) => {
                let body = format!("email=transport-{n}%40example.com&name=Transport");
                let request = http::Request::post(format!("{base}/v1/customers"))
                    .header("authorization", format!("Bearer {STRIPE_KEY}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|e| e.to_string())?;
                let response = client
                    .request(request)
                    .await
                    .map_err(|e| format!("hyper create customer: {e}"))?;
                let status = response.status();
                let _ = response.into_body().collect().await;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("create customer answered {status}"))
                }
            }
        }
    }
}

/// A throwaway CA and a certificate for 127.0.0.1 signed by it, made with the `openssl`
/// command in `dir`; ECDSA P-256 so the (local) server's signature costs little.
fn tls_configs(dir: &Path) -> Result<(rustls::ServerConfig, rustls::ClientConfig), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=billstack-bench-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("the openssl command is needed for the TLS runs: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl {} failed: {}",
                args[0],
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let pem_err = |what: &str, e: rustls::pki_types::pem::Error| format!("{what}: {e:?}");
    let ca = CertificateDer::from_pem_file(dir.join("ca.pem")).map_err(|e| pem_err("ca.pem", e))?;
    let leaf =
        CertificateDer::from_pem_file(dir.join("leaf.pem")).map_err(|e| pem_err("leaf.pem", e))?;
    let key =
        PrivateKeyDer::from_pem_file(dir.join("leaf.key")).map_err(|e| pem_err("leaf.key", e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![leaf], key)
        .map_err(|e| format!("server certificate: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).map_err(|e| format!("CA certificate: {e}"))?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((server, client))
}

/// Runs every transport, `calls` measured calls each (after 5 unmeasured), without and, if
/// `rtt` is non-zero, with that round trip added.
pub async fn run(
    emulator: &StripeEmulator,
    calls: usize,
    rtt: Duration,
    tls_dir: &Path,
) -> Result<TransportReport, String> {
    let (tls, tls_note) = match tls_configs(tls_dir) {
        Ok(configs) => (Some(configs), None),
        Err(e) => (None, Some(e)),
    };
    let plain_client_tls = match &tls {
        Some((_, client)) => client.clone(),
        None => rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth(),
    };
    let mut rtts = vec![Duration::ZERO];
    if !rtt.is_zero() {
        rtts.push(rtt);
    }
    let mut runs = Vec::new();
    let mut n = 0u64;
    for rtt in rtts {
        let plain = TcpRelay::start(emulator.addr(), None, rtt).await?;
        // TLS: the round trip goes in front of the TLS server, where the network would be.
        let tls_relays = match &tls {
            Some((server, _)) => {
                let acceptor = TlsAcceptor::from(Arc::new(server.clone()));
                let terminator =
                    TcpRelay::start(emulator.addr(), Some(acceptor), Duration::ZERO).await?;
                let outer = if rtt.is_zero() {
                    None
                } else {
                    Some(TcpRelay::start(terminator.addr(), None, rtt).await?)
                };
                Some((terminator, outer))
            }
            None => None,
        };
        let mut targets: Vec<(Transport, bool, &TcpRelay, String)> = Vec::new();
        let plain_url = plain.url();
        for transport in [Transport::AsyncStripe].into_iter().chain(Transport::HYPER) {
            targets.push((transport, false, &plain, plain_url.clone()));
        }
        if let Some((terminator, outer)) = &tls_relays {
            let entry = outer.as_ref().unwrap_or(terminator);
            let url = format!("https://{}", entry.addr());
            for transport in Transport::HYPER {
                targets.push((transport, true, entry, url.clone()));
            }
        }
        for (transport, is_tls, relay, url) in targets {
            let caller = match transport {
                Transport::AsyncStripe => Caller::Stripe(
                    stripe::ClientBuilder::new(STRIPE_KEY)
                        .url(url.clone())
                        .build()
                        .map_err(|e| format!("async-stripe client: {e}"))?,
                ),
                Transport::Hyper {
                    keep_alive,
                    nodelay,
                } => Caller::Hyper(hyper_client(&plain_client_tls, keep_alive, nodelay)),
            };
            eprintln!(
                "  {} over {}{}",
                transport.label(),
                if is_tls { "TLS" } else { "HTTP" },
                if rtt.is_zero() {
                    String::new()
                } else {
                    format!(", +{} ms RTT", rtt.as_millis())
                }
            );
            let mut samples = Vec::with_capacity(calls);
            let mut connections = 0;
            for i in 0..5 + calls {
                n += 1;
                let before = relay.accepted();
                let at = Instant::now();
                caller.create_customer(&url, n).await?;
                if i >= 5 {
                    samples.push(at.elapsed());
                    connections += relay.accepted() - before;
                }
            }
            if let Some(latency) = Latency::of(&samples) {
                runs.push(TransportRun {
                    transport,
                    tls: is_tls,
                    rtt,
                    latency,
                    connections_per_call: connections as f64 / calls as f64,
                });
            }
        }
    }
    Ok(TransportReport { runs, tls_note })
}
