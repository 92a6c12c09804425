//! The results as Markdown: the DESIGN.md §6 ratios first, then the detail behind them and
//! the levers. The same text is printed and written to `BENCHMARKS.md`.

use std::fmt::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::bench::{ColdStart, Counts, KindRun, WarmRun};
use crate::stats::{CallProfile, Latency, ms, ratio};
use crate::stripe_transport::{Transport, TransportReport};

/// An arm's measurements.
#[derive(Debug, Clone)]
pub struct ArmResult {
    pub label: String,
    pub warm: WarmRun,
    pub cold: Vec<ColdStart>,
    /// The kind sent first after each cold start.
    pub cold_kind: Option<String>,
}

impl ArmResult {
    pub fn init(&self) -> Option<Latency> {
        Latency::of(&self.cold.iter().map(|c| c.init).collect::<Vec<_>>())
    }

    pub fn kind(&self, name: &str) -> Option<&KindRun> {
        self.warm.kinds.iter().find(|k| k.name == name)
    }

    /// The kind measured beside a raw GetItem: the warm GET of DESIGN.md §6.
    pub fn get_kind(&self) -> Option<&KindRun> {
        self.warm.kinds.iter().find(|k| !k.raw_get_item.is_empty())
    }
}

/// The zipped size of a function's `bootstrap`.
#[derive(Debug, Clone)]
pub enum Zip {
    /// `target/lambda/<fn>/bootstrap`, built by cargo-lambda for arm64.
    Arm64(u64),
    /// Not built for arm64: the host's release binary zipped instead.
    HostApprox(u64),
    Unavailable(String),
}

impl Zip {
    /// Zips `target/lambda/<binary>/bootstrap` if cargo-lambda built it, else the host binary.
    pub fn measure(target_dir: &Path, binary: &str) -> Zip {
        let arm64 = target_dir.join("lambda").join(binary).join("bootstrap");
        let host = target_dir.join("release").join(binary);
        let (path, arm) = if arm64.is_file() {
            (arm64, true)
        } else {
            (host, false)
        };
        match zipped_size(&path) {
            Ok(bytes) if arm => Zip::Arm64(bytes),
            Ok(bytes) => Zip::HostApprox(bytes),
            Err(e) => Zip::Unavailable(e),
        }
    }

    /// MiB, checked against `limit_mib` if there is one.
    fn describe(&self, limit_mib: Option<f64>) -> String {
        let size = |b: u64| {
            let mib = b as f64 / 1024.0 / 1024.0;
            limit_mib.map_or(format!("{mib:.2}"), |limit| check(mib, limit, 2))
        };
        match self {
            Zip::Arm64(b) => format!("{} arm64", size(*b)),
            Zip::HostApprox(b) => format!("{} x86_64 (arm64 not built; approximation)", size(*b)),
            Zip::Unavailable(e) => format!("n/a ({e})"),
        }
    }
}

/// The size of `path` zipped alone with `zip` (deflate, its default level, like a deployment
/// package).
fn zipped_size(path: &Path) -> Result<u64, String> {
    if !path.is_file() {
        return Err(format!("{} not built", path.display()));
    }
    let dir = std::env::temp_dir().join(format!("billstack-bench-zip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let zip = dir.join("bootstrap.zip");
    let _ = std::fs::remove_file(&zip);
    let out = Command::new("zip")
        .arg("-q")
        .arg("-j")
        .arg("-X")
        .arg(&zip)
        .arg(path)
        .output()
        .map_err(|e| format!("the zip command is needed: {e}"))?;
    let size = std::fs::metadata(&zip).map(|m| m.len());
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        return Err(format!(
            "zip failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    size.map_err(|e| e.to_string())
}

#[derive(Debug, Clone)]
pub struct FunctionResult {
    pub arm: ArmResult,
    pub calls_stripe: bool,
    pub zip: Zip,
    /// Size of the x86_64 release binary that was measured.
    pub binary_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every number.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".to_owned());
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub command: String,
    pub date: String,
    pub commit: String,
    pub machine: Machine,
    pub counts: Counts,
    pub cold_starts: usize,
    pub hello: ArmResult,
    pub hello_zip: Zip,
    pub hello_binary_bytes: u64,
    pub functions: Vec<FunctionResult>,
    pub skipped: Vec<String>,
    /// Lever (a): the default key cache and none, side by side.
    pub auth_cache: Vec<ArmResult>,
    /// Lever (b).
    pub transport: Option<TransportReport>,
    /// Lever (c): one arm per tokio flavour.
    pub flavours: Vec<ArmResult>,
    /// Lever (d): cold starts with other root certificate stores.
    pub roots: Vec<ArmResult>,
    /// From starting the stack to the last measurement (builds excluded).
    pub measuring: Duration,
    /// Load averages when the measurements began and ended.
    pub load: (String, String),
}

/// `1.23 ✓` when `value ≤ limit`, else `1.23 ✗`.
fn check(value: f64, limit: f64, decimals: usize) -> String {
    let mark = if value <= limit { "✓" } else { "✗" };
    format!("{value:.decimals$} {mark}")
}

fn table(out: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", headers.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        headers.iter().map(|_| "---|").collect::<String>()
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1024.0 / 1024.0)
}

/// The median peak RSS after the first invocation of each cold start, MiB.
fn cold_rss(cold: &[ColdStart]) -> String {
    let mut rss: Vec<u64> = cold.iter().map(|c| c.peak_rss).collect();
    rss.sort_unstable();
    rss.get(rss.len() / 2).map_or("n/a".to_owned(), |b| mb(*b))
}

fn p50_p90(l: Option<Latency>) -> String {
    l.map_or("n/a".to_owned(), |l| {
        format!("{} ({})", ms(l.p50), ms(l.p90))
    })
}

/// `2`, or `mean 1.50 (1–2)` when invocations differed.
fn spread(values: &[u64]) -> String {
    let (Some(min), Some(max)) = (values.iter().min(), values.iter().max()) else {
        return "n/a".to_owned();
    };
    if min == max {
        return min.to_string();
    }
    let mean = values.iter().sum::<u64>() as f64 / values.len() as f64;
    format!("mean {mean:.2} ({min}–{max})")
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        self.header(&mut out);
        self.targets(&mut out);
        self.warm(&mut out);
        self.memory(&mut out);
        self.cold(&mut out);
        self.levers(&mut out);
        out
    }

    fn header(&self, out: &mut String) {
        let c = &self.counts;
        let _ = writeln!(out, "# Benchmarks\n");
        let _ = writeln!(
            out,
            "Generated by `{}`; rerun it rather than editing this file. How it measures, and what \
             the numbers mean for Lambda: [docs/benchmarks.md](docs/benchmarks.md).\n",
            self.command
        );
        let _ = writeln!(
            out,
            "- Date: {} (measuring took {:.0} s, builds excluded)",
            self.date,
            self.measuring.as_secs_f64()
        );
        let _ = writeln!(out, "- Commit: {}", self.commit);
        let m = &self.machine;
        let _ = writeln!(
            out,
            "- Machine: {} CPUs ({}), {} RAM, Linux {}; x86_64 release builds (workspace profile)",
            m.cpus, m.cpu_model, m.memory, m.kernel
        );
        let _ = writeln!(
            out,
            "- Runs: {} cold starts per binary; per kind {} warm-up + {} measured invocations; \
             AWS_LAMBDA_FUNCTION_MEMORY_SIZE={}; DynamoDB Local and the Stripe emulator on loopback",
            self.cold_starts, c.warmup, c.invocations, c.memory_mb
        );
        let _ = writeln!(
            out,
            "- Load average (1/5/15 min) at start: {}; at end: {}",
            self.load.0, self.load.1
        );
        for skipped in &self.skipped {
            let _ = writeln!(out, "- Skipped: {skipped}");
        }
        out.push('\n');
    }

    fn targets(&self, out: &mut String) {
        let _ = writeln!(out, "## DESIGN.md §6 targets\n");
        let hello_init = self.hello.init();
        let mut rows = Vec::new();
        for f in &self.functions {
            let init = f.arm.init();
            let init_ratio = match (init, hello_init) {
                (Some(i), Some(h)) => check(ratio(i.p50, h.p50), 1.5, 2),
                _ => "n/a".to_owned(),
            };
            let (calls, stripe, latency) = match f.arm.get_kind() {
                Some(get) => {
                    let dynamo = CallProfile::of(&get.dynamo);
                    let stripe = CallProfile::of(&get.stripe);
                    let ok = |p: &CallProfile, want: u64| {
                        let mark = if p.usual_total == want && p.others == 0 {
                            "✓"
                        } else {
                            "✗"
                        };
                        format!("{} {mark}", p.summary())
                    };
                    let latency =
                        match (Latency::of(&get.latencies), Latency::of(&get.raw_get_item)) {
                            (Some(g), Some(r)) => format!(
                                "{} / {} = {} (p99 {})",
                                ms(g.p50),
                                ms(r.p50),
                                check(ratio(g.p50, r.p50), 1.2, 2),
                                format_args!("{:.2}", ratio(g.p99, r.p99))
                            ),
                            _ => "n/a".to_owned(),
                        };
                    (ok(&dynamo, 1), ok(&stripe, 0), latency)
                }
                None => ("n/a".into(), "n/a".into(), "n/a".into()),
            };
            let rss = format!(
                "{} / {} = {}",
                mb(f.arm.warm.memory.peak),
                mb(self.hello.warm.memory.peak),
                check(
                    f.arm.warm.memory.peak as f64 / self.hello.warm.memory.peak.max(1) as f64,
                    2.0,
                    2
                )
            );
            let zip_limit = if f.calls_stripe { 8.0 } else { 6.0 };
            rows.push(vec![
                f.arm.label.clone(),
                p50_p90(init),
                init_ratio,
                calls,
                stripe,
                latency,
                rss,
                f.zip.describe(Some(zip_limit)),
            ]);
        }
        rows.push(vec![
            "hello (baseline)".to_owned(),
            p50_p90(hello_init),
            "1".to_owned(),
            "–".to_owned(),
            "–".to_owned(),
            "–".to_owned(),
            mb(self.hello.warm.memory.peak),
            self.hello_zip.describe(None),
        ]);
        table(
            out,
            &[
                "function",
                "init p50 (p90) ms",
                "init / hello (≤ 1.5)",
                "warm GET DynamoDB calls (= 1)",
                "warm GET Stripe calls (= 0)",
                "warm GET p50 ms / raw GetItem p50 ms (≤ 1.2)",
                "peak RSS MiB / hello (≤ 2)",
                "zipped bootstrap MiB (≤ 8 with Stripe, ≤ 6 without)",
            ],
            &rows,
        );
        let hello_warm = self
            .hello
            .warm
            .kinds
            .first()
            .and_then(|k| Latency::of(&k.latencies));
        let added: Vec<String> = self
            .functions
            .iter()
            .filter_map(|f| {
                let get = f.arm.get_kind()?;
                let (g, r) = (
                    Latency::of(&get.latencies)?,
                    Latency::of(&get.raw_get_item)?,
                );
                Some(format!(
                    "{} {:.2} ms",
                    f.arm.label,
                    (g.p50.as_secs_f64() - r.p50.as_secs_f64()) * 1000.0
                ))
            })
            .collect();
        if let (Some(hello), false) = (hello_warm, added.is_empty()) {
            let _ = writeln!(
                out,
                "What a warm GET adds to the raw GetItem (p50): {}. Of that, {} ms is the \
                 Runtime API round trip and `lambda_http`, which the bare hello function pays too \
                 (its whole warm invocation).\n",
                added.join(", "),
                ms(hello.p50)
            );
        }
        self.misses(out);
    }

    /// Where a missed init or RSS bar comes from, from this run's own numbers.
    fn misses(&self, out: &mut String) {
        let Some(hello_init) = self.hello.init() else {
            return;
        };
        let hello_mem = self.hello.warm.memory;
        let mut lines = Vec::new();
        for f in &self.functions {
            let Some(init) = f.arm.init() else { continue };
            if ratio(init.p50, hello_init.p50) > 1.5 {
                lines.push(format!(
                    "- {} init is {} ms over hello's. It builds the DynamoDB client and the \
                     Stripe transport (a step-by-step breakdown is in docs/benchmarks.md) and \
                     loads a {} MiB binary against hello's {} MiB.",
                    f.arm.label,
                    ms(init.p50.saturating_sub(hello_init.p50)),
                    mb(f.binary_bytes),
                    mb(self.hello_binary_bytes),
                ));
            }
            let m = f.arm.warm.memory;
            if m.peak as f64 > 2.0 * hello_mem.peak as f64 {
                lines.push(format!(
                    "- {} peak RSS is {} MiB over hello's: resident file-backed pages of the \
                     binary {} MiB (hello {}), anonymous memory (heap, stacks) {} MiB (hello {}).",
                    f.arm.label,
                    mb(m.peak.saturating_sub(hello_mem.peak)),
                    mb(m.file),
                    mb(hello_mem.file),
                    mb(m.anon),
                    mb(hello_mem.anon),
                ));
            }
        }
        if !lines.is_empty() {
            let _ = writeln!(
                out,
                "Where the missed bars come from, in this run:\n\n{}\n",
                lines.join("\n")
            );
        }
    }

    fn warm(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## Warm invocations\n\nLatency runs from handing the event to the function (already \
             waiting in `invocation/next`) to receiving its whole response. Calls are counted per \
             invocation: DynamoDB by `X-Amz-Target` at the proxy, Stripe by the emulator, Stripe \
             connections by the relay in front of it. The raw GetItem row is the same item read \
             with the SDK from the bench process, through the same proxy, one call beside each GET.\n"
        );
        let mut rows = Vec::new();
        for f in &self.functions {
            for kind in &f.arm.warm.kinds {
                rows.push(kind_row(&f.arm.label, kind));
                if let Some(raw) = Latency::of(&kind.raw_get_item) {
                    rows.push(vec![
                        f.arm.label.clone(),
                        format!("raw SDK GetItem (baseline of {})", kind.name),
                        raw.n.to_string(),
                        ms(raw.p50),
                        ms(raw.p90),
                        ms(raw.p99),
                        "1 (GetItem)".to_owned(),
                        "–".to_owned(),
                        "–".to_owned(),
                    ]);
                }
            }
        }
        for kind in &self.hello.warm.kinds {
            rows.push(kind_row("hello (baseline)", kind));
        }
        table(
            out,
            &[
                "function",
                "kind",
                "n",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "DynamoDB calls / invocation",
                "Stripe calls / invocation",
                "Stripe TCP connections / invocation",
            ],
            &rows,
        );
    }

    fn memory(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## Memory\n\nPeak RSS (`VmHWM`, what Lambda reports as memory used) after the warm \
             invocations, and what is resident at that point: anonymous pages (heap, stacks) and \
             file-backed pages (the parts of the binary that were touched).\n"
        );
        let rows: Vec<Vec<String>> = self
            .functions
            .iter()
            .map(|f| (&f.arm, f.binary_bytes))
            .chain([(&self.hello, self.hello_binary_bytes)])
            .map(|(arm, binary)| {
                let m = arm.warm.memory;
                vec![
                    arm.label.clone(),
                    mb(m.peak),
                    mb(m.anon),
                    mb(m.file),
                    mb(binary),
                ]
            })
            .collect();
        table(
            out,
            &[
                "binary",
                "peak RSS MiB",
                "anonymous MiB",
                "file-backed MiB",
                "x86_64 binary MiB",
            ],
            &rows,
        );
    }

    fn cold(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## Cold starts\n\nInit runs from spawning the process (with Lambda's environment and \
             `AWS_LAMBDA_RUNTIME_API`) to its first `invocation/next`. The first invocation is then \
             one event of the cold kind: it pays for the first DynamoDB connection and an empty \
             API key cache. Binaries alternate, one cold start each per round.\n"
        );
        let mut rows = Vec::new();
        let arms = self
            .functions
            .iter()
            .map(|f| &f.arm)
            .chain([&self.hello])
            .chain(self.flavours.iter());
        for arm in arms {
            let first: Vec<Duration> = arm.cold.iter().filter_map(|c| c.first).collect();
            let dynamo: Vec<_> = arm.cold.iter().map(|c| c.first_dynamo.clone()).collect();
            rows.push(vec![
                arm.label.clone(),
                arm.cold.len().to_string(),
                p50_p90(arm.init()),
                arm.cold_kind.clone().unwrap_or_else(|| "–".to_owned()),
                p50_p90(Latency::of(&first)),
                if arm.cold_kind.is_some() {
                    CallProfile::of(&dynamo).summary()
                } else {
                    "–".to_owned()
                },
                cold_rss(&arm.cold),
            ]);
        }
        table(
            out,
            &[
                "binary",
                "cold starts",
                "init p50 (p90) ms",
                "first invocation",
                "first invocation p50 (p90) ms",
                "its DynamoDB calls",
                "peak RSS after it, MiB (median)",
            ],
            &rows,
        );
    }

    fn levers(&self, out: &mut String) {
        if self.auth_cache.is_empty()
            && self.transport.is_none()
            && self.flavours.is_empty()
            && self.roots.is_empty()
        {
            return;
        }
        let _ = writeln!(out, "## Levers\n");
        if !self.auth_cache.is_empty() {
            let _ = writeln!(
                out,
                "### (a) API key cache in the warm container\n\n`AUTH_CACHE_TTL_SECONDS=0` turns \
                 the cache off: every request looks its key and its project up again. With the \
                 default (30 s) a revoked key keeps working up to 30 s in a warm container that has \
                 it cached. Both processes run side by side, taking turns.\n"
            );
            let rows: Vec<Vec<String>> = self
                .auth_cache
                .iter()
                .filter_map(|arm| {
                    let get = arm.get_kind()?;
                    let (l, raw) = (
                        Latency::of(&get.latencies)?,
                        Latency::of(&get.raw_get_item)?,
                    );
                    Some(vec![
                        arm.label.clone(),
                        CallProfile::of(&get.dynamo).summary(),
                        ms(l.p50),
                        ms(l.p99),
                        format!("{:.2}", ratio(l.p50, raw.p50)),
                    ])
                })
                .collect();
            table(
                out,
                &[
                    "arm",
                    "warm GET DynamoDB calls",
                    "GET p50 ms",
                    "GET p99 ms",
                    "GET p50 / raw GetItem p50",
                ],
                &rows,
            );
        }
        if let Some(transport) = &self.transport {
            self.transport_lever(out, transport);
        }
        if !self.flavours.is_empty() {
            let _ = writeln!(
                out,
                "### (c) tokio flavour\n\nThe customers function's `main`, built twice in \
                 `tools/bench` (so both differ from `target/release/customers` only by sharing \
                 the bench package's dependency features), once per flavour. Warm: both \
                 processes side by side, taking turns; cold: alternating with the others.\n"
            );
            let mut rows = Vec::new();
            for arm in &self.flavours {
                let latency = |kind: Option<&KindRun>| {
                    kind.and_then(|k| Latency::of(&k.latencies))
                        .map_or("n/a".to_owned(), |l| {
                            format!("{} / {}", ms(l.p50), ms(l.p99))
                        })
                };
                rows.push(vec![
                    arm.label.clone(),
                    p50_p90(arm.init()),
                    latency(arm.get_kind()),
                    latency(arm.kind("create")),
                    mb(arm.warm.memory.peak),
                ]);
            }
            if let Some(raw) = self
                .flavours
                .first()
                .and_then(ArmResult::get_kind)
                .and_then(|k| Latency::of(&k.raw_get_item))
            {
                rows.push(vec![
                    "raw SDK GetItem, taking turns with both".to_owned(),
                    "–".to_owned(),
                    format!("{} / {}", ms(raw.p50), ms(raw.p99)),
                    "–".to_owned(),
                    "–".to_owned(),
                ]);
            }
            table(
                out,
                &[
                    "flavour",
                    "init p50 (p90) ms",
                    "GET p50 / p99 ms",
                    "create p50 / p99 ms",
                    "peak RSS MiB",
                ],
                &rows,
            );
        }
        if !self.roots.is_empty() {
            self.roots_lever(out);
        }
    }

    fn roots_lever(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "### (d) AWS settings and root certificates at init\n\nAs shipped, a function \
             reads its region and credentials from the variables Lambda sets and gives the \
             SDK's HTTPS client a trust store of the five Amazon Trust Services roots \
             (`shared/src/aws.rs`). Before, `main` ran aws-config's default provider chains, \
             and the SDK's default HTTPS client loaded the machine's root certificates \
             (rustls-native-certs: `SSL_CERT_FILE` / `SSL_CERT_DIR` if set, else the bundle and \
             every file of the certificate folder openssl would use); \
             `tools/bench/src/bin/customers-native-roots.rs` is that `main`. Cold starts only, \
             alternating with the others.\n"
        );
        let hello = self.hello.init();
        let base = self
            .functions
            .iter()
            .find(|f| {
                self.roots
                    .first()
                    .is_some_and(|r| r.label.starts_with(&f.arm.label))
            })
            .map(|f| ArmResult {
                label: format!("{} as shipped", f.arm.label),
                ..f.arm.clone()
            });
        let mut rows = Vec::new();
        for arm in base.iter().chain(&self.roots) {
            let init = arm.init();
            let first: Vec<Duration> = arm.cold.iter().filter_map(|c| c.first).collect();
            rows.push(vec![
                arm.label.clone(),
                p50_p90(init),
                match (init, hello) {
                    (Some(i), Some(h)) => check(ratio(i.p50, h.p50), 1.5, 2),
                    _ => "n/a".to_owned(),
                },
                p50_p90(Latency::of(&first)),
                cold_rss(&arm.cold),
            ]);
        }
        table(
            out,
            &[
                "arm",
                "init p50 (p90) ms",
                "init / hello (≤ 1.5)",
                "first invocation p50 (p90) ms",
                "peak RSS after it, MiB (median)",
            ],
            &rows,
        );
    }

    fn transport_lever(&self, out: &mut String, transport: &TransportReport) {
        let _ = writeln!(
            out,
            "### (b) Stripe connections: keep-alive\n\nasync-stripe's own client opens a new \
             connection for every call (`pool_max_idle_per_host(0)`, no `TCP_NODELAY`); the \
             functions use `shared/src/stripe/transport.rs` instead, a pooled hyper client \
             with `TCP_NODELAY`. In the functions (warm, plain HTTP to the emulator), Stripe \
             calls and new TCP connections per invocation:\n"
        );
        let mut rows = Vec::new();
        for f in &self.functions {
            for kind in &f.arm.warm.kinds {
                let stripe = CallProfile::of(&kind.stripe);
                if stripe.usual_total == 0 && stripe.others == 0 {
                    continue;
                }
                rows.push(vec![
                    f.arm.label.clone(),
                    kind.name.clone(),
                    stripe.summary(),
                    spread(&kind.stripe_connections),
                ]);
            }
        }
        table(
            out,
            &["function", "kind", "Stripe calls", "new TCP connections"],
            &rows,
        );
        let _ = writeln!(
            out,
            "The same create-customer call (`POST /v1/customers`) from the bench process, \
             sequentially, through a relay that counts connections; TLS is rustls + aws-lc-rs (as \
             async-stripe uses them) with an ECDSA P-256 certificate; the added round trip is \
             simulated in the relay (half each way, plus one for the TCP handshake of a new \
             connection).\n"
        );
        if let Some(note) = &transport.tls_note {
            let _ = writeln!(out, "TLS runs skipped: {note}\n");
        }
        let mut rows = Vec::new();
        for run in &transport.runs {
            rows.push(vec![
                run.transport.label().to_owned(),
                if run.tls { "TLS" } else { "HTTP" }.to_owned(),
                format!("{} ms", run.rtt.as_millis()),
                run.latency.n.to_string(),
                ms(run.latency.p50),
                ms(run.latency.p99),
                format!("{:.2}", run.connections_per_call),
            ]);
        }
        table(
            out,
            &[
                "client",
                "transport",
                "added RTT",
                "n",
                "p50 ms",
                "p99 ms",
                "connections / call",
            ],
            &rows,
        );
        let p50 = |t: Transport, tls: bool, rtt: Duration| {
            transport
                .runs
                .iter()
                .find(|r| r.transport == t && r.tls == tls && r.rtt == rtt)
                .map(|r| r.latency.p50.as_secs_f64() * 1000.0)
        };
        let [shipped, nodelay, kept] = Transport::HYPER;
        let mut savings = Vec::new();
        for run in transport.runs.iter().filter(|r| r.transport == shipped) {
            let (tls, rtt) = (run.tls, run.rtt);
            if let (Some(a), Some(b), Some(c)) = (
                p50(shipped, tls, rtt),
                p50(nodelay, tls, rtt),
                p50(kept, tls, rtt),
            ) {
                savings.push(format!(
                    "{} at +{} ms RTT: {} ms per call ({} of it from TCP_NODELAY alone)",
                    if tls { "TLS" } else { "HTTP" },
                    rtt.as_millis(),
                    millis_delta(a - c),
                    millis_delta(a - b)
                ));
            }
        }
        if !savings.is_empty() {
            let _ = writeln!(
                out,
                "Saved per Stripe call (p50) by keep-alive with TCP_NODELAY, against \
                 async-stripe's settings: {}.\n",
                savings.join("; ")
            );
        }
    }
}

/// A difference of two medians, without a `-0.00` for noise.
fn millis_delta(ms: f64) -> String {
    if ms.abs() < 0.005 {
        "0.00".to_owned()
    } else {
        format!("{ms:.2}")
    }
}

fn kind_row(label: &str, kind: &KindRun) -> Vec<String> {
    let l = Latency::of(&kind.latencies);
    let stat = |f: fn(&Latency) -> Duration| l.as_ref().map_or("n/a".to_owned(), |l| ms(f(l)));
    vec![
        label.to_owned(),
        kind.name.clone(),
        kind.latencies.len().to_string(),
        stat(|l| l.p50),
        stat(|l| l.p90),
        stat(|l| l.p99),
        CallProfile::of(&kind.dynamo).summary(),
        CallProfile::of(&kind.stripe).summary(),
        spread(&kind.stripe_connections),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_spreads_read_as_intended() {
        assert_eq!(check(1.234, 1.5, 2), "1.23 ✓");
        assert_eq!(check(1.6, 1.5, 1), "1.6 ✗");
        assert_eq!(spread(&[2, 2, 2]), "2");
        assert_eq!(spread(&[1, 2, 2, 3]), "mean 2.00 (1–3)");
        assert_eq!(spread(&[]), "n/a");
        assert_eq!(millis_delta(-0.001), "0.00");
        assert_eq!(millis_delta(-0.07), "-0.07");
    }

    #[test]
    fn tables_are_markdown() {
        let mut out = String::new();
        table(&mut out, &["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(out, "| a | b |\n|---|---|\n| 1 | 2 |\n\n");
    }
}
