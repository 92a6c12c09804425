//! The Lambda Runtime API on loopback (`/2018-06-01/runtime/...`), the way Lambda serves it
//! to a `provided.al2023` function, and the function process started against it.
//!
//! One server per process: `invocation/next` long-polls, so a killed process would leave
//! its poll behind in a shared server.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

const PREFIX: &str = "/2018-06-01/runtime/";
/// The deadline handed to the function with each event (Lambda's is the function timeout).
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the bench waits for an init or an invocation before calling the process stuck.
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// How an invocation ended.
#[derive(Debug)]
enum Outcome {
    Response(Bytes, Instant),
    Error(Bytes),
}

struct Pending {
    id: String,
    event: Bytes,
    reply: oneshot::Sender<Outcome>,
}

struct State {
    queue: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// `invocation/next` requests received so far.
    polls: watch::Sender<u64>,
    first_poll: OnceLock<Instant>,
    init_error: OnceLock<String>,
    function_arn: String,
}

/// A Runtime API server for one function process.
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<State>,
    sender: mpsc::Sender<Pending>,
    sent: AtomicU64,
    server: JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    pub async fn start(function_name: &str) -> Result<RuntimeApi, String> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| format!("runtime API: cannot bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (sender, receiver) = mpsc::channel(1);
        let state = Arc::new(State {
            queue: tokio::sync::Mutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            polls: watch::Sender::new(0),
            first_poll: OnceLock::new(),
            init_error: OnceLock::new(),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&state)));
        Ok(RuntimeApi {
            addr,
            state,
            sender,
            sent: AtomicU64::new(0),
            server,
        })
    }

    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Waits for the function's first `invocation/next`: the end of its init.
    pub async fn wait_init(&self, process: &mut FunctionProcess) -> Result<Instant, String> {
        let mut polls = self.state.polls.subscribe();
        let ready = async {
            polls
                .wait_for(|n| *n >= 1 || self.state.init_error.get().is_some())
                .await
                .map(|_| ())
        };
        let log = process.log_hint();
        tokio::select! {
            result = tokio::time::timeout(STUCK_AFTER, ready) => {
                if result.is_err() {
                    let label = &process.label;
                    return Err(format!("{label}: no invocation/next within {STUCK_AFTER:?}; see {log}"));
                }
            }
            status = process.child.wait() => {
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                return Err(format!("{} exited during init ({status}); see {log}", process.label));
            }
        }
        if let Some(error) = self.state.init_error.get() {
            return Err(format!(
                "{} reported an init error: {error}; see {}",
                process.label,
                process.log_hint()
            ));
        }
        self.state
            .first_poll
            .get()
            .copied()
            .ok_or_else(|| "runtime API: first poll not recorded".to_owned())
    }

    /// Delivers one event once the function is polling for it, and waits for its response.
    /// The latency runs from handing the event over to receiving the whole response.
    pub async fn invoke(
        &self,
        process: &FunctionProcess,
        event: Bytes,
    ) -> Result<(Duration, Bytes), String> {
        let n = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        let mut polls = self.state.polls.subscribe();
        tokio::time::timeout(STUCK_AFTER, polls.wait_for(|p| *p >= n))
            .await
            .map_err(|_| {
                format!(
                    "{} is not polling for invocation {n}; see {}",
                    process.label,
                    process.log_hint()
                )
            })?
            .map_err(|_| "runtime API stopped".to_owned())?;
        let (reply, outcome) = oneshot::channel();
        let id = format!("bench-{:08}", n);
        let started = Instant::now();
        self.sender
            .send(Pending { id, event, reply })
            .await
            .map_err(|_| "runtime API stopped".to_owned())?;
        match tokio::time::timeout(STUCK_AFTER, outcome).await {
            Err(_) => Err(format!(
                "{}: invocation {n} got no response within {STUCK_AFTER:?}; see {}",
                process.label,
                process.log_hint()
            )),
            Ok(Err(_)) => Err("runtime API dropped an invocation".to_owned()),
            Ok(Ok(Outcome::Response(body, at))) => Ok((at - started, body)),
            Ok(Ok(Outcome::Error(body))) => Err(format!(
                "{}: invocation {n} failed: {}; see {}",
                process.label,
                String::from_utf8_lossy(&body),
                process.log_hint()
            )),
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&state), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let Some(route) = path.strip_prefix(PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, "{}"));
    };
    if method == Method::GET && route == "invocation/next" {
        return Ok(next(&state).await);
    }
    if method != Method::POST {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "{}"));
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let received = Instant::now();
    if route == "init/error" {
        let _ = state
            .init_error
            .set(String::from_utf8_lossy(&body).into_owned());
        state.polls.send_modify(|_| {});
        return Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
    }
    let Some((id, what)) = route
        .strip_prefix("invocation/")
        .and_then(|r| r.split_once('/'))
    else {
        return Ok(reply(StatusCode::NOT_FOUND, "{}"));
    };
    let outcome = match what {
        "response" => Outcome::Response(body, received),
        "error" => Outcome::Error(body),
        _ => return Ok(reply(StatusCode::NOT_FOUND, "{}")),
    };
    let waiter = state.waiting.lock().ok().and_then(|mut w| w.remove(id));
    match waiter {
        Some(waiter) => {
            let _ = waiter.send(outcome);
            Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
        }
        None => Ok(reply(
            StatusCode::BAD_REQUEST,
            r#"{"errorMessage":"unknown request id","errorType":"InvalidRequestID"}"#,
        )),
    }
}

/// `GET invocation/next`: counts the poll, then hands over the next event when there is one.
async fn next(state: &State) -> Response<Full<Bytes>> {
    let _ = state.first_poll.set(Instant::now());
    let mut queue = state.queue.lock().await;
    state.polls.send_modify(|n| *n += 1);
    let Some(pending) = queue.recv().await else {
        return reply(StatusCode::INTERNAL_SERVER_ERROR, "{}");
    };
    drop(queue);
    let deadline = SystemTime::now()
        .checked_add(FUNCTION_TIMEOUT)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
        .unwrap_or_default();
    if let Ok(mut waiting) = state.waiting.lock() {
        waiting.insert(pending.id.clone(), pending.reply);
    }
    let mut response = Response::new(Full::new(pending.event));
    let headers = response.headers_mut();
    let pairs = [
        ("content-type", "application/json".to_owned()),
        ("lambda-runtime-aws-request-id", pending.id),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            state.function_arn.clone(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0".to_owned(),
        ),
    ];
    for (name, value) in pairs {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// Resident memory of a function process, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Peak resident set size so far (`VmHWM`): what Lambda reports as memory used.
    pub peak: u64,
    /// Resident now: anonymous pages (heap, stacks) ...
    pub anon: u64,
    /// ... and file-backed pages (the binary's code and data that were touched).
    pub file: u64,
}

/// A function binary running as Lambda runs it: the Lambda environment, our config, and
/// `AWS_LAMBDA_RUNTIME_API` pointing at its own [`RuntimeApi`].
pub struct FunctionProcess {
    pub label: String,
    child: Child,
    pid: u32,
    log: std::path::PathBuf,
}

/// What every function gets besides the runtime API address: Lambda's own variables and
/// the function's configuration.
pub fn lambda_env(function_name: &str, memory_mb: u32) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]bench".to_owned(),
        ),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        // DynamoDB Local takes any credentials; Lambda hands the role's over like this.
        ("AWS_ACCESS_KEY_ID", "ASIABENCHBENCHBENCH0".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "bench".to_owned()),
        ("AWS_SESSION_TOKEN", "bench".to_owned()),
        ("LAMBDA_TASK_ROOT", "/var/task".to_owned()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl FunctionProcess {
    /// Starts `binary` with exactly `env` (nothing inherited from the bench's own
    /// environment) plus `AWS_LAMBDA_RUNTIME_API`; stdout and stderr go to `log`. Returns the
    /// process and the instant just before the spawn.
    pub fn spawn(
        label: &str,
        binary: &Path,
        env: &[(String, String)],
        api: &RuntimeApi,
        log: &Path,
    ) -> Result<(FunctionProcess, Instant), String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let err_file = file.try_clone().map_err(|e| e.to_string())?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err_file))
            .kill_on_drop(true);
        let started = Instant::now();
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let pid = child.id().ok_or("the process exited at once")?;
        Ok((
            FunctionProcess {
                label: label.to_owned(),
                child,
                pid,
                log: log.to_owned(),
            },
            started,
        ))
    }

    fn log_hint(&self) -> String {
        self.log.display().to_string()
    }

    /// The process's memory from `/proc/<pid>/status`.
    pub fn memory(&self) -> Result<Memory, String> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
                .ok_or_else(|| format!("no {name} in {path}"))
        };
        Ok(Memory {
            peak: field("VmHWM:")?,
            anon: field("RssAnon:")?,
            file: field("RssFile:")?,
        })
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
