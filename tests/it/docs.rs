//! The docs' tables of facts against what holds them: the code (through the crate's public API)
//! and template.yaml. Each test reads a Markdown table by its header row, so removing or changing
//! a row, or the whole table, fails it:
//!
//! - README.md "Configuration", docs/partners.md and docs/fleet.md "Configuration": every variable
//!   the function reads, its default (setting it to the documented default changes nothing;
//!   setting it to another allowed value does) and its range or values (the ends are accepted,
//!   one past them is refused with the variable named), and the template parameter that sets it.
//! - docs/deploy.md, parameters: every parameter of template.yaml, the variable it sets, its
//!   default and its constraint (MinValue/MaxValue, AllowedValues or AllowedPattern).
//! - docs/deploy.md, the role's grants: every IAM statement on the function's role.
//! - docs/operations.md, metrics: `metrics::METRICS` (names, units, dimension sets); alarms: the
//!   template's alarm names and their default thresholds.
//! - docs/api.md, errors: the error table's statuses, problem types and extra headers.
//! - Every `Access-Control-*` header value quoted in README.md or docs/: what the function answers.

use crate::common::{app, header, request, DS};
use export_job_status::config::{AllowedOrigins, Config};
use export_job_status::error::Error;
use export_job_status::telemetry::metrics::{self, METRICS};
use lambda_http::http::Method;
use loopback::healthlake::StandIn;
use regex::Regex;
use serde_yaml::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn template() -> Value {
    serde_yaml::from_str(&read("template.yaml")).expect("template.yaml is YAML")
}

/// The rows of the Markdown table in `doc` whose header row has exactly these cells.
fn table(doc: &str, header: &[&str]) -> Vec<Vec<String>> {
    let cells = |line: &str| -> Vec<String> {
        let inner = line.trim().strip_prefix('|').and_then(|l| l.strip_suffix('|'));
        inner
            .map(|l| l.split('|').map(|c| c.trim().to_owned()).collect())
            .unwrap_or_default()
    };
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if cells(line) == header {
            let sep = lines.next().unwrap_or_default();
            assert!(sep.trim_start().starts_with("|-") || sep.trim_start().starts_with("| -"));
            let rows: Vec<Vec<String>> = lines
                .take_while(|l| l.trim_start().starts_with('|'))
                .map(cells)
                .collect();
            for r in &rows {
                assert_eq!(r.len(), header.len(), "a row of the table {header:?}: {r:?}");
            }
            assert!(!rows.is_empty(), "the table {header:?} is empty");
            return rows;
        }
    }
    panic!("no table with the header {header:?}");
}

/// The `code spans` of a cell, in order.
fn code(cell: &str) -> Vec<String> {
    Regex::new(r"`([^`]+)`")
        .unwrap()
        .captures_iter(cell)
        .map(|c| c[1].to_owned())
        .collect()
}

// ---- environment variables ----

type Lookup = BTreeMap<String, String>;

fn config(vars: &[(&str, &str)]) -> Result<Config, export_job_status::config::ConfigError> {
    let vars: Lookup = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(|name| vars.get(name).cloned())
}

/// What start-up makes of the variables, comparable.
fn outcome(vars: &[(&str, &str)]) -> String {
    format!("{:?}", config(vars))
}

/// Every variable `Config` asks for, in the plain deployment and in an API-key one with a table.
fn variables_config_reads() -> BTreeSet<String> {
    let seen = RefCell::new(BTreeSet::new());
    for vars in [
        vec![],
        vec![("AUTH_MODE", "API_KEY"), ("STATUS_TABLE", "status-table")],
    ] {
        let vars: Lookup = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| {
            seen.borrow_mut().insert(name.to_owned());
            vars.get(name).cloned()
        })
        .unwrap();
    }
    seen.into_inner()
}

/// Variables read outside `Config`, each with the file that reads it, where it must be a literal.
const READ_ELSEWHERE: &[(&str, &str)] = &[
    ("AWS_LAMBDA_LOG_LEVEL", "src/telemetry/logging.rs"),
    ("RUST_LOG", "src/telemetry/logging.rs"),
    ("SSL_CERT_FILE", "src/aws/trust.rs"),
    ("SSL_CERT_DIR", "src/aws/trust.rs"),
];

/// A documented range: whole numbers from..to, or a list of values.
#[derive(Debug)]
enum Range {
    Numbers(u64, u64),
    Values(Vec<String>),
}

/// "`1` to `29000`" or "one of `a`, `b`"; anything else is prose and not a range.
fn range_of(cell: &str) -> Option<Range> {
    let spans = code(cell);
    if let Some(c) = Regex::new(r"^`(\d+)` to `(\d+)`").unwrap().captures(cell) {
        return Some(Range::Numbers(c[1].parse().unwrap(), c[2].parse().unwrap()));
    }
    cell.starts_with("one of ").then_some(Range::Values(spans))
}

/// The documented default of a variable: its cell's leading number or `code span`; `None` for
/// "unset..." and prose.
fn default_of(cell: &str) -> Option<String> {
    if let Some(c) = Regex::new(r"^`([^`]+)`").unwrap().captures(cell) {
        return Some(c[1].to_owned());
    }
    Regex::new(r"^(\d+)\b")
        .unwrap()
        .captures(cell)
        .map(|c| c[1].to_owned())
}

/// Holds one documented variable to the code: its default, and its range.
fn check_variable(var: &str, default: Option<&str>, range: Option<&Range>, doc: &str) {
    let unset = outcome(&[]);
    if let Some(d) = default {
        assert_eq!(
            outcome(&[(var, d)]),
            unset,
            "{doc}: {var}={d} is not what an unset {var} gives"
        );
    }
    match range {
        Some(Range::Numbers(min, max)) => {
            for ok in [*min, *max] {
                assert!(
                    config(&[(var, &ok.to_string())]).is_ok(),
                    "{doc}: {var}={ok} is refused"
                );
            }
            let mut refused = vec![max + 1];
            if *min > 0 {
                refused.push(min - 1);
            }
            for bad in refused {
                let e =
                    config(&[(var, &bad.to_string())]).expect_err(&format!("{doc}: {var}={bad} is accepted"));
                assert_eq!(e.variable, var, "{doc}: {var}={bad}");
            }
            if let Some(d) = default {
                let other = if d == min.to_string() { max } else { min };
                assert_ne!(
                    outcome(&[(var, &other.to_string())]),
                    unset,
                    "{doc}: {var}={other} changes nothing"
                );
            }
        }
        Some(Range::Values(values)) => {
            for v in values {
                assert!(config(&[(var, v)]).is_ok(), "{doc}: {var}={v} is refused");
                if default != Some(v.as_str()) {
                    assert_ne!(outcome(&[(var, v)]), unset, "{doc}: {var}={v} changes nothing");
                }
            }
            let e = config(&[(var, "not-a-value")]).expect_err(&format!("{doc}: {var} takes any value"));
            assert_eq!(e.variable, var);
        }
        None => {}
    }
}

/// The template's function variables: variable → the parameter or resource it is set from.
fn template_variables() -> BTreeMap<String, String> {
    let t = template();
    let vars = t["Resources"]["ExportJobStatusFunction"]["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap()
        .clone();
    let params: Vec<String> = t["Parameters"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    vars.into_iter()
        .filter_map(|(k, v)| {
            let k = k.as_str().unwrap().to_owned();
            let source = match &v {
                Value::Tagged(t) if t.tag == "!Ref" => t.value.as_str().unwrap().to_owned(),
                // The datastore slots: a !Sub over the parameter.
                other => params
                    .iter()
                    .find(|p| serde_yaml::to_string(other).unwrap().contains(p.as_str()))?
                    .clone(),
            };
            (source != "AWS::NoValue").then_some((k, source))
        })
        .collect()
}

#[test]
fn readme_lists_every_variable_with_its_default_and_range() {
    let rows = table(&read("README.md"), &["variable", "default", "range", "meaning"]);
    let mut documented = BTreeSet::new();
    for row in &rows {
        let vars = code(&row[0]);
        assert!(!vars.is_empty(), "README.md: a row without a variable: {row:?}");
        let read_by_config = vars.iter().all(|v| variables_config_reads().contains(v));
        for var in &vars {
            documented.insert(var.clone());
            if read_by_config {
                check_variable(
                    var,
                    default_of(&row[1]).as_deref(),
                    range_of(&row[2]).as_ref(),
                    "README.md",
                );
            } else {
                let (_, file) = READ_ELSEWHERE
                    .iter()
                    .find(|(v, _)| v == var)
                    .unwrap_or_else(|| panic!("README.md: the function does not read {var}"));
                assert!(
                    read(file).contains(&format!("\"{var}\"")),
                    "{file} no longer reads {var}"
                );
            }
        }
    }
    let mut read_by_function = variables_config_reads();
    read_by_function.extend(READ_ELSEWHERE.iter().map(|(v, _)| v.to_string()));
    assert_eq!(
        documented, read_by_function,
        "README.md's variables against the function's"
    );
    for var in template_variables().keys() {
        assert!(
            documented.contains(var),
            "the template sets {var}, which README.md does not list"
        );
    }
}

/// The tables of partners.md and fleet.md: variable, default, template parameter (and ranges
/// in the text).
fn check_section_table(doc: &str, header: &[&str], default_col: usize, template_col: usize, text_col: usize) {
    let set_by = template_variables();
    let rows = table(&read(doc), header);
    // "1 to 60000:" or "(100-300000)": a range in the text, not a length like "(3-255 of".
    let range = Regex::new(r"^(\d+) to (\d+):|\((\d+)-(\d+)[);]").unwrap();
    for row in &rows {
        let var = &code(&row[0])[0];
        assert!(
            variables_config_reads().contains(var),
            "{doc}: the function does not read {var}"
        );
        let r = range.captures(&row[text_col]).map(|c| {
            let n = |i: usize, j: usize| c.get(i).or(c.get(j)).unwrap().as_str().parse().unwrap();
            Range::Numbers(n(1, 3), n(2, 4))
        });
        check_variable(var, default_of(&row[default_col]).as_deref(), r.as_ref(), doc);
        let template = code(&row[template_col]);
        match set_by.get(var) {
            Some(source) => assert_eq!(
                template.last().map(|t| t.trim_start_matches("!Ref ")),
                Some(source.as_str()),
                "{doc}: what the template sets {var} from"
            ),
            None => assert!(template.is_empty(), "{doc}: the template does not set {var}"),
        }
    }
}

#[test]
fn partners_and_fleet_variables_hold() {
    check_section_table(
        "docs/partners.md",
        &["Variable", "Template", "Default", ""],
        2,
        1,
        3,
    );
    check_section_table(
        "docs/fleet.md",
        &["Variable", "Default", "Template parameter", "What"],
        1,
        2,
        3,
    );
}

// ---- template parameters ----

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[test]
fn deploy_md_lists_every_template_parameter() {
    let t = template();
    let params = t["Parameters"].as_mapping().unwrap();
    let set_by: BTreeMap<String, String> = template_variables().into_iter().map(|(k, v)| (v, k)).collect();
    let rows = table(
        &read("docs/deploy.md"),
        &["parameter", "variable", "default", "values", "meaning"],
    );
    let mut documented = BTreeSet::new();
    for row in &rows {
        let name = &code(&row[0])[0];
        documented.insert(name.clone());
        let p = &params[name.as_str()];
        assert!(
            !p.is_null(),
            "docs/deploy.md: template.yaml has no parameter {name}"
        );
        assert_eq!(
            code(&row[1]).first(),
            set_by.get(name),
            "docs/deploy.md: the variable {name} sets"
        );
        match scalar(&p["Default"]) {
            None => assert_eq!(row[2], "(required)", "docs/deploy.md: {name} has no default"),
            Some(d) if d.is_empty() => assert!(
                row[2].starts_with("empty"),
                "docs/deploy.md: {name}'s default is empty"
            ),
            Some(d) => assert_eq!(default_of(&row[2]), Some(d), "docs/deploy.md: {name}'s default"),
        }
        let values = &row[3];
        let spans = code(values);
        let (min, max) = (scalar(&p["MinValue"]), scalar(&p["MaxValue"]));
        if let Some(allowed) = p["AllowedValues"].as_sequence() {
            let allowed: Vec<String> = allowed.iter().filter_map(scalar).collect();
            assert!(values.starts_with("one of "), "docs/deploy.md: {name}: {values}");
            assert_eq!(spans, allowed, "docs/deploy.md: {name}'s values");
        } else if let Some(pattern) = scalar(&p["AllowedPattern"]) {
            assert!(
                values.starts_with("matching "),
                "docs/deploy.md: {name}: {values}"
            );
            assert_eq!(spans, [pattern], "docs/deploy.md: {name}'s pattern");
        } else if let (Some(min), Some(max)) = (&min, &max) {
            assert!(
                values.starts_with(&format!("`{min}` to `{max}`")),
                "docs/deploy.md: {name}: {values}, template {min} to {max}"
            );
        } else if let Some(min) = &min {
            assert_eq!(values, &format!("`{min}` or more"), "docs/deploy.md: {name}");
        } else {
            assert_eq!(values, "any", "docs/deploy.md: {name} has no constraint");
        }
    }
    let all: BTreeSet<String> = params.keys().map(|k| k.as_str().unwrap().to_owned()).collect();
    assert_eq!(
        documented, all,
        "docs/deploy.md's parameters against template.yaml's"
    );
}

// ---- the role's grants ----

/// What a statement's resource is, in the words of deploy.md's table.
fn resource_name(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(t) if t.tag == "!GetAtt" => {
            t.value.as_str().unwrap().trim_end_matches(".Arn").to_owned()
        }
        Value::Tagged(t) if t.tag == "!If" => resource_name(&t.value[1]),
        Value::Tagged(t) if t.tag == "!Sub" => {
            let text = t.value[0].as_str().unwrap();
            let (_, tail) = text.rsplit_once(':').unwrap();
            tail.replace("${Id}", "<id>")
        }
        other => panic!("a resource the test cannot name: {other:?}"),
    }
}

fn list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(s) => s.iter().collect(),
        Value::Null => vec![],
        other => vec![other],
    }
}

#[test]
fn deploy_md_lists_every_grant_of_the_role() {
    let t = template();
    let resources = t["Resources"].as_mapping().unwrap();
    let mut statements: Vec<Value> = list(&resources["FunctionRole"]["Properties"]["Policies"])
        .into_iter()
        .flat_map(|p| list(&p["PolicyDocument"]["Statement"]).into_iter().cloned())
        .collect();
    for r in resources.values() {
        if r["Type"].as_str() == Some("AWS::IAM::RolePolicy") {
            statements.extend(
                list(&r["Properties"]["PolicyDocument"]["Statement"])
                    .into_iter()
                    .cloned(),
            );
        }
    }
    assert!(resources["FunctionRole"]["Properties"]["ManagedPolicyArns"].is_null());
    type Grant = (Vec<String>, BTreeSet<String>, Vec<String>);
    let in_template: BTreeSet<Grant> = statements
        .iter()
        .map(|st| {
            assert_eq!(st["Effect"].as_str(), Some("Allow"));
            let mut actions: Vec<String> = list(&st["Action"])
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect();
            actions.sort();
            let on: BTreeSet<String> = list(&st["Resource"]).into_iter().map(resource_name).collect();
            let keys = list(&st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"])
                .iter()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect();
            (actions, on, keys)
        })
        .collect();
    let documented: BTreeSet<Grant> = table(&read("docs/deploy.md"), &["actions", "on", "items"])
        .iter()
        .map(|row| {
            let mut actions = code(&row[0]);
            actions.sort();
            (
                actions,
                code(&row[1]).into_iter().take(1).collect(),
                code(&row[2]),
            )
        })
        .collect();
    assert_eq!(
        documented, in_template,
        "docs/deploy.md's grants against the role's statements"
    );
}

// ---- metrics and alarms ----

#[test]
fn operations_md_lists_every_metric_with_its_unit_and_dimensions() {
    let rows = table(
        &read("docs/operations.md"),
        &["metric", "unit", "dimensions", "on which lines", "meaning"],
    );
    let documented: BTreeMap<String, (String, Vec<String>)> = rows
        .iter()
        .map(|r| {
            (
                code(&r[0])[0].clone(),
                (
                    r[1].clone(),
                    r[2].split(';').map(|s| code(s).join(" + ")).collect(),
                ),
            )
        })
        .collect();
    let in_code: BTreeMap<String, (String, Vec<String>)> = METRICS
        .iter()
        .map(|m| {
            let mut dims = vec![metrics::FUNCTION_NAME.to_owned()];
            if m.by_outcome {
                dims.push(format!("{} + {}", metrics::FUNCTION_NAME, metrics::OUTCOME));
            }
            (m.name.to_owned(), (m.unit.as_str().to_owned(), dims))
        })
        .collect();
    assert_eq!(
        documented, in_code,
        "docs/operations.md's metrics against metrics::METRICS"
    );
}

#[test]
fn operations_md_lists_every_alarm_with_its_default() {
    let t = template();
    let params = &t["Parameters"];
    let alarms: BTreeMap<String, &Value> = t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|r| {
            let Value::Tagged(name) = &r["Properties"]["AlarmName"] else {
                panic!("{r:?}")
            };
            let name = name
                .value
                .as_str()
                .unwrap()
                .replace("${AWS::StackName}", "<stack>");
            (name, &r["Properties"])
        })
        .collect();
    let rows = table(&read("docs/operations.md"), &["alarm", "fires when", "default"]);
    let documented: BTreeSet<String> = rows.iter().map(|r| code(&r[0])[0].clone()).collect();
    assert_eq!(
        documented,
        alarms.keys().cloned().collect(),
        "docs/operations.md's alarms against template.yaml's"
    );
    let param_default = Regex::new(r"`(\w+)` \((\d+)").unwrap();
    for row in &rows {
        let props = alarms[&code(&row[0])[0]];
        let cell = &row[2];
        match &props["Threshold"] {
            Value::Tagged(t) if t.tag == "!Ref" => {
                let p = t.value.as_str().unwrap();
                assert!(
                    cell.contains(&format!("`{p}`")) || cell.starts_with("as "),
                    "{}: {cell} names {p}",
                    row[0]
                );
            }
            n => assert!(
                cell.ends_with(&format!(" {}", scalar(n).unwrap())),
                "{}: {cell}",
                row[0]
            ),
        }
        for c in param_default.captures_iter(cell) {
            assert_eq!(
                scalar(&params[&c[1]]["Default"]).as_deref(),
                Some(&c[2]),
                "{}: {cell}",
                row[0]
            );
        }
    }
}

// ---- problems ----

#[test]
fn api_md_lists_every_problem_with_its_status_and_headers() {
    let rows = table(&read("docs/api.md"), &["cause", "HTTP", "type"]);
    let status = Regex::new(r"^(\d{3})").unwrap();
    let documented: BTreeSet<(u16, String, Vec<String>)> = rows
        .iter()
        .map(|r| {
            let s = status.captures(&r[1]).unwrap_or_else(|| panic!("{r:?}"))[1]
                .parse()
                .unwrap();
            (s, code(&r[2])[0].clone(), code(&r[1]))
        })
        .collect();
    let in_code: BTreeSet<(u16, String, Vec<String>)> = Error::every_case()
        .iter()
        .map(|e| {
            let c = e.case();
            let headers = c
                .headers
                .iter()
                .map(|(n, v)| {
                    let name = n.as_str();
                    let name = name
                        .split('-')
                        .map(|w| w[..1].to_uppercase() + &w[1..])
                        .collect::<Vec<_>>()
                        .join("-");
                    if name == "Allow" {
                        name
                    } else {
                        format!("{name}: {v}")
                    }
                })
                .collect();
            (c.status.as_u16(), c.slug.to_owned(), headers)
        })
        .collect();
    assert_eq!(
        documented, in_code,
        "docs/api.md's error table against the function's"
    );
}

// ---- CORS headers ----

/// Every `Name: value` of these headers quoted in README.md and docs/ is what the function
/// answers an allowed origin (the preflight for the first three, any answer for the last).
#[tokio::test]
async fn the_cors_headers_quoted_in_the_docs_are_the_functions() {
    let standin = StandIn::start();
    let config = Config {
        allowed_origins: AllowedOrigins::List(vec!["https://app.example.com".into()]),
        ..Config::default()
    };
    let app = app(&standin, config).await;
    let path = format!("/datastores/{DS}/export-jobs/not%09valid");
    let mut preflight = request(Method::OPTIONS, &path);
    let mut answer = request(Method::GET, &path);
    for r in [&mut preflight, &mut answer] {
        r.headers_mut()
            .insert("origin", "https://app.example.com".parse().unwrap());
    }
    let preflight = export_job_status::handler::handle(&app, preflight).await;
    let answer = export_job_status::handler::handle(&app, answer).await;
    assert_eq!(answer.status(), 400);
    let actual = [
        (
            "Access-Control-Allow-Methods",
            header(&preflight, "access-control-allow-methods"),
        ),
        (
            "Access-Control-Allow-Headers",
            header(&preflight, "access-control-allow-headers"),
        ),
        (
            "Access-Control-Max-Age",
            header(&preflight, "access-control-max-age"),
        ),
        (
            "Access-Control-Expose-Headers",
            header(&answer, "access-control-expose-headers"),
        ),
    ];
    let mut docs: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| format!("docs/{}", p.file_name().unwrap().to_str().unwrap()))
        .collect();
    docs.push("README.md".into());
    let mut quoted = BTreeSet::<&str>::new();
    for doc in &docs {
        let text = read(doc);
        for (name, value) in &actual {
            let value = value.unwrap_or_else(|| panic!("the function does not send {name}"));
            let quote = Regex::new(&format!("(?i){}: ", regex::escape(name))).unwrap();
            for m in quote.find_iter(&text) {
                let start = m.end();
                // In a code span the value runs to its end (across a line break); in a
                // transcript, to the end of the line.
                let in_span = text[..m.start()].ends_with('`');
                let end = if in_span {
                    text[start..].find('`')
                } else {
                    text[start..].find('\n')
                }
                .map_or(text.len(), |e| start + e);
                let said = text[start..end].split_whitespace().collect::<Vec<_>>().join(" ");
                assert_eq!(said, value, "{doc}: {name}");
                quoted.insert(name);
            }
        }
    }
    for (name, _) in &actual {
        assert!(quoted.contains(name), "no doc quotes {name}");
    }
    let in_api_md = read("docs/api.md").to_lowercase();
    assert!(
        in_api_md.contains("access-control-expose-headers: "),
        "docs/api.md quotes the exposed headers"
    );
}
