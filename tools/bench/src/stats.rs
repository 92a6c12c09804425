//! Percentiles of latency samples and the shape of per-invocation request counts.

use std::collections::BTreeMap;
use std::time::Duration;

/// The nearest-rank percentile (`p` in 0..=100) of `samples`; `None` when there are none.
pub fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50, p90 and p99 of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub n: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
}

impl Latency {
    pub fn of(samples: &[Duration]) -> Option<Latency> {
        Some(Latency {
            n: samples.len(),
            p50: percentile(samples, 50.0)?,
            p90: percentile(samples, 90.0)?,
            p99: percentile(samples, 99.0)?,
        })
    }
}

/// Requests of one invocation, by operation (`GetItem`, `POST /v1/customers`, ...).
pub type Calls = BTreeMap<String, u64>;

/// `after - before`, keeping only what changed.
pub fn diff(before: &Calls, after: &Calls) -> Calls {
    after
        .iter()
        .filter_map(|(op, n)| {
            let delta = n.saturating_sub(before.get(op).copied().unwrap_or(0));
            (delta > 0).then(|| (op.clone(), delta))
        })
        .collect()
}

/// `GetItem` or `2× GetItem + Query`; `none` for no call.
pub fn describe(calls: &Calls) -> String {
    if calls.is_empty() {
        return "none".to_owned();
    }
    calls
        .iter()
        .map(|(op, n)| {
            if *n == 1 {
                op.clone()
            } else {
                format!("{n}× {op}")
            }
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// How the calls of many invocations of one kind were spread: the usual set, and how many
/// invocations made another.
#[derive(Debug, Clone, PartialEq)]
pub struct CallProfile {
    /// The most frequent set of calls and its total count.
    pub usual: Calls,
    pub usual_total: u64,
    /// Invocations whose calls differed from the usual set.
    pub others: usize,
    pub mean_total: f64,
    pub max_total: u64,
}

impl CallProfile {
    pub fn of(per_invocation: &[Calls]) -> CallProfile {
        let mut frequency: BTreeMap<&Calls, usize> = BTreeMap::new();
        for calls in per_invocation {
            *frequency.entry(calls).or_default() += 1;
        }
        let usual = frequency
            .iter()
            .max_by_key(|(_, count)| **count)
            .map(|(calls, _)| (*calls).clone())
            .unwrap_or_default();
        let totals: Vec<u64> = per_invocation.iter().map(|c| c.values().sum()).collect();
        let others = per_invocation.iter().filter(|c| **c != usual).count();
        CallProfile {
            usual_total: usual.values().sum(),
            usual,
            others,
            mean_total: if totals.is_empty() {
                0.0
            } else {
                totals.iter().sum::<u64>() as f64 / totals.len() as f64
            },
            max_total: totals.iter().copied().max().unwrap_or(0),
        }
    }

    /// `1 (GetItem)`, with the spread when not every invocation made the same calls.
    pub fn summary(&self) -> String {
        let mut text = format!("{} ({})", self.usual_total, describe(&self.usual));
        if self.others > 0 {
            text.push_str(&format!(
                "; {} other: mean {:.2}, max {}",
                self.others, self.mean_total, self.max_total
            ));
        }
        text
    }
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// `a / b`, two decimals.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        f64::INFINITY
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples = millis(&[5, 1, 4, 2, 3, 10, 9, 8, 7, 6]);
        assert_eq!(percentile(&samples, 50.0), Some(Duration::from_millis(5)));
        assert_eq!(percentile(&samples, 90.0), Some(Duration::from_millis(9)));
        assert_eq!(percentile(&samples, 99.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&samples, 100.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&samples, 0.0), Some(Duration::from_millis(1)));
        assert_eq!(
            percentile(&millis(&[7]), 99.0),
            Some(Duration::from_millis(7))
        );
        assert_eq!(percentile(&[], 50.0), None);

        let hundred: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(&hundred).unwrap();
        assert_eq!(
            (l.n, l.p50, l.p90, l.p99),
            (
                100,
                Duration::from_millis(50),
                Duration::from_millis(90),
                Duration::from_millis(99)
            )
        );
    }

    fn calls(pairs: &[(&str, u64)]) -> Calls {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn diffs_keep_only_what_changed() {
        let before = calls(&[("GetItem", 3), ("Query", 1)]);
        let after = calls(&[("GetItem", 4), ("Query", 1), ("PutItem", 2)]);
        assert_eq!(
            diff(&before, &after),
            calls(&[("GetItem", 1), ("PutItem", 2)])
        );
        assert_eq!(describe(&diff(&after, &after)), "none");
        assert_eq!(
            describe(&calls(&[("GetItem", 2), ("Query", 1)])),
            "2× GetItem + Query"
        );
    }

    #[test]
    fn call_profiles_name_the_usual_set_and_the_spread() {
        let get = calls(&[("GetItem", 1)]);
        let cold = calls(&[("GetItem", 3)]);
        let profile = CallProfile::of(&[get.clone(), get.clone(), cold, get]);
        assert_eq!(profile.usual_total, 1);
        assert_eq!(profile.others, 1);
        assert_eq!(profile.max_total, 3);
        assert_eq!(profile.summary(), "1 (GetItem); 1 other: mean 1.50, max 3");

        let none = CallProfile::of(&[Calls::new(), Calls::new()]);
        assert_eq!(none.summary(), "0 (none)");
    }
}
