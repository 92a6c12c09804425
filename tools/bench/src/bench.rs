//! The measurements: warm invocations per kind (with their DynamoDB and Stripe requests and
//! the raw GetItem baseline interleaved), cold starts, peak RSS.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use crate::runtime_api::Memory;
use crate::runtime_api::{FunctionProcess, RuntimeApi, lambda_env};
use crate::spec::{Kind, Step, Vars, apigw_v2_event, fill, parse_apigw_v2_response};
use crate::stack::Stack;
use crate::stats::{Calls, diff};

/// One binary with one environment: a function, the hello baseline or a lever's variant.
#[derive(Debug, Clone)]
pub struct Arm {
    pub label: String,
    pub function_name: String,
    pub binary: PathBuf,
    /// Our configuration and any lever's override, on top of Lambda's variables.
    pub env: Vec<(String, String)>,
}

/// Every invocation of one kind.
#[derive(Debug, Clone, Default)]
pub struct KindRun {
    pub name: String,
    pub latencies: Vec<Duration>,
    pub dynamo: Vec<Calls>,
    pub stripe: Vec<Calls>,
    /// TCP connections the Stripe relay accepted during each invocation.
    pub stripe_connections: Vec<u64>,
    /// The raw SDK GetItem of the same item, one call beside each invocation.
    pub raw_get_item: Vec<Duration>,
}

#[derive(Debug, Clone)]
pub struct WarmRun {
    pub kinds: Vec<KindRun>,
    /// After every warm invocation.
    pub memory: Memory,
}

#[derive(Debug, Clone)]
pub struct ColdStart {
    /// Process spawn to its first `invocation/next`.
    pub init: Duration,
    /// The cold kind's first invocation, if the arm has one.
    pub first: Option<Duration>,
    pub first_dynamo: Calls,
    /// VmHWM after the first invocation (after init when there is none), bytes.
    pub peak_rss: u64,
}

/// How many invocations and of what, shared by every arm of a run.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub invocations: usize,
    pub warmup: usize,
    pub memory_mb: u32,
}

pub struct Bench<'a> {
    pub stack: &'a Stack,
    pub counts: Counts,
    pub logs: PathBuf,
    /// Makes `{n}` unique across the whole run.
    next_n: u64,
}

struct Started {
    api: RuntimeApi,
    process: FunctionProcess,
    init: Duration,
}

impl<'a> Bench<'a> {
    pub fn new(stack: &'a Stack, counts: Counts, logs: PathBuf) -> Bench<'a> {
        Bench {
            stack,
            counts,
            logs,
            next_n: 0,
        }
    }

    async fn start(&self, arm: &Arm) -> Result<Started, String> {
        let api = RuntimeApi::start(&arm.function_name).await?;
        let mut env = lambda_env(&arm.function_name, self.counts.memory_mb);
        env.extend(arm.env.iter().cloned());
        let log = self.logs.join(format!("{}.log", file_name(&arm.label)));
        let (mut process, spawned) =
            FunctionProcess::spawn(&arm.label, &arm.binary, &env, &api, &log)?;
        let ready = api.wait_init(&mut process).await?;
        Ok(Started {
            api,
            process,
            init: ready - spawned,
        })
    }

    fn event(&mut self, step: &Step, vars: &mut Vars) -> Result<Bytes, String> {
        self.next_n += 1;
        vars.insert("n".to_owned(), self.next_n.to_string());
        // A Stripe event's time, newer with every invocation (and than any write of ours).
        vars.insert(
            "event_created".to_owned(),
            (4_102_444_800 + self.next_n).to_string(),
        );
        let request = step.request(vars, &self.stack.credentials)?;
        Ok(Bytes::from(
            apigw_v2_event(&request, self.next_n).to_string(),
        ))
    }

    /// One invocation, checked against the step's expected status (captures go to `vars`).
    async fn invoke(
        &mut self,
        started: &Started,
        step: &Step,
        vars: &mut Vars,
    ) -> Result<Duration, String> {
        let event = self.event(step, vars)?;
        let (latency, raw) = started.api.invoke(&started.process, event).await?;
        step.check(&parse_apigw_v2_response(&raw)?, vars)
            .map_err(|e| format!("{}: {e}", started.process.label))?;
        Ok(latency)
    }

    /// Starts the arms, runs `setup` on the first, then each kind `warmup` times unmeasured
    /// and `invocations` times measured, the arms taking turns invocation by invocation
    /// (so a lever's variants see the same moment of the machine and of DynamoDB Local), and
    /// reads each one's peak RSS.
    pub async fn warm(
        &mut self,
        arms: &[&Arm],
        setup: &[Step],
        kinds: &[Kind],
        vars: &mut Vars,
    ) -> Result<Vec<WarmRun>, String> {
        let labels: Vec<&str> = arms.iter().map(|a| a.label.as_str()).collect();
        eprintln!("  warm: {}", labels.join(" | "));
        let mut started = Vec::new();
        for arm in arms {
            started.push(self.start(arm).await?);
        }
        let first = started.first().ok_or("no arm to run")?;
        for step in setup {
            self.invoke(first, step, vars).await?;
        }
        let mut runs: Vec<Vec<KindRun>> = vec![Vec::new(); arms.len()];
        for kind in kinds {
            let raw_key = match &kind.raw_get_item {
                Some(key) => Some((fill(&key.pk, vars)?, fill(&key.sk, vars)?)),
                None => None,
            };
            let mut kind_runs = vec![
                KindRun {
                    name: kind.name.clone(),
                    ..KindRun::default()
                };
                arms.len()
            ];
            for i in 0..self.counts.warmup + self.counts.invocations {
                let measured = i >= self.counts.warmup;
                for (process, run) in started.iter().zip(kind_runs.iter_mut()) {
                    let dynamo_before = self.stack.dynamo_calls();
                    let stripe_before = self.stack.stripe_calls();
                    let connections_before = self.stack.stripe_relay.accepted();
                    let latency = self.invoke(process, &kind.step, vars).await?;
                    if measured {
                        run.latencies.push(latency);
                        run.dynamo
                            .push(diff(&dynamo_before, &self.stack.dynamo_calls()));
                        run.stripe
                            .push(diff(&stripe_before, &self.stack.stripe_calls()));
                        run.stripe_connections
                            .push(self.stack.stripe_relay.accepted() - connections_before);
                    }
                }
                // Interleaved, so drift in DynamoDB Local (its JIT, the machine) hits both alike.
                if let Some((pk, sk)) = &raw_key {
                    let at = std::time::Instant::now();
                    self.stack.raw_get_item(pk, sk).await?;
                    let elapsed = at.elapsed();
                    if measured {
                        for run in kind_runs.iter_mut() {
                            run.raw_get_item.push(elapsed);
                        }
                    }
                }
            }
            for (all, run) in runs.iter_mut().zip(kind_runs) {
                all.push(run);
            }
        }
        let mut results = Vec::new();
        for (process, kinds) in started.into_iter().zip(runs) {
            let memory = process.process.memory()?;
            process.process.stop().await;
            results.push(WarmRun { kinds, memory });
        }
        Ok(results)
    }

    /// One cold start: spawn, wait for the first poll, send the cold kind once, stop.
    pub async fn cold(
        &mut self,
        arm: &Arm,
        cold_kind: Option<&Kind>,
        vars: &mut Vars,
    ) -> Result<ColdStart, String> {
        let started = self.start(arm).await?;
        let mut first = None;
        let mut first_dynamo = Calls::new();
        if let Some(kind) = cold_kind {
            let before = self.stack.dynamo_calls();
            first = Some(self.invoke(&started, &kind.step, vars).await?);
            first_dynamo = diff(&before, &self.stack.dynamo_calls());
        }
        let init = started.init;
        let peak_rss = started.process.memory()?.peak;
        started.process.stop().await;
        Ok(ColdStart {
            init,
            first,
            first_dynamo,
            peak_rss,
        })
    }
}

/// `customers (AUTH_CACHE_TTL_SECONDS=0)` → `customers-AUTH_CACHE_TTL_SECONDS-0`.
fn file_name(label: &str) -> String {
    let mut name = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    name.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn log_file_names_are_plain() {
        assert_eq!(
            file_name("customers (AUTH_CACHE_TTL_SECONDS=0)"),
            "customers-AUTH_CACHE_TTL_SECONDS-0"
        );
        assert_eq!(file_name("hello"), "hello");
    }
}
