//! Reading Prometheus text exposition (what `/metrics` serves) and the arithmetic the benchmarks
//! do on it: sums over label sets, differences between two scrapes, and quantiles from histogram
//! buckets the way PromQL's `histogram_quantile` computes them. Pure.
use std::collections::BTreeMap;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// `l1="v1",l2="v2"` up to the closing brace; returns the labels and the rest after `}`.
fn parse_labels(text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (name, after) = rest.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(name.trim().to_owned(), value);
        rest = &after[1 + end + 1..];
    }
}

/// The samples of an exposition; comments, blank and malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            let (labels, rest) = match line[name_end..].strip_prefix('{') {
                Some(after) => parse_labels(after)?,
                None => (BTreeMap::new(), &line[name_end..]),
            };
            // An optional timestamp may follow the value.
            let value = parse_value(rest.split_whitespace().next()?)?;
            Some(Sample {
                name: name.to_owned(),
                labels,
                value,
            })
        })
        .collect()
}

/// One scrape of a `/metrics` endpoint.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        Self {
            samples: parse(text),
        }
    }

    /// Sum of the series of `name` whose labels satisfy `keep`.
    pub fn sum(&self, name: &str, keep: impl Fn(&BTreeMap<String, String>) -> bool) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && keep(&s.labels))
            .map(|s| s.value)
            .sum()
    }

    /// Sum of every series of `name`.
    pub fn total(&self, name: &str) -> f64 {
        self.sum(name, |_| true)
    }

    /// The cumulative buckets of histogram `name` (`name_bucket`), summed over all other labels,
    /// ordered by upper bound (`+Inf` last).
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let series = format!("{name}_bucket");
        let mut by_bound: Vec<(f64, f64)> = Vec::new();
        for s in self.samples.iter().filter(|s| s.name == series) {
            let Some(le) = s.labels.get("le").and_then(|le| parse_value(le)) else {
                continue;
            };
            match by_bound.iter_mut().find(|(b, _)| *b == le) {
                Some((_, count)) => *count += s.value,
                None => by_bound.push((le, s.value)),
            }
        }
        by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
        by_bound
    }
}

/// Per-bucket increase from `before` to `after` (a bucket missing before counts from zero).
pub fn bucket_increase(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|(le, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| b == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, (count - earlier).max(0.0))
        })
        .collect()
}

/// The `q`-quantile (0 ≤ q ≤ 1) of cumulative histogram buckets, as PromQL's
/// `histogram_quantile`: find the bucket holding rank `q × count` and interpolate linearly within
/// it (from 0 for the first bucket). A rank in the `+Inf` bucket yields the highest finite bound.
/// `None` without observations or without a `+Inf` bucket.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let &(last_bound, total) = buckets.last()?;
    if last_bound != f64::INFINITY || total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total;
    let index = buckets.iter().position(|(_, count)| *count >= rank)?;
    let (upper, count) = buckets[index];
    if upper == f64::INFINITY {
        return Some(if index == 0 {
            0.0
        } else {
            buckets[index - 1].0
        });
    }
    let (lower, below) = if index == 0 {
        (0.0, 0.0)
    } else {
        buckets[index - 1]
    };
    if count == below {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below) / (count - below))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP fp_operator_reconcile_duration_seconds Time of one reconcile
# TYPE fp_operator_reconcile_duration_seconds histogram
fp_operator_reconcile_duration_seconds_bucket{result="success",le="0.1"} 2
fp_operator_reconcile_duration_seconds_bucket{result="success",le="0.5"} 6
fp_operator_reconcile_duration_seconds_bucket{result="success",le="+Inf"} 8
fp_operator_reconcile_duration_seconds_bucket{result="error",le="0.1"} 0
fp_operator_reconcile_duration_seconds_bucket{result="error",le="0.5"} 1
fp_operator_reconcile_duration_seconds_bucket{result="error",le="+Inf"} 2
fp_operator_reconcile_duration_seconds_sum{result="success"} 1.5
fp_operator_kube_requests_total{resource="pods",verb="list"} 7
fp_operator_kube_requests_total{resource="leases",verb="update"} 3
odd{path="a \"quoted\", with\\backslash"} 1e3 1700000000000
fp_operator_leader 1
garbage line without value
"#;

    #[test]
    fn parses_names_labels_values_and_skips_the_rest() {
        let samples = parse(TEXT);
        assert_eq!(samples.len(), 11);
        let odd = samples.iter().find(|s| s.name == "odd").unwrap();
        assert_eq!(odd.labels["path"], "a \"quoted\", with\\backslash");
        assert_eq!(odd.value, 1000.0);
        let leader = samples
            .iter()
            .find(|s| s.name == "fp_operator_leader")
            .unwrap();
        assert!(leader.labels.is_empty());
        assert_eq!(leader.value, 1.0);
    }

    #[test]
    fn sums_and_buckets_across_labels() {
        let scrape = Scrape::parse(TEXT);
        assert_eq!(scrape.total("fp_operator_kube_requests_total"), 10.0);
        assert_eq!(
            scrape.sum("fp_operator_kube_requests_total", |l| l["verb"] == "update"),
            3.0
        );
        assert_eq!(
            scrape.buckets("fp_operator_reconcile_duration_seconds"),
            vec![(0.1, 2.0), (0.5, 7.0), (f64::INFINITY, 10.0)]
        );
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        let buckets = [(0.1, 2.0), (0.5, 7.0), (f64::INFINITY, 10.0)];
        // Rank 5 of 10 lies in (0.1, 0.5]: 3 of its 5 observations → 0.1 + 0.4 × 3/5.
        let p50 = histogram_quantile(0.5, &buckets).unwrap();
        assert!((p50 - 0.34).abs() < 1e-9, "{p50}");
        // Rank 1 of 10 in the first bucket, interpolated from 0.
        let p10 = histogram_quantile(0.1, &buckets).unwrap();
        assert!((p10 - 0.05).abs() < 1e-9, "{p10}");
        // Rank 9.9 is in +Inf: the highest finite bound.
        assert_eq!(histogram_quantile(0.99, &buckets), Some(0.5));
        assert_eq!(
            histogram_quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]),
            None
        );
        assert_eq!(
            histogram_quantile(0.5, &[(0.1, 3.0)]),
            None,
            "no +Inf bucket"
        );
        assert_eq!(histogram_quantile(1.5, &buckets), None);
    }

    #[test]
    fn increases_between_scrapes() {
        let before = [(0.1, 2.0), (0.5, 3.0), (f64::INFINITY, 4.0)];
        let after = [(0.05, 1.0), (0.1, 5.0), (0.5, 9.0), (f64::INFINITY, 10.0)];
        assert_eq!(
            bucket_increase(&before, &after),
            vec![(0.05, 1.0), (0.1, 3.0), (0.5, 6.0), (f64::INFINITY, 6.0)]
        );
    }
}
