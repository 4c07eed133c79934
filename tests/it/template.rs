//! The SAM template's IAM, read as YAML: the function's role may call exactly
//! `healthlake:DescribeFHIRExportJob`, on the datastores the deployment names, and read and
//! write its own status table's items (partner mappings; the fleet's job answers and budget), and
//! nothing else; no IAM statement anywhere in the template
//! has a wildcard action or `Resource: "*"`, but the one that lets Lambda send X-Ray segments,
//! which has no resource-level permissions. The caller policy docs/partners.md gives IAM callers
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

/// What active tracing needs: X-Ray accepts only `Resource: "*"` for these.
const XRAY_ACTIONS: &[&str] = &["xray:PutTraceSegments", "xray:PutTelemetryRecords"];

/// A statement granting exactly the X-Ray actions, on `"*"`.
fn is_xray_statement(st: &Value) -> bool {
    let mut actions: Vec<&str> = items(&st["Action"]).iter().filter_map(|a| a.as_str()).collect();
    actions.sort_unstable();
    let mut want = XRAY_ACTIONS.to_vec();
    want.sort_unstable();
    actions == want && items(&st["Resource"]).iter().all(|r| r.as_str() == Some("*"))
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
    let resources = t["Resources"].as_mapping().unwrap().clone();
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
                    assert_eq!(arns.len(), 10, "the ten slots: {st:?}");
                    for (slot, arn) in arns.into_iter().enumerate() {
                        datastores.push(datastore_arn(arn));
                        assert_eq!(datastores.last(), Some(&slot), "slot {slot} in order");
                    }
                }
                // Items of its own status table only: partner mappings it may read, and the
                // shared tier's job answers and budget, which it may read and update.
                Some("dynamodb") => {
                    let r = tag(&st["Resource"], "!GetAtt").expect("the table's ARN");
                    assert_eq!(r.value.as_str(), Some("StatusTable.Arn"));
                    let keys: Vec<&str> =
                        items(&st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"])
                            .iter()
                            .map(|k| k.as_str().unwrap())
                            .collect();
                    match keys.as_slice() {
                        ["apikey#*"] => assert_eq!(*action, "dynamodb:GetItem"),
                        ["job#*", "budget#*"] => assert!(
                            ["dynamodb:GetItem", "dynamodb:UpdateItem"].contains(action),
                            "{action}"
                        ),
                        other => panic!("{action} on items {other:?}"),
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
                Some("xray") => assert!(is_xray_statement(&st), "{st:?}"),
                _ => panic!("{role_name} grants {action}"),
            }
        }
    }
    assert_eq!(
        datastores,
        (0..10).collect::<Vec<_>>(),
        "one grant per slot, each slot once"
    );

    // No other statement in the template grants HealthLake anything.
    let resources = Value::Mapping(resources);
    let mut all = Vec::new();
    statements(&resources, &mut all);
    let healthlake = all
        .iter()
        .filter(|st| text(&st["Action"]).contains("healthlake:"))
        .count();
    assert_eq!(healthlake, 1);
}

/// One resource of the HealthLake statement: a datastore ARN built from a `DatastoreIds` entry,
/// possibly under `!If [HasDatastoreN, <arn>, !Ref AWS::NoValue]`. Returns the entry's index.
fn datastore_arn(v: &Value) -> usize {
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
    let select = items(&select.value);
    let from = tag(select[1], "!Ref").expect("!Ref DatastoreIds");
    assert_eq!(from.value.as_str(), Some("DatastoreIds"));
    select[0].as_u64().expect("an index") as usize
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
        // Never the caller's own Origin echoed back: AllowedOrigins when it is one origin or *,
        // else no header.
        let origin = &resp["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"];
        let chosen = tag(origin, "!If").unwrap_or_else(|| panic!("{name:?}: {origin:?}"));
        assert_eq!(chosen.value[0].as_str(), Some("CorsOneOrAny"), "{name:?}");
        assert_eq!(
            tag(&chosen.value[1], "!Sub").map(|t| t.value.as_str()),
            Some(Some("'${AllowedOrigins}'"))
        );
        assert_eq!(
            tag(&chosen.value[2], "!Ref").map(|t| t.value.as_str()),
            Some(Some("AWS::NoValue"))
        );
    }
}

/// The preflight reaches the function without credentials: it has a throttle of its own, below
/// the API's; and API Gateway's logs role can be assumed for this account only.
#[test]
fn the_unauthenticated_preflight_is_throttled_apart_and_the_logs_role_is_this_accounts() {
    let t = template();
    let settings = t["Resources"]["Api"]["Properties"]["MethodSettings"]
        .as_sequence()
        .unwrap();
    let options = settings
        .iter()
        .find(|s| s["HttpMethod"].as_str() == Some("OPTIONS"))
        .expect("a method setting for OPTIONS");
    assert_eq!(
        options["ResourcePath"].as_str(),
        Some("/~1datastores~1{datastoreId}~1export-jobs~1{jobId}")
    );
    let rate = options["ThrottlingRateLimit"].as_u64().unwrap();
    let default_rate = t["Parameters"]["ThrottleRateLimit"]["Default"].as_u64().unwrap();
    assert!(rate < default_rate, "{rate} >= {default_rate}");
    let trust =
        &t["Resources"]["ApiGatewayLogsRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0];
    let account = &trust["Condition"]["StringEquals"]["aws:SourceAccount"];
    assert_eq!(
        tag(account, "!Ref").map(|t| t.value.as_str()),
        Some(Some("AWS::AccountId"))
    );
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
