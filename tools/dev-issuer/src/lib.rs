//! A development OpenID Connect issuer on loopback, for the local API and the tests: what a
//! real issuer (Cognito, Auth0, ...) shows a relying party, and nothing more.
//!
//! - `GET /.well-known/openid-configuration`: the discovery document (`issuer`, `jwks_uri`);
//! - `GET /.well-known/jwks.json`: the public keys, an RS256 and an EdDSA one;
//! - `POST /token` with `{"sub", "email"?, "name"?, "expiresIn"?, "alg"?, "audience"?}`:
//!   a signed token for that user. There is no login: this issuer is for development only,
//!   and it listens on 127.0.0.1 alone.
//!
//! Keys are made at start and live in memory, so tokens do not outlive the process. Tests
//! also sign arbitrary claims, with published or unpublished keys, to build bad tokens.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::Ed25519KeyPair;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The audience of tokens minted without one: what `scripts/local` sets `AUTH_AUDIENCE` to.
pub const DEFAULT_AUDIENCE: &str = "billstack-local";
/// Lifetime of a token minted without `expiresIn`.
pub const DEFAULT_EXPIRES_IN: i64 = 3600;
/// The longest lifetime `POST /token` grants.
pub const MAX_EXPIRES_IN: i64 = 7 * 24 * 3600;

/// One signing key, with its public half as a JWK.
struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl SigningKey {
    fn generate(alg: Algorithm, kid: String) -> Self {
        let encoding = match alg {
            Algorithm::EdDSA => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8v1(&aws_lc_rs::rand::SystemRandom::new())
                    .expect("generate an Ed25519 key");
                EncodingKey::from_ed_der(pkcs8.as_ref())
            }
            Algorithm::RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("generate an RSA key");
                let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                    .expect("encode the RSA key");
                EncodingKey::from_rsa_der(&rsa_private_key_of(pkcs8.as_ref()))
            }
            other => panic!("the development issuer signs with RS256 or EdDSA, not {other:?}"),
        };
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("public JWK of the key");
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(match alg {
            Algorithm::EdDSA => KeyAlgorithm::EdDSA,
            _ => KeyAlgorithm::RS256,
        });
        Self {
            kid,
            alg,
            encoding,
            jwk,
        }
    }
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (jsonwebtoken takes the
/// former; aws-lc-rs writes the latter): the contents of its `privateKey` OCTET STRING.
fn rsa_private_key_of(pkcs8: &[u8]) -> Vec<u8> {
    // One DER element at `at`: (tag, start of contents, end of contents).
    fn element(der: &[u8], at: usize) -> (u8, usize, usize) {
        let tag = der[at];
        let first = der[at + 1] as usize;
        let (len, header) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            let len = der[at + 2..at + 2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + n)
        };
        (tag, at + header, at + header + len)
    }
    let (tag, body, _) = element(pkcs8, 0);
    assert_eq!(tag, 0x30, "PrivateKeyInfo is a SEQUENCE");
    let (_, _, after_version) = element(pkcs8, body);
    let (_, _, after_algorithm) = element(pkcs8, after_version);
    let (tag, start, end) = element(pkcs8, after_algorithm);
    assert_eq!(tag, 0x04, "privateKey is an OCTET STRING");
    pkcs8[start..end].to_vec()
}

struct State {
    issuer: String,
    /// Published in the JWKS; the first of each algorithm signs minted tokens.
    published: Mutex<Vec<Arc<SigningKey>>>,
    /// Never published: tokens they sign name an unknown `kid`.
    unpublished: Vec<Arc<SigningKey>>,
    jwks_fetches: AtomicUsize,
}

impl State {
    fn key(&self, alg: Algorithm) -> Arc<SigningKey> {
        self.published
            .lock()
            .expect("keys")
            .iter()
            .find(|k| k.alg == alg)
            .cloned()
            .expect("a published key of each algorithm")
    }

    fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .published
                .lock()
                .expect("keys")
                .iter()
                .map(|k| k.jwk.clone())
                .collect(),
        }
    }
}

/// What a token is minted for.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Seconds from now; [`DEFAULT_EXPIRES_IN`] when absent.
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// `RS256` (default) or `EdDSA`.
    #[serde(default)]
    pub alg: Option<String>,
    /// [`DEFAULT_AUDIENCE`] when absent.
    #[serde(default)]
    pub audience: Option<String>,
}

impl TokenRequest {
    pub fn for_user(sub: &str) -> Self {
        Self {
            sub: sub.to_owned(),
            email: None,
            name: None,
            expires_in: None,
            alg: None,
            audience: None,
        }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A running issuer; dropping it stops the server.
pub struct DevIssuer {
    url: String,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl Drop for DevIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl DevIssuer {
    /// Listens on 127.0.0.1:`port` (0: any free port); the issuer URL is
    /// `http://127.0.0.1:<port>`.
    pub async fn start(port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        // Key generation takes a few milliseconds (RSA); off the async threads.
        let keys = tokio::task::spawn_blocking(|| {
            [
                (Algorithm::RS256, "dev-rs256-1"),
                (Algorithm::EdDSA, "dev-ed25519-1"),
                (Algorithm::RS256, "dev-rs256-unpublished"),
                (Algorithm::EdDSA, "dev-ed25519-unpublished"),
            ]
            .map(|(alg, kid)| Arc::new(SigningKey::generate(alg, kid.to_owned())))
        })
        .await
        .map_err(std::io::Error::other)?;
        let [rs, ed, rs_hidden, ed_hidden] = keys;
        let state = Arc::new(State {
            issuer: url.clone(),
            published: Mutex::new(vec![rs, ed]),
            unpublished: vec![rs_hidden, ed_hidden],
            jwks_fetches: AtomicUsize::new(0),
        });
        let server = tokio::spawn(serve(listener, state.clone()));
        Ok(Self { url, state, server })
    }

    /// The issuer URL (`iss`), with no trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.url)
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// A token as `POST /token` mints it.
    pub fn mint(&self, request: &TokenRequest) -> Result<String, String> {
        mint(&self.state, request)
    }

    /// A token for `sub` with the default lifetime, audience and algorithm.
    pub fn token_for(&self, sub: &str) -> String {
        self.mint(&TokenRequest::for_user(sub))
            .expect("mint a token")
    }

    /// Signs `claims` as they are with the published key of `alg` (tests build expired,
    /// foreign-issuer or otherwise bad tokens with it).
    pub fn sign(&self, claims: &Value, alg: Algorithm) -> String {
        sign(&self.state.key(alg), claims)
    }

    /// Signs `claims` with a key of `alg` that the JWKS does not list.
    pub fn sign_with_unpublished_key(&self, claims: &Value, alg: Algorithm) -> String {
        let key = self
            .state
            .unpublished
            .iter()
            .find(|k| k.alg == alg)
            .expect("an unpublished key of each algorithm");
        sign(key, claims)
    }

    /// Publishes a new key of `alg` beside the others and answers its `kid`; tokens signed
    /// with [`DevIssuer::sign_with_kid`] then use it.
    pub fn rotate(&self, alg: Algorithm) -> String {
        let mut published = self.state.published.lock().expect("keys");
        let kid = format!("dev-{alg:?}-{}", published.len() + 1).to_lowercase();
        published.push(Arc::new(SigningKey::generate(alg, kid.clone())));
        kid
    }

    /// Signs `claims` with the published key `kid`.
    pub fn sign_with_kid(&self, claims: &Value, kid: &str) -> String {
        let key = self
            .state
            .published
            .lock()
            .expect("keys")
            .iter()
            .find(|k| k.kid == kid)
            .cloned()
            .expect("a published key with this kid");
        sign(&key, claims)
    }

    /// The claims a minted token for `sub` would carry, to change before [`DevIssuer::sign`].
    pub fn claims_for(&self, sub: &str) -> Value {
        claims(&self.state, &TokenRequest::for_user(sub), now())
    }
}

fn claims(state: &State, request: &TokenRequest, now: i64) -> Value {
    let mut claims = json!({
        "iss": state.issuer,
        "sub": request.sub,
        "aud": request.audience.as_deref().unwrap_or(DEFAULT_AUDIENCE),
        "iat": now,
        "nbf": now,
        "exp": now + request.expires_in.unwrap_or(DEFAULT_EXPIRES_IN),
    });
    if let Some(email) = &request.email {
        claims["email"] = json!(email);
    }
    if let Some(name) = &request.name {
        claims["name"] = json!(name);
    }
    claims
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign a token")
}

fn mint(state: &State, request: &TokenRequest) -> Result<String, String> {
    if request.sub.is_empty() {
        return Err("sub must not be empty".into());
    }
    let expires_in = request.expires_in.unwrap_or(DEFAULT_EXPIRES_IN);
    if !(1..=MAX_EXPIRES_IN).contains(&expires_in) {
        return Err(format!(
            "expiresIn must be from 1 to {MAX_EXPIRES_IN} seconds"
        ));
    }
    let alg = match request.alg.as_deref() {
        None | Some("RS256") => Algorithm::RS256,
        Some("EdDSA") => Algorithm::EdDSA,
        Some(other) => return Err(format!("alg must be RS256 or EdDSA, not {other:?}")),
    };
    Ok(sign(&state.key(alg), &claims(state, request, now())))
}

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

async fn answer(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/.well-known/openid-configuration") => json_response(
            StatusCode::OK,
            json!({
                "issuer": state.issuer,
                "jwks_uri": format!("{}/.well-known/jwks.json", state.issuer),
                "token_endpoint": format!("{}/token", state.issuer),
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
            }),
        ),
        (&Method::GET, "/.well-known/jwks.json") => {
            state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            json_response(StatusCode::OK, json!(state.jwks()))
        }
        (&Method::POST, "/token") => {
            let bytes = match Limited::new(body, 64 * 1024).collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => {
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        json!({"error": "unreadable body"}),
                    );
                }
            };
            let minted = serde_json::from_slice::<TokenRequest>(&bytes)
                .map_err(|e| format!("body must be {{\"sub\", \"email\"?, \"name\"?, \"expiresIn\"?, \"alg\"?, \"audience\"?}}: {e}"))
                .and_then(|request| {
                    let expires_in = request.expires_in.unwrap_or(DEFAULT_EXPIRES_IN);
                    mint(&state, &request).map(|token| (token, expires_in))
                });
            match minted {
                Ok((token, expires_in)) => json_response(
                    StatusCode::OK,
                    json!({"token": token, "tokenType": "Bearer", "expiresIn": expires_in}),
                ),
                Err(error) => json_response(StatusCode::BAD_REQUEST, json!({"error": error})),
            }
        }
        _ => json_response(StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(state, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs1_is_taken_out_of_pkcs8() {
        let key = SigningKey::generate(Algorithm::RS256, "t".into());
        let token = sign(&key, &json!({"sub": "u", "exp": now() + 60}));
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&key.jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap();
        assert_eq!(data.claims["sub"], "u");
    }
}
