//! Scrapes of an app's Prometheus metrics (`GET /metrics`, text format):
//! every sample by its series (`name{label="value",…}`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::journal::{Micros, now_micros};

/// One scrape of one instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scrape {
    /// When it was read.
    pub t: Micros,
    /// The instance.
    pub instance: String,
    /// Every sample, by series, labels as exported.
    pub samples: BTreeMap<String, f64>,
}

impl Scrape {
    /// The sum of the samples of metric `name` whose labels hold every
    /// `key="value"` of `labels` (0 if none).
    #[must_use]
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(series, _)| {
                let (metric, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
                metric == name
                    && labels
                        .iter()
                        .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// [`sum`](Self::sum), as a count.
    #[must_use]
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let sum = self.sum(name, labels);
        if sum.is_finite() && sum > 0.0 {
            sum.round() as u64
        } else {
            0
        }
    }
}

/// Parses Prometheus text: comments and blank lines skipped, each sample
/// `series value [timestamp]`.
#[must_use]
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The series may hold spaces inside label values: split at the
        // closing brace when there is one.
        let (series, rest) = match line.rfind('}') {
            Some(end) => (&line[..=end], line[end + 1..].trim()),
            None => match line.split_once(' ') {
                Some((s, r)) => (s, r.trim()),
                None => continue,
            },
        };
        let value = rest.split_whitespace().next().unwrap_or("");
        if let Ok(v) = value.parse::<f64>() {
            samples.insert(series.to_owned(), v);
        }
    }
    samples
}

/// Reads `http://addr/metrics` of `instance`.
///
/// # Errors
/// No answer, or not a 200.
pub fn scrape(instance: &str, addr: SocketAddr) -> Result<Scrape, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut answer = agent
        .get(&format!("http://{addr}/metrics"))
        .call()
        .map_err(|e| format!("scrape {instance}: {e}"))?;
    if answer.status() != 200 {
        return Err(format!("scrape {instance}: {}", answer.status()));
    }
    let text = answer
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| format!("scrape {instance}: {e}"))?;
    Ok(Scrape {
        t: now_micros(),
        instance: instance.to_owned(),
        samples: parse(&text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_series_with_labels_and_sums_by_label() {
        let text = "# HELP hoopai_webhooks_total x\n# TYPE hoopai_webhooks_total counter\n\
                    hoopai_webhooks_total{verdict=\"accepted\"} 7\n\
                    hoopai_webhooks_total{verdict=\"replay\"} 2\n\
                    hoopai_requests_in_flight 3\n";
        let s = Scrape {
            t: 0,
            instance: "w1.0".into(),
            samples: parse(text),
        };
        assert_eq!(
            s.count("hoopai_webhooks_total", &[("verdict", "accepted")]),
            7
        );
        assert_eq!(s.count("hoopai_webhooks_total", &[]), 9);
        assert_eq!(s.count("hoopai_requests_in_flight", &[]), 3);
        assert_eq!(s.count("hoopai_missing", &[]), 0);
    }
}
