//! The CloudWatch Embedded Metric Format specification, as a check of one log line: what the
//! harness applies to every line the function writes that carries `_aws`, and to every request
//! line (which must carry it). Written from the specification, not from our writer, so that it
//! catches what CloudWatch would reject or silently drop.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The units EMF allows (`Unit` is optional; CloudWatch takes a missing one as `None`).
pub const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// One metric as CloudWatch would extract it from a line.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    pub namespace: String,
    pub name: String,
    pub unit: String,
    /// The dimension set: each dimension's name and value.
    pub dimensions: BTreeMap<String, String>,
    pub value: f64,
}

/// A line that passed: its metrics, one entry per (metric, dimension set).
#[derive(Debug, Clone)]
pub struct Document {
    pub timestamp_ms: u64,
    pub metrics: Vec<Extracted>,
}

impl Document {
    /// The value of metric `name` (the same in every dimension set it is published under).
    pub fn value(&self, name: &str) -> Option<f64> {
        let values: Vec<f64> = self
            .metrics
            .iter()
            .filter(|m| m.name == name)
            .map(|m| m.value)
            .collect();
        values.first().copied()
    }

    /// The dimension sets metric `name` is published under, each as its dimension names.
    pub fn dimension_sets(&self, name: &str) -> Vec<Vec<String>> {
        self.metrics
            .iter()
            .filter(|m| m.name == name)
            .map(|m| m.dimensions.keys().cloned().collect())
            .collect()
    }

    pub fn declares(&self, name: &str) -> bool {
        self.metrics.iter().any(|m| m.name == name)
    }
}

/// Checks `line` against the EMF specification and returns what CloudWatch would extract.
pub fn validate(line: &Value) -> Result<Document, String> {
    let root = line.as_object().ok_or("the line is not a JSON object")?;
    let aws = root
        .get("_aws")
        .ok_or("no _aws member")?
        .as_object()
        .ok_or("_aws is not an object")?;
    let timestamp_ms = aws
        .get("Timestamp")
        .and_then(Value::as_u64)
        .ok_or("_aws.Timestamp is not a whole number of milliseconds")?;
    // Milliseconds since the epoch, not seconds: later than 2020, earlier than 2100.
    if !(1_577_836_800_000..4_102_444_800_000).contains(&timestamp_ms) {
        return Err(format!("_aws.Timestamp {timestamp_ms} is not epoch milliseconds"));
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("_aws.CloudWatchMetrics is not an array")?;
    if directives.is_empty() {
        return Err("_aws.CloudWatchMetrics is empty".into());
    }
    let mut metrics = Vec::new();
    for (i, directive) in directives.iter().enumerate() {
        let d = directive
            .as_object()
            .ok_or_else(|| format!("directive {i} is not an object"))?;
        metrics.extend(directive_metrics(root, d).map_err(|e| format!("directive {i}: {e}"))?);
    }
    Ok(Document {
        timestamp_ms,
        metrics,
    })
}

fn directive_metrics(root: &Map<String, Value>, d: &Map<String, Value>) -> Result<Vec<Extracted>, String> {
    let namespace = d
        .get("Namespace")
        .and_then(Value::as_str)
        .ok_or("no string Namespace")?;
    if namespace.is_empty() || namespace.len() > 255 || namespace.starts_with(':') {
        return Err(format!("bad Namespace {namespace:?}"));
    }
    let sets = d
        .get("Dimensions")
        .and_then(Value::as_array)
        .ok_or("Dimensions is not an array")?;
    let mut dimension_sets = Vec::new();
    for set in sets {
        let names = set
            .as_array()
            .ok_or_else(|| format!("a dimension set is not an array: {set}"))?;
        if names.len() > 30 {
            return Err("more than 30 dimensions in a set".into());
        }
        let mut dims = BTreeMap::new();
        for name in names {
            let name = name
                .as_str()
                .ok_or_else(|| format!("a dimension name is not a string: {name}"))?;
            let value = match root.get(name) {
                Some(Value::String(v)) if !v.is_empty() && v.len() <= 1024 => v.clone(),
                Some(other) => return Err(format!("dimension {name} is not a non-empty string: {other}")),
                None => return Err(format!("dimension {name} is not a member of the line")),
            };
            dims.insert(name.to_owned(), value);
        }
        dimension_sets.push(dims);
    }
    if dimension_sets.is_empty() {
        // CloudWatch publishes such metrics without dimensions: legal, but not what we mean.
        return Err("no dimension set".into());
    }
    let defs = d
        .get("Metrics")
        .and_then(Value::as_array)
        .ok_or("Metrics is not an array")?;
    if defs.is_empty() || defs.len() > 100 {
        return Err(format!("{} metric definitions (1 to 100 allowed)", defs.len()));
    }
    let mut out = Vec::new();
    for def in defs {
        let name = def
            .get("Name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && n.len() <= 255)
            .ok_or_else(|| format!("a metric without a valid Name: {def}"))?;
        let unit = match def.get("Unit") {
            None => "None",
            Some(Value::String(u)) if UNITS.contains(&u.as_str()) => u.as_str(),
            Some(other) => return Err(format!("{name}: unit {other} is not an EMF unit")),
        };
        if let Some(res) = def.get("StorageResolution") {
            if res != 1 && res != 60 {
                return Err(format!("{name}: StorageResolution {res}"));
            }
        }
        let value = match root.get(name) {
            Some(Value::Number(n)) => n.as_f64().ok_or_else(|| format!("{name}: {n}"))?,
            Some(other) => return Err(format!("metric {name} is not a number: {other}")),
            None => return Err(format!("metric {name} is declared but not a member of the line")),
        };
        for dims in &dimension_sets {
            out.push(Extracted {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                unit: unit.to_owned(),
                dimensions: dims.clone(),
                value,
            });
        }
    }
    Ok(out)
}

/// The harness's rule for one log line: a line with `_aws` must be valid EMF, and a request line
/// (`message` "request", or "request is not an HTTP event") must have `_aws`.
pub fn check_line(line: &Value) -> Option<Document> {
    let is_request = line["message"]
        .as_str()
        .is_some_and(|m| m == "request" || m.starts_with("request "));
    if !is_request && line.get("_aws").is_none() {
        return None;
    }
    match validate(line) {
        Ok(doc) => Some(doc),
        Err(e) => panic!("not a valid EMF line ({e}): {line}"),
    }
}
