//! A local AWS KMS with no Docker: moto's server mode (`moto_server`), installed once with
//! pip into a virtual environment in the cache from `moto-requirements.txt` (every package
//! pinned), started on loopback behind the same watchdog as DynamoDB Local. It keeps its
//! keys in memory: a ciphertext does not outlive the server that made it.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cache_dir, free_port, run, shell_quote, stop_watched, wait_ready, watched};

/// The pinned requirements, compiled in so the install does not depend on the source tree.
const REQUIREMENTS: &str = include_str!("../moto-requirements.txt");
pub const MOTO_VERSION: &str = "5.2.5";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest an install may take before its lock is taken as left behind.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// The virtual environment's `bin/` folder, created (once) with `python3 -m venv` and pip.
/// A venv names its interpreter by absolute path, so it is built where it stays, under a
/// lock file that other processes wait on, and marked complete last.
pub fn ensure_installed() -> Result<PathBuf, String> {
    let root = cache_dir();
    let dir = root.join(format!("moto-{MOTO_VERSION}"));
    let bin = dir.join("bin");
    let complete = dir.join(".complete");
    if complete.is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let lock = root.join(format!("moto-{MOTO_VERSION}.lock"));
    let started = Instant::now();
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => break,
            Err(_) if complete.is_file() => return Ok(bin),
            // A lock older than any install is left by a process that died.
            Err(_) if started.elapsed() > INSTALL_TIMEOUT => {
                let _ = std::fs::remove_file(&lock);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    let result = install(&dir);
    let _ = std::fs::remove_file(&lock);
    result?;
    std::fs::write(&complete, MOTO_VERSION).map_err(|e| e.to_string())?;
    Ok(bin)
}

fn install(dir: &Path) -> Result<(), String> {
    if dir.join(".complete").is_file() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dir);
    eprintln!(
        "installing moto {MOTO_VERSION} (local KMS, ~140 MB) into {} ...",
        dir.display()
    );
    run(
        Command::new("python3").arg("-m").arg("venv").arg(dir),
        "python3 -m venv (is python3-venv installed? run ./scripts/setup)",
    )?;
    let requirements = dir.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS).map_err(|e| e.to_string())?;
    run(
        Command::new(dir.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "-r",
            ])
            .arg(&requirements)
            .stdout(Stdio::null()),
        "pip install (moto-requirements.txt)",
    )?;
    if dir.join("bin/moto_server").is_file() {
        Ok(())
    } else {
        Err(format!(
            "pip did not install moto_server into {}",
            dir.display()
        ))
    }
}

/// A running moto server. Dropping it stops it.
pub struct MotoServer {
    endpoint: String,
    port: u16,
    child: Child,
    watchdog: Option<ChildStdin>,
}

impl MotoServer {
    /// Installs (once) and starts moto on `port` (0: a free one), and waits until it answers.
    pub fn start(port: u16) -> Result<Self, String> {
        let bin = ensure_installed()?;
        let port = if port == 0 { free_port()? } else { port };
        let command = format!(
            "{} -H 127.0.0.1 -p {port}",
            shell_quote(&bin.join("moto_server"))
        );
        let (child, watchdog) = watched(&command, &std::env::temp_dir(), "moto_server")?;
        let mut server = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            child,
            watchdog,
        };
        wait_ready(
            &mut server.child,
            port,
            READY_TIMEOUT,
            "moto_server",
            answers_probe,
        )?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_KMS`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        stop_watched(&mut self.child, self.watchdog.take());
    }
}

/// moto answers `GET /moto-api/` once it serves (`GET /` is S3's).
fn answers_probe(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /moto-api/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
