//! A client of the real hub's HTTP API (SPEC §7), synchronous (`ureq`) so test bodies stay
//! plain: raw GET/POST, the reads the system tests assert through (events of a (gateway,
//! class), devices, gateways' liveness, alerts) and `/metrics` samples (duplicates, drops).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde_json::Value;

/// A client of the hub's HTTP API.
#[derive(Clone)]
pub struct HubApi {
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
}

impl HubApi {
    /// For `http://host:port`.
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        HubApi {
            base: base.into(),
            agent,
            token: None,
        }
    }

    /// The same API with a bearer token.
    pub fn with_token(&self, token: &str) -> Self {
        HubApi {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// `GET path` → (status, JSON body or Null).
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.call()?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string()?;
        Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// `GET path` → the body as text (200 only).
    pub fn text(&self, path: &str) -> anyhow::Result<String> {
        let mut resp = self.agent.get(format!("{}{path}", self.base)).call()?;
        anyhow::ensure!(
            resp.status().as_u16() == 200,
            "GET {path}: {}",
            resp.status()
        );
        Ok(resp.body_mut().read_to_string()?)
    }

    /// `POST path` with a JSON body → (status, JSON body or Null).
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let mut req = self.agent.post(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.send_json(body)?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string()?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// `GET path` expecting 200 JSON.
    pub fn json(&self, path: &str) -> anyhow::Result<Value> {
        let (s, v) = self.get(path)?;
        anyhow::ensure!(s == 200, "GET {path}: {s} {v}");
        Ok(v)
    }

    /// Every stored event of (gw, class) in id order, paging through `/events` (`limit` per
    /// page; the loop is `outpost_proto::api::all_events`, shared with the demo).
    pub fn all_events(&self, gw: &str, class: &str, limit: usize) -> anyhow::Result<Vec<Value>> {
        outpost_proto::api::all_events(gw, class, limit, |path| self.json(path))
    }

    /// `GET /api/v1/gateways`: each gateway's `state`, `since`, `version`, `last_batch`,
    /// `stored` (events per class).
    pub fn gateways(&self) -> anyhow::Result<Vec<Value>> {
        Ok(array(self.json("/api/v1/gateways")?))
    }

    /// One gateway's entry of `/api/v1/gateways`; `None` before the hub heard of it.
    pub fn gateway(&self, gw: &str) -> anyhow::Result<Option<Value>> {
        Ok(self.gateways()?.into_iter().find(|g| g["gw"] == gw))
    }

    /// `GET /api/v1/devices/{dev}`: its latest state; `None` when the hub does not know it.
    pub fn device(&self, dev: &str) -> anyhow::Result<Option<Value>> {
        match self.get(&format!("/api/v1/devices/{dev}"))? {
            (200, v) => Ok(Some(v)),
            (404, _) => Ok(None),
            (s, v) => anyhow::bail!("GET /api/v1/devices/{dev}: {s} {v}"),
        }
    }

    /// `GET /api/v1/devices`.
    pub fn devices(&self) -> anyhow::Result<Vec<Value>> {
        Ok(array(self.json("/api/v1/devices")?))
    }

    /// `GET /api/v1/alerts`: every alert, newest first, each with its `gw`.
    pub fn alerts(&self) -> anyhow::Result<Vec<Value>> {
        Ok(array(self.json("/api/v1/alerts")?))
    }

    /// Every sample of a `/metrics` family (`name` with its `_total` for counters), as
    /// (labels, value): e.g. `outpost_hub_duplicates_total` → `[({"hub","class"}, 3.0)]`.
    pub fn metric(&self, name: &str) -> anyhow::Result<Vec<(BTreeMap<String, String>, f64)>> {
        Ok(parse_metric(&self.text("/metrics")?, name))
    }

    /// A `/metrics` family summed over its labels (0 when absent).
    pub fn metric_sum(&self, name: &str) -> anyhow::Result<f64> {
        Ok(self.metric(name)?.iter().map(|(_, v)| v).sum())
    }

    /// A `/metrics` family summed per value of `label` (e.g. drops by `reason`).
    pub fn metric_by(&self, name: &str, label: &str) -> anyhow::Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for (labels, v) in self.metric(name)? {
            let key = labels.get(label).cloned().unwrap_or_default();
            *out.entry(key).or_default() += v as u64;
        }
        Ok(out)
    }

    /// Events the hub found already stored (`outpost_hub_duplicates_total`, all classes): the
    /// "duplicates dropped at the hub" of a tally.
    pub fn duplicates(&self) -> anyhow::Result<u64> {
        Ok(self.metric_sum("outpost_hub_duplicates_total")? as u64)
    }

    /// Messages the hub refused, by reason (`outpost_hub_drops_total`): bad input.
    pub fn drops(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        self.metric_by("outpost_hub_drops_total", "reason")
    }

    /// Opens `/api/v1/stream`; calls `f` with each `data:` line until it returns false or
    /// `timeout` passes without a line.
    pub fn stream(&self, timeout: Duration, mut f: impl FnMut(&str) -> bool) -> anyhow::Result<()> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_recv_body(Some(timeout))
            .build()
            .into();
        let mut req = agent.get(format!("{}/api/v1/stream", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.call()?;
        let reader = BufReader::new(resp.body_mut().as_reader());
        for line in reader.lines() {
            let line = line?;
            if let Some(data) = line.strip_prefix("data:") {
                if !f(data.trim_start()) {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// A JSON array's items (empty for anything else).
fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        _ => Vec::new(),
    }
}

/// The samples of family `name` in a Prometheus/OpenMetrics text exposition.
pub fn parse_metric(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.rsplit_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue, // another family sharing the prefix
            },
        };
        let Ok(value) = value.split(' ').next().unwrap_or("").parse::<f64>() else {
            continue;
        };
        out.push((parse_labels(labels), value));
    }
    out
}

/// `a="x",b="y"` → {a: x, b: y} (values with `\"` escapes kept as written).
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((key, tail)) = rest.split_once("=\"") {
        let mut end = 0;
        let bytes = tail.as_bytes();
        while end < bytes.len() && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\')) {
            end += 1;
        }
        out.insert(
            key.trim_start_matches(',').trim().to_string(),
            tail[..end].to_string(),
        );
        rest = tail.get(end + 1..).unwrap_or("");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_samples_with_and_without_labels() {
        let text = "# TYPE outpost_hub_duplicates counter\n\
                    outpost_hub_duplicates_total{hub=\"h-1\",class=\"location\"} 3\n\
                    outpost_hub_duplicates_total{hub=\"h-1\",class=\"alert\"} 1\n\
                    outpost_hub_duplicates_totally 9\n\
                    outpost_hub_redis_up 1\n";
        let d = parse_metric(text, "outpost_hub_duplicates_total");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].0["class"], "location");
        assert_eq!(d[0].1, 3.0);
        assert_eq!(parse_metric(text, "outpost_hub_redis_up")[0].1, 1.0);
    }
}
