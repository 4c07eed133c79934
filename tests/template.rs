//! The SAM template's IAM, read as YAML: the function's role may call exactly
//! `healthlake:DescribeFHIRExportJob`, on the datastores the deployment names and nothing else,
//! and no IAM statement anywhere in the template has a wildcard action or `Resource: "*"`, but
//! the one that lets Lambda send X-Ray segments, which has no resource-level permissions.

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

/// What active tracing needs: X-Ray accepts only `Resource: "*"` for these.
const XRAY_ACTIONS: &[&str] = &["xray:PutTraceSegments", "xray:PutTelemetryRecords"];

/// A statement granting exactly the X-Ray actions, on `"*"`.
fn is_xray_statement(st: &Value) -> bool {
    let actions: Vec<&str> = items(&st["Action"]).iter().filter_map(|a| a.as_str()).collect();
    let mut sorted = actions.clone();
    sorted.sort_unstable();
    let mut want = XRAY_ACTIONS.to_vec();
    want.sort_unstable();
    sorted == want && items(&st["Resource"]).iter().all(|r| r.as_str() == Some("*"))
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
        if is_xray_statement(st) {
            continue;
        }
        for r in items(&st["Resource"]) {
            assert_ne!(r.as_str(), Some("*"), "Resource \"*\" in {st:?}");
            assert!(!text(r).contains(":*"), "a wildcard resource in {st:?}");
        }
        assert_eq!(st["Effect"].as_str(), Some("Allow"), "{st:?}");
    }
}

#[test]
fn the_function_may_only_describe_export_jobs_on_named_datastores() {
    let t = template();
    let resources = &t["Resources"];
    let function = &resources["ExportJobStatusFunction"]["Properties"];
    // The function's role is the template's own, not a SAM policy template or a managed policy.
    let role_ref = tag(&function["Role"], "!GetAtt").expect("Role: !GetAtt <role>.Arn");
    let role_name = role_ref.value.as_str().unwrap().strip_suffix(".Arn").unwrap();
    assert!(function.get("Policies").is_none(), "SAM Policies on the function");
    let role = &resources[role_name]["Properties"];
    assert!(
        role.get("ManagedPolicyArns").is_none(),
        "managed policies on {role_name}"
    );

    let mut granted = Vec::new();
    for policy in items(&role["Policies"]) {
        for st in items(&policy["PolicyDocument"]["Statement"]) {
            assert_eq!(st["Effect"].as_str(), Some("Allow"));
            let actions: Vec<&str> = items(&st["Action"]).iter().map(|a| a.as_str().unwrap()).collect();
            for action in &actions {
                granted.push(action.to_string());
                match action.split(':').next() {
                    Some("healthlake") => {
                        assert_eq!(*action, "healthlake:DescribeFHIRExportJob");
                        assert_eq!(actions.len(), 1, "healthlake shares a statement: {actions:?}");
                        let arns = items(&st["Resource"]);
                        assert!(!arns.is_empty());
                        for arn in arns {
                            datastore_arn(arn);
                        }
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
                    // Active tracing, and nothing else of X-Ray.
                    Some("xray") => assert!(is_xray_statement(st), "{st:?}"),
                    _ => panic!("{role_name} grants {action}"),
                }
            }
        }
    }
    assert!(granted.iter().any(|a| a == "healthlake:DescribeFHIRExportJob"));
    // No other statement in the template grants HealthLake anything.
    let mut all = Vec::new();
    statements(&t, &mut all);
    let healthlake = all
        .iter()
        .filter(|st| text(&st["Action"]).contains("healthlake:"))
        .count();
    assert_eq!(healthlake, 1);
}

/// One resource of the HealthLake statement: a datastore ARN built from a `DatastoreIds` entry,
/// possibly under `!If [HasDatastoreN, <arn>, !Ref AWS::NoValue]`.
fn datastore_arn(v: &Value) {
    let v = match tag(v, "!If") {
        Some(t) => {
            let branches = items(&t.value);
            assert_eq!(branches.len(), 3, "{v:?}");
            let none = tag(branches[2], "!Ref").expect("the else branch is !Ref AWS::NoValue");
            assert_eq!(none.value.as_str(), Some("AWS::NoValue"));
            branches[1]
        }
        None => v,
    };
    let sub = tag(v, "!Sub").unwrap_or_else(|| panic!("not a !Sub ARN: {v:?}"));
    let parts = items(&sub.value);
    let pattern = parts[0].as_str().expect("an ARN pattern");
    assert_eq!(
        pattern,
        "arn:${AWS::Partition}:healthlake:${AWS::Region}:${AWS::AccountId}:datastore/fhir/${Id}"
    );
    let id = &parts[1]["Id"];
    let select = tag(id, "!Select").expect("Id: !Select [n, !Ref DatastoreIds]");
    let from = tag(items(&select.value)[1], "!Ref").expect("!Ref DatastoreIds");
    assert_eq!(from.value.as_str(), Some("DatastoreIds"));
}
