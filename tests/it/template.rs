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

/// The mapping under `key`, wherever it is in `v`.
fn find<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Mapping(m) => m.iter().find_map(|(k, child)| {
            if k.as_str() == Some(key) {
                Some(child)
            } else {
                find(child, key)
            }
        }),
        Value::Sequence(s) => s.iter().find_map(|c| find(c, key)),
        Value::Tagged(t) => find(&t.value, key),
        _ => None,
    }
}

/// API Gateway's own errors are problems like the function's: JSON whose `status` member is the
/// status they are sent with, and whose `type` is ours.
#[test]
fn every_gateway_response_is_a_problem_with_its_own_status() {
    let t = template();
    let responses = find(&t, "x-amazon-apigateway-gateway-responses").expect("gateway responses");
    let responses = responses.as_mapping().unwrap();
    assert!(responses.len() >= 14, "{} gateway responses", responses.len());
    for (name, resp) in responses {
        let status: u16 = resp["statusCode"]
            .as_str()
            .unwrap_or_else(|| panic!("{name:?} sets no statusCode"))
            .parse()
            .unwrap();
        let template = resp["responseTemplates"]["application/json"].as_str().unwrap();
        let body: serde_json::Value = serde_json::from_str(
            &template
                .replace("$context.requestId", "req")
                .replace("$context.error.responseType", "TYPE"),
        )
        .unwrap_or_else(|e| panic!("{name:?}: not JSON ({e}): {template}"));
        assert_eq!(body["status"], status, "{name:?}");
        assert!(
            body["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:problem-type:export-job-status:")),
            "{name:?}"
        );
        assert_eq!(body["requestId"], "req", "{name:?}");
    }
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
