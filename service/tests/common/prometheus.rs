//! Reading Prometheus' text format, as a recorder renders it or an
//! endpoint serves it.

use std::collections::BTreeMap;

/// One sample: its name, labels and value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of a scrape.
pub struct Scrape(Vec<Sample>);

impl Scrape {
    /// The samples of `text` (label values hold no escaped quotes here).
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').unwrap();
                    let labels = inner
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once("=\"").unwrap();
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
                None => (series.to_owned(), BTreeMap::new()),
            };
            samples.push(Sample {
                name,
                labels,
                value: value.parse().unwrap(),
            });
        }
        Scrape(samples)
    }

    /// Every sample.
    pub fn samples(&self) -> &[Sample] {
        &self.0
    }

    /// The value of `name` with exactly `labels` (0 when absent).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.0
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
            .sum()
    }

    /// The sum of `name` over every label set.
    pub fn total(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }
}
