//! The SAM template's IAM, read as YAML: the function's role may call exactly
//! `healthlake:DescribeFHIRExportJob`, on the datastores the deployment names, and read partner
//! items of its own status table, and nothing else; no IAM statement anywhere in the template
//! has a wildcard action or `Resource: "*"`. The caller policy docs/partners.md gives IAM callers
//! names one datastore's path, built from the prefix the template outputs.

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
                    // The partner mapping: GetItem on its own status table, partner items only.
                    Some("dynamodb") => {
                        assert_eq!(*action, "dynamodb:GetItem");
                        let r = tag(&st["Resource"], "!GetAtt").expect("the table's ARN");
                        assert_eq!(r.value.as_str(), Some("StatusTable.Arn"));
                        let keys = &st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
                        assert_eq!(items(keys).len(), 1, "{st:?}");
                        assert_eq!(items(keys)[0].as_str(), Some("apikey#*"));
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

#[test]
fn the_function_reads_its_mapping_from_the_table_the_template_creates() {
    let t = template();
    let env = &t["Resources"]["ExportJobStatusFunction"]["Properties"]["Environment"]["Variables"];
    let table = tag(&env["STATUS_TABLE"], "!Ref").expect("STATUS_TABLE: !Ref <table>");
    assert_eq!(table.value.as_str(), Some("StatusTable"));
    let props = &t["Resources"]["StatusTable"]["Properties"];
    assert_eq!(
        t["Resources"]["StatusTable"]["Type"].as_str(),
        Some("AWS::DynamoDB::Table")
    );
    assert_eq!(props["KeySchema"][0]["AttributeName"].as_str(), Some("pk"));
    assert_eq!(props["KeySchema"][0]["KeyType"].as_str(), Some("HASH"));
    assert_eq!(
        props["AttributeDefinitions"][0]["AttributeType"].as_str(),
        Some("S")
    );
    let mode = tag(&env["AUTH_MODE"], "!Ref").expect("AUTH_MODE: !Ref AuthMode");
    assert_eq!(mode.value.as_str(), Some("AuthMode"));
}

/// The ```json block that follows `marker` in docs/partners.md.
fn doc_json_after(marker: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/partners.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let after = &doc[doc
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in the doc"))..];
    let start = after.find("```json\n").expect("a ```json block") + "```json\n".len();
    let end = start + after[start..].find("```").expect("the block's end");
    serde_json::from_str(&after[start..end]).expect("the block is JSON")
}

#[test]
fn the_documented_iam_caller_policy_names_one_datastore_path() {
    let policy = doc_json_after("<!-- caller-policy -->");
    let statements = policy["Statement"].as_array().expect("Statement is a list");
    assert_eq!(statements.len(), 1, "{policy}");
    let st = &statements[0];
    assert_eq!(st["Effect"], "Allow");
    assert_eq!(st["Action"], "execute-api:Invoke", "one action, no wildcard");
    assert!(st.get("NotResource").is_none() && st.get("NotAction").is_none());

    // The prefix is what the template outputs, filled in: arn:aws:execute-api:<region>:<account>:<api>/<stage>.
    let t = template();
    let output = tag(&t["Outputs"]["ExecuteApiArnPrefix"]["Value"], "!Sub").expect("!Sub");
    assert_eq!(
        output.value.as_str(),
        Some("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/${StageName}")
    );
    let prefix =
        regex::Regex::new(r"^arn:aws:execute-api:[a-z0-9-]+:[0-9]{12}:[a-z0-9]{10}/[A-Za-z0-9_]+/").unwrap();

    let resources: Vec<&str> = st["Resource"]
        .as_array()
        .expect("Resource is a list")
        .iter()
        .map(|r| r.as_str().expect("a string"))
        .collect();
    let mut methods = Vec::new();
    let mut datastores = std::collections::BTreeSet::new();
    for r in &resources {
        let m = prefix
            .find(r)
            .unwrap_or_else(|| panic!("{r} does not start with the output prefix"));
        let path = &r[m.end()..];
        let (method, rest) = path.split_once('/').unwrap();
        methods.push(method);
        let ds = rest
            .strip_prefix("datastores/")
            .and_then(|r| r.strip_suffix("/export-jobs/*"))
            .unwrap_or_else(|| panic!("{r}: not <prefix>/<METHOD>/datastores/<id>/export-jobs/*"));
        // One literal datastore id: a wildcard (* or ?) there would reach every datastore.
        assert!(
            !ds.is_empty() && ds.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{r}: the datastore segment is not one id"
        );
        datastores.insert(ds);
        assert!(
            !r[..m.end()].contains(['*', '?']),
            "{r}: a wildcard in the prefix"
        );
    }
    methods.sort_unstable();
    assert_eq!(methods, ["GET", "HEAD"], "{resources:?}");
    assert_eq!(datastores.len(), 1, "one datastore per policy: {datastores:?}");
}
