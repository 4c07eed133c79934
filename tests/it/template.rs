//! The SAM template's IAM, read as YAML: the function's role may call exactly
//! `healthlake:DescribeFHIRExportJob`, on the datastores the deployment names and nothing else,
//! and no IAM statement anywhere in the template has a wildcard action or `Resource: "*"`; the
//! status table (docs/fleet.md) is granted its two item actions on itself only.

use serde_yaml::value::TaggedValue;
use serde_yaml::Value;
use std::path::Path;

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).expect("template.yaml is YAML")
}

/// A value that may be one item or a list (IAM allows both for Action and Resource).
fn items(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(s) => s.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// Every IAM policy statement in `v`, wherever it is.
fn statements<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                if k.as_str() == Some("Statement") {
                    out.extend(items(child));
                }
                statements(child, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|c| statements(c, out)),
        Value::Tagged(t) => statements(&t.value, out),
        _ => {}
    }
}

/// All the text in a value, intrinsic functions included (`!Sub [...]` becomes its strings).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Sequence(s) => s.iter().map(text).collect::<Vec<_>>().join(" "),
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| format!("{} {}", text(k), text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        Value::Tagged(t) => format!("{} {}", t.tag, text(&t.value)),
        other => format!("{other:?}"),
    }
}

fn tag<'a>(v: &'a Value, name: &str) -> Option<&'a TaggedValue> {
    match v {
        Value::Tagged(t) if t.tag == name => Some(t),
        _ => None,
    }
}

#[test]
fn no_statement_has_a_wildcard_action_or_resource() {
    let t = template();
    let mut all = Vec::new();
    statements(&t, &mut all);
    assert!(all.len() >= 4, "found only {} statements", all.len());
    for st in all {
        for a in items(&st["Action"]).into_iter().chain(items(&st["NotAction"])) {
            let a = a
                .as_str()
                .unwrap_or_else(|| panic!("an action that is not a plain string: {a:?}"));
            assert!(!a.contains('*'), "wildcard action {a}");
        }
        assert!(st.get("NotResource").is_none(), "NotResource in {st:?}");
        for r in items(&st["Resource"]) {
            assert_ne!(r.as_str(), Some("*"), "Resource \"*\" in {st:?}");
            assert!(!text(r).contains(":*"), "a wildcard resource in {st:?}");
        }
        assert_eq!(st["Effect"].as_str(), Some("Allow"), "{st:?}");
    }
}

/// More than the ten datastores the template once had slots for.
const TWELVE_IDS: [&str; 12] = [
    "a1", "b2", "c3", "d4", "e5", "f6", "g7", "h8", "i9", "j10", "k11", "l12",
];

/// The template's Resources as CloudFormation's `AWS::LanguageExtensions` transform hands them
/// on: each `Fn::ForEach::<name>: [Identifier, !Ref <list parameter>, {<key>: <fragment>}]`
/// replaced by one copy of the fragment per value, `${Identifier}` substituted in the key and
/// in `!Sub` strings (where the transform substitutes it).
fn expanded_resources(t: &Value, parameter_values: &[&str]) -> serde_yaml::Mapping {
    let mut out = serde_yaml::Mapping::new();
    for (key, value) in t["Resources"].as_mapping().unwrap() {
        let key = key.as_str().unwrap();
        if !key.starts_with("Fn::ForEach::") {
            out.insert(key.into(), value.clone());
            continue;
        }
        let parts = items(value);
        let ident = parts[0].as_str().expect("the loop's identifier");
        let list = tag(parts[1], "!Ref").expect("a list parameter");
        assert_eq!(list.value.as_str(), Some("DatastoreIds"));
        let placeholder = format!("${{{ident}}}");
        for id in parameter_values {
            for (k, fragment) in parts[2].as_mapping().unwrap() {
                let k = k.as_str().unwrap().replace(&placeholder, id);
                out.insert(k.into(), substitute(fragment, &placeholder, id));
            }
        }
    }
    out
}

fn substitute(v: &Value, placeholder: &str, id: &str) -> Value {
    match v {
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .map(|(k, v)| (k.clone(), substitute(v, placeholder, id)))
                .collect(),
        ),
        Value::Sequence(s) => Value::Sequence(s.iter().map(|c| substitute(c, placeholder, id)).collect()),
        Value::Tagged(t) if t.tag == "!Sub" => match &t.value {
            Value::String(s) => Value::Tagged(Box::new(TaggedValue {
                tag: t.tag.clone(),
                value: Value::String(s.replace(placeholder, id)),
            })),
            other => panic!("!Sub with variables inside a loop: {other:?}"),
        },
        Value::Tagged(t) => Value::Tagged(Box::new(TaggedValue {
            tag: t.tag.clone(),
            value: substitute(&t.value, placeholder, id),
        })),
        other => other.clone(),
    }
}

/// The statements of every policy on the function's role: its inline `Policies` and the
/// `AWS::IAM::RolePolicy` resources that name it.
fn role_statements(resources: &serde_yaml::Mapping, role_name: &str) -> Vec<Value> {
    let role = &resources[role_name]["Properties"];
    let mut found: Vec<Value> = items(&role["Policies"])
        .into_iter()
        .flat_map(|p| items(&p["PolicyDocument"]["Statement"]).into_iter().cloned())
        .collect();
    for r in resources.values() {
        if r["Type"].as_str() == Some("AWS::IAM::RolePolicy") {
            let names_role = tag(&r["Properties"]["RoleName"], "!Ref").map(|t| t.value.as_str());
            assert_eq!(
                names_role,
                Some(Some(role_name)),
                "a role policy for another role: {r:?}"
            );
            found.extend(
                items(&r["Properties"]["PolicyDocument"]["Statement"])
                    .into_iter()
                    .cloned(),
            );
        }
    }
    found
}

#[test]
fn the_function_may_only_describe_export_jobs_on_named_datastores() {
    let t = template();
    let resources = expanded_resources(&t, &TWELVE_IDS);
    let function = &resources["ExportJobStatusFunction"]["Properties"];
    // The function's role is the template's own, not a SAM policy template or a managed policy.
    let role_ref = tag(&function["Role"], "!GetAtt").expect("Role: !GetAtt <role>.Arn");
    let role_name = role_ref.value.as_str().unwrap().strip_suffix(".Arn").unwrap();
    assert!(function.get("Policies").is_none(), "SAM Policies on the function");
    assert!(
        resources[role_name]["Properties"]
            .get("ManagedPolicyArns")
            .is_none(),
        "managed policies on {role_name}"
    );

    let mut datastores = Vec::new();
    for st in role_statements(&resources, role_name) {
        assert_eq!(st["Effect"].as_str(), Some("Allow"));
        let actions: Vec<&str> = items(&st["Action"]).iter().map(|a| a.as_str().unwrap()).collect();
        for action in &actions {
            match action.split(':').next() {
                Some("healthlake") => {
                    assert_eq!(*action, "healthlake:DescribeFHIRExportJob");
                    assert_eq!(actions.len(), 1, "healthlake shares a statement: {actions:?}");
                    let arns = items(&st["Resource"]);
                    assert_eq!(arns.len(), 1, "one datastore per statement: {st:?}");
                    datastores.push(datastore_of(arns[0]));
                }
                // Its own log group only.
                Some("logs") => {
                    assert!(
                        ["logs:CreateLogStream", "logs:PutLogEvents"].contains(action),
                        "{action}"
                    );
                    let r = tag(&st["Resource"], "!GetAtt").expect("the log group's ARN");
                    assert_eq!(r.value.as_str(), Some("FunctionLogGroup.Arn"));
                }
                // Items of its status table only, with the two actions the shared tier uses.
                Some("dynamodb") => {
                    assert!(
                        ["dynamodb:GetItem", "dynamodb:UpdateItem"].contains(action),
                        "{action}"
                    );
                    let r = tag(&st["Resource"], "!GetAtt").expect("the table's ARN");
                    assert_eq!(r.value.as_str(), Some("StatusTable.Arn"));
                    // Only the shared tier's own items: job answers and the budget.
                    let keys: Vec<&str> =
                        items(&st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"])
                            .iter()
                            .map(|k| k.as_str().unwrap())
                            .collect();
                    assert_eq!(keys, ["job#*", "budget#*"], "{st:?}");
                }
                _ => panic!("{role_name} grants {action}"),
            }
        }
    }
    assert_eq!(datastores, TWELVE_IDS, "one grant per datastore id, each id once");

    // No other statement in the template grants HealthLake anything.
    let resources = Value::Mapping(resources);
    let mut all = Vec::new();
    statements(&resources, &mut all);
    let healthlake = all
        .iter()
        .filter(|st| text(&st["Action"]).contains("healthlake:"))
        .count();
    assert_eq!(healthlake, TWELVE_IDS.len());
}

/// The datastore id of an ARN `!Sub`'d for one id of the loop.
fn datastore_of(v: &Value) -> String {
    let sub = tag(v, "!Sub").unwrap_or_else(|| panic!("not a !Sub ARN: {v:?}"));
    let arn = sub.value.as_str().expect("an ARN pattern");
    arn.strip_prefix("arn:${AWS::Partition}:healthlake:${AWS::Region}:${AWS::AccountId}:datastore/fhir/")
        .filter(|id| !id.contains(['$', '*', '/']))
        .unwrap_or_else(|| panic!("not one datastore's ARN: {arn}"))
        .to_owned()
}

#[test]
fn the_function_serves_exactly_the_datastores_its_role_may_read() {
    let t = template();
    let vars = &t["Resources"]["ExportJobStatusFunction"]["Properties"]["Environment"]["Variables"];
    let join = tag(&vars["ALLOWED_DATASTORE_IDS"], "!Join").expect("!Join [\",\", !Ref DatastoreIds]");
    let parts = items(&join.value);
    assert_eq!(parts[0].as_str(), Some(","));
    assert_eq!(
        tag(parts[1], "!Ref").and_then(|r| r.value.as_str()),
        Some("DatastoreIds")
    );
}

#[test]
fn the_status_table_is_on_demand_encrypted_with_ttl_and_named_to_the_function() {
    let t = template();
    let table = &t["Resources"]["StatusTable"];
    assert_eq!(table["Type"].as_str(), Some("AWS::DynamoDB::Table"));
    let p = &table["Properties"];
    assert_eq!(p["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(p["KeySchema"][0]["AttributeName"].as_str(), Some("pk"));
    assert_eq!(items(&p["KeySchema"]).len(), 1, "a partition key only");
    assert_eq!(
        p["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some("expiresAt")
    );
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"].as_bool(), Some(true));
    assert_eq!(p["SSESpecification"]["SSEEnabled"].as_bool(), Some(true));
    let vars = &t["Resources"]["ExportJobStatusFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        tag(&vars["STATUS_TABLE"], "!Ref").and_then(|r| r.value.as_str()),
        Some("StatusTable")
    );
    // Every fleet setting is a template parameter.
    for (var, param) in [
        ("REFRESH_INTERVAL_MS", "RefreshIntervalMs"),
        ("UPSTREAM_RATE_PER_SEC", "UpstreamRatePerSec"),
        ("MAX_STALE_SECS", "MaxStaleSecs"),
        ("TABLE_TIMEOUT_MS", "TableTimeoutMs"),
    ] {
        assert_eq!(
            tag(&vars[var], "!Ref").and_then(|r| r.value.as_str()),
            Some(param),
            "{var}"
        );
        assert!(t["Parameters"][param].is_mapping(), "{param}");
    }
}
