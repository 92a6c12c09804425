use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;

use serde_json::Value;
use stripe::{ApiErrors, Client, ClientBuilder, StripeError};
pub use stripe_emulator::StripeEmulator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub type TestResult = Result<(), Box<dyn Error>>;

pub const TEST_KEY: &str = stripe_emulator::DEFAULT_SECRET_KEY;

pub async fn setup() -> Result<(StripeEmulator, Client), Box<dyn Error>> {
    let emulator = StripeEmulator::start(0).await?;
    let client = client_with_key(&emulator, TEST_KEY)?;
    Ok((emulator, client))
}

pub fn client_with_key(emulator: &StripeEmulator, key: &str) -> Result<Client, StripeError> {
    ClientBuilder::new(key).url(emulator.url()).build()
}

pub fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The Stripe error of a call that must have failed: (HTTP status, error).
pub fn api_error<T: std::fmt::Debug>(result: Result<T, StripeError>) -> (u16, Box<ApiErrors>) {
    match result {
        Err(StripeError::Stripe(err, status)) => (status, err),
        other => panic!("expected a Stripe API error, got {other:?}"),
    }
}

/// A response read off the wire.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub text: String,
    pub body: Value,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Raw, Box<dyn Error>> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await?;
    let response = String::from_utf8(bytes)?;
    let (head, text) = response
        .split_once("\r\n\r\n")
        .ok_or("no header/body separator")?;
    let mut lines = head.lines();
    let status_line = lines.next().ok_or("no status line")?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .ok_or("no status")?
        .parse()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text)?
    };
    Ok(Raw {
        status,
        headers,
        text: text.to_string(),
        body,
    })
}

/// A `/v1` request with a valid test key and a form body.
pub async fn call(
    emulator: &StripeEmulator,
    method: &str,
    path: &str,
    body: &str,
) -> Result<Raw, Box<dyn Error>> {
    let auth = format!("Bearer {TEST_KEY}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    raw(emulator.addr(), method, path, &headers, body).await
}

/// A POST with an `Idempotency-Key`.
pub async fn post_idempotent(
    emulator: &StripeEmulator,
    path: &str,
    body: &str,
    key: &str,
) -> Result<Raw, Box<dyn Error>> {
    let auth = format!("Bearer {TEST_KEY}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Idempotency-Key", key),
    ];
    raw(emulator.addr(), "POST", path, &headers, body).await
}
