//! `billstack-bench`: runs every function's release binary the way Lambda runs it (a Runtime
//! API on loopback, Lambda's environment), against DynamoDB Local and the Stripe emulator,
//! beside a bare `lambda_http` hello function and a raw SDK GetItem, and writes the DESIGN.md
//! §6 ratios to `BENCHMARKS.md`. See docs/benchmarks.md.

mod bench;
mod proxy;
mod report;
mod runtime_api;
mod spec;
mod stack;
mod stats;
mod stripe_transport;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use bench::{Arm, Bench, ColdStart, Counts, WarmRun};
use report::{ArmResult, FunctionResult, Machine, Report, Zip};
use spec::{FunctionSpec, Kind, Spec, Step};
use stack::Stack;

/// Where distributions keep their CA bundle (Debian/Ubuntu, Amazon Linux/Fedora, Alpine).
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

const USAGE: &str = "usage: cargo run --release -p billstack-bench -- [options]

  --spec PATH          functions and their event mixes (default: tools/bench/functions.json)
  --functions A,B      only these functions of the spec (default: every one in the checkout)
  --cold-starts N      cold starts per binary (default 20)
  --invocations N      measured warm invocations per kind (default 200)
  --warmup N           unmeasured warm invocations per kind first (default 50)
  --memory MB          AWS_LAMBDA_FUNCTION_MEMORY_SIZE given to the functions (default 128)
  --lever-calls N      calls per Stripe transport in lever (b) (default 100)
  --stripe-rtt-ms N    round trip added in lever (b)'s second series; 0 = none (default 10)
  --env NAME=VALUE     set this in every function's environment (repeatable), e.g. to try
                       a setting such as AUTH_CACHE_TTL_SECONDS=0 on every arm
  --no-levers          measure the functions and baselines only
  --no-build           use the binaries already in target/ instead of building them
  --output PATH        where the report goes (default: BENCHMARKS.md at the workspace root;
                       - prints it only)";

#[derive(Debug, Clone)]
struct Options {
    spec: PathBuf,
    functions: Option<Vec<String>>,
    cold_starts: usize,
    counts: Counts,
    lever_calls: usize,
    stripe_rtt: Duration,
    env: Vec<(String, String)>,
    levers: bool,
    build: bool,
    output: Option<PathBuf>,
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn parse_args(args: &[String], root: &Path) -> Result<Options, String> {
    let mut options = Options {
        spec: root.join("tools/bench/functions.json"),
        functions: None,
        cold_starts: 20,
        counts: Counts {
            invocations: 200,
            warmup: 50,
            memory_mb: 128,
        },
        lever_calls: 100,
        stripe_rtt: Duration::from_millis(10),
        env: Vec::new(),
        levers: true,
        build: true,
        output: Some(root.join("BENCHMARKS.md")),
    };
    use lexopt::Arg::{Long, Short};
    use lexopt::ValueExt;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let flag = match arg {
            Short('h') | Long("help") => return Err(String::new()),
            Long(flag) => format!("--{flag}"),
            other => return Err(other.unexpected().to_string()),
        };
        let mut value = || -> Result<String, String> {
            parser
                .value()
                .and_then(|v| v.string())
                .map_err(|e| e.to_string())
        };
        let number = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag} takes a whole number, not {v:?}"))
        };
        match flag.as_str() {
            "--spec" => options.spec = PathBuf::from(value()?),
            "--functions" => {
                options.functions = Some(value()?.split(',').map(|s| s.trim().to_owned()).collect())
            }
            "--cold-starts" => options.cold_starts = number(value()?)?.max(1),
            "--invocations" => options.counts.invocations = number(value()?)?.max(1),
            "--warmup" => options.counts.warmup = number(value()?)?,
            "--memory" => {
                options.counts.memory_mb = u32::try_from(number(value()?)?)
                    .map_err(|_| "--memory is too large".to_owned())?
            }
            "--lever-calls" => options.lever_calls = number(value()?)?.max(1),
            "--stripe-rtt-ms" => {
                options.stripe_rtt = Duration::from_millis(number(value()?)? as u64)
            }
            "--env" => {
                let v = value()?;
                let (name, value) = v
                    .split_once('=')
                    .filter(|(name, _)| !name.is_empty())
                    .ok_or_else(|| format!("--env takes NAME=VALUE, not {v:?}"))?;
                options.env.push((name.to_owned(), value.to_owned()));
            }
            "--no-levers" => options.levers = false,
            "--no-build" => options.build = false,
            "--output" => {
                let v = value()?;
                options.output = (v != "-").then(|| PathBuf::from(v));
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

/// `cargo build --release` with `args`, output shown as it comes.
fn cargo_build(root: &Path, args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("$ cargo build --release {}", args.join(" "));
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release"])
        .args(args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build --release {} failed", args.join(" ")))
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .current_dir(root)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn commit(root: &Path) -> String {
    let Some(head) = git(root, &["rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_owned();
    };
    match git(root, &["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if !changes.is_empty() => format!("{head} plus uncommitted changes"),
        _ => head,
    }
}

/// The baseline's one kind: any request, answered 200 "hello".
fn hello_kind() -> Kind {
    Kind {
        name: "hello".to_owned(),
        step: Step {
            method: "GET".to_owned(),
            path: "/hello".to_owned(),
            query: None,
            body: None,
            expect: 200,
            capture: Default::default(),
            session: false,
            stripe_event: false,
        },
        raw_get_item: None,
        cold: true,
    }
}

/// An arm, its kinds, and what was measured of it.
struct Plan {
    arm: Arm,
    setup: Vec<Step>,
    kinds: Vec<Kind>,
    warm: Option<WarmRun>,
    cold: Vec<ColdStart>,
}

impl Plan {
    fn new(arm: Arm, setup: Vec<Step>, kinds: Vec<Kind>) -> Plan {
        Plan {
            arm,
            setup,
            kinds,
            warm: None,
            cold: Vec::new(),
        }
    }

    /// An arm measured on cold starts only.
    fn cold_only(arm: Arm, cold_kind: Option<Kind>) -> Plan {
        Plan::new(arm, Vec::new(), cold_kind.into_iter().collect())
    }

    fn cold_kind(&self) -> Option<&Kind> {
        self.kinds.iter().find(|k| k.cold)
    }

    fn result(self) -> ArmResult {
        ArmResult {
            cold_kind: self.cold_kind().map(|k| k.name.clone()),
            label: self.arm.label,
            warm: self.warm.unwrap_or(WarmRun {
                kinds: Vec::new(),
                memory: Default::default(),
            }),
            cold: self.cold,
        }
    }
}

/// Warm runs of `plans` side by side, with the first one's setup and kinds.
async fn warm_together(
    bench: &mut Bench<'_>,
    plans: &mut [Plan],
    vars: &mut spec::Vars,
) -> Result<(), String> {
    let Some(first) = plans.first() else {
        return Ok(());
    };
    let arms: Vec<&Arm> = plans.iter().map(|p| &p.arm).collect();
    let runs = bench.warm(&arms, &first.setup, &first.kinds, vars).await?;
    for (plan, run) in plans.iter_mut().zip(runs) {
        plan.warm = Some(run);
    }
    Ok(())
}

async fn run(options: &Options, root: &Path, command: String) -> Result<Report, String> {
    let target = target_dir(root);
    let spec = Spec::load(&options.spec)?;
    let mut skipped = Vec::new();
    let mut functions: Vec<FunctionSpec> = Vec::new();
    for function in spec.functions {
        if let Some(only) = &options.functions
            && !only.contains(&function.name)
        {
            continue;
        }
        if root.join(&function.dir).join("Cargo.toml").is_file() {
            functions.push(function);
        } else {
            skipped.push(format!(
                "{} ({} is not in this checkout)",
                function.name, function.dir
            ));
        }
    }
    if let Some(only) = &options.functions {
        for name in only {
            if !functions.iter().any(|f| &f.name == name)
                && !skipped.iter().any(|s| s.starts_with(name.as_str()))
            {
                return Err(format!("{name} is not in {}", options.spec.display()));
            }
        }
    }
    let customers = functions.iter().find(|f| f.name == "customers").cloned();
    let levers = options.levers && customers.is_some();

    if options.build {
        for function in &functions {
            cargo_build(root, &["-p", &function.package])?;
        }
        cargo_build(root, &["-p", "hello"])?;
        if levers {
            cargo_build(
                root,
                &[
                    "-p",
                    "billstack-bench",
                    "--bin",
                    "customers-current-thread",
                    "--bin",
                    "customers-multi-thread",
                    "--bin",
                    "customers-native-roots",
                ],
            )?;
        }
    }
    let release = target.join("release");
    let binary = |name: &str| -> Result<PathBuf, String> {
        let path = release.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{} is not built (run without --no-build)",
                path.display()
            ))
        }
    };

    let load_start = report::load_average();
    let measuring = Instant::now();
    eprintln!("starting DynamoDB Local, the proxies and the Stripe emulator");
    let stack = Stack::start().await?;
    let env = stack.function_env();
    let logs = target.join("bench").join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    eprintln!("function logs: {}", logs.display());

    let arm = |label: &str, name: &str, bin: PathBuf, extra: &[(&str, &str)]| Arm {
        label: label.to_owned(),
        function_name: name.to_owned(),
        binary: bin,
        env: env
            .iter()
            .chain(&options.env)
            .cloned()
            .chain(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            )
            .collect(),
    };
    let mut plans = Vec::new();
    for f in &functions {
        plans.push(Plan::new(
            arm(&f.name, &f.name, binary(&f.binary)?, &[]),
            f.setup.clone(),
            f.kinds.clone(),
        ));
    }
    plans.push(Plan::new(
        // The bare baseline gets Lambda's variables only.
        Arm {
            env: Vec::new(),
            ..arm("hello", "hello", binary("hello")?, &[])
        },
        Vec::new(),
        vec![hello_kind()],
    ));
    let mut auth_plans = Vec::new();
    let mut flavour_plans = Vec::new();
    let mut root_plans = Vec::new();
    if let (true, Some(customers)) = (levers, &customers) {
        let get: Vec<Kind> = customers
            .kinds
            .iter()
            .filter(|k| k.raw_get_item.is_some())
            .cloned()
            .collect();
        for (label, ttl) in [
            ("customers (AUTH_CACHE_TTL_SECONDS default: 30)", None),
            ("customers (AUTH_CACHE_TTL_SECONDS=0)", Some("0")),
        ] {
            let extra: Vec<(&str, &str)> = ttl
                .map(|t| ("AUTH_CACHE_TTL_SECONDS", t))
                .into_iter()
                .collect();
            auth_plans.push(Plan::new(
                arm(label, "customers", binary(&customers.binary)?, &extra),
                Vec::new(),
                get.clone(),
            ));
        }
        let kinds: Vec<Kind> = customers
            .kinds
            .iter()
            .filter(|k| k.raw_get_item.is_some() || k.name == "create")
            .cloned()
            .collect();
        for (label, bin) in [
            ("customers, current_thread", "customers-current-thread"),
            ("customers, multi_thread", "customers-multi-thread"),
        ] {
            flavour_plans.push(Plan::new(
                arm(label, "customers", binary(bin)?, &[]),
                Vec::new(),
                kinds.clone(),
            ));
        }
        // Lever (d): the AWS settings and root store. The shipped function reads its region
        // and credentials from Lambda's variables and trusts the five Amazon Trust Services
        // roots; `customers-native-roots` runs the default provider chains and the SDK's
        // default HTTPS client, which loads the machine's roots (rustls-native-certs:
        // SSL_CERT_FILE/SSL_CERT_DIR, else the file and the folder openssl would use), once
        // as found here and once with a single bundle, as on Lambda's AL2023 image.
        let cold_kind = customers.kinds.iter().find(|k| k.cold).cloned();
        let before = binary("customers-native-roots")?;
        root_plans.push(Plan::cold_only(
            arm(
                "customers before: provider chains, native roots (bundle and folder)",
                "customers",
                before.clone(),
                &[],
            ),
            cold_kind.clone(),
        ));
        if let Some(bundle) = SYSTEM_BUNDLES.iter().find(|p| Path::new(p).is_file()) {
            root_plans.push(Plan::cold_only(
                arm(
                    &format!("customers before, SSL_CERT_FILE={bundle} only"),
                    "customers",
                    before,
                    &[("SSL_CERT_FILE", bundle)],
                ),
                cold_kind,
            ));
        }
    }

    let mut bench = Bench::new(&stack, options.counts, logs.clone());
    let mut vars = stack.vars();
    eprintln!("warm runs");
    for plan in plans.iter_mut() {
        warm_together(&mut bench, std::slice::from_mut(plan), &mut vars).await?;
    }
    warm_together(&mut bench, &mut auth_plans, &mut vars).await?;
    warm_together(&mut bench, &mut flavour_plans, &mut vars).await?;

    eprintln!("cold starts: {} rounds", options.cold_starts);
    for _ in 0..options.cold_starts {
        for plan in plans
            .iter_mut()
            .chain(flavour_plans.iter_mut())
            .chain(root_plans.iter_mut())
        {
            let kind = plan.cold_kind().cloned();
            let sample = bench.cold(&plan.arm, kind.as_ref(), &mut vars).await?;
            plan.cold.push(sample);
        }
    }
    let transport = if levers {
        eprintln!("lever (b): Stripe transports");
        Some(
            stripe_transport::run(
                &stack.stripe,
                options.lever_calls,
                options.stripe_rtt,
                &target.join("bench").join("tls"),
            )
            .await?,
        )
    } else {
        None
    };

    let hello = plans.pop().ok_or("no hello result")?.result();
    let function_results = functions
        .iter()
        .zip(plans)
        .map(|(f, plan)| FunctionResult {
            arm: plan.result(),
            calls_stripe: f.calls_stripe,
            zip: Zip::measure(&target, &f.binary),
            binary_bytes: file_size(&release.join(&f.binary)),
        })
        .collect();
    Ok(Report {
        command,
        date: billstack::clock::rfc3339(billstack::clock::now_epoch()),
        commit: commit(root),
        machine: Machine::read(),
        counts: options.counts,
        cold_starts: options.cold_starts,
        hello,
        hello_zip: Zip::measure(&target, "hello"),
        hello_binary_bytes: file_size(&release.join("hello")),
        functions: function_results,
        skipped,
        auth_cache: auth_plans.into_iter().map(Plan::result).collect(),
        transport,
        flavours: flavour_plans.into_iter().map(Plan::result).collect(),
        roots: root_plans.into_iter().map(Plan::result).collect(),
        measuring: measuring.elapsed(),
        load: (load_start, report::load_average()),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let options = match parse_args(&args, &root) {
        Ok(options) => options,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("{message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut command = "cargo run --release -p billstack-bench".to_owned();
    if !args.is_empty() {
        command.push_str(" -- ");
        command.push_str(&args.join(" "));
    }
    match run(&options, &root, command).await {
        Ok(report) => {
            let text = report.markdown();
            println!("{text}");
            if let Some(path) = &options.output {
                if let Err(e) = std::fs::write(path, &text) {
                    eprintln!("cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                eprintln!("written to {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("billstack-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
