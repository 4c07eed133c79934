//! openapi.yaml documents exactly the problems the function answers: every problem response
//! lists the types it can carry and its status, and together they are the error table.

use export_job_status::error::Error;
use serde_yaml::Value;
use std::collections::BTreeSet;

const PROBLEM_TYPE_PREFIX: &str = "urn:problem-type:export-job-status:";

fn openapi() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// (status, slug) of every problem response in `components.responses`: the `status` const and
/// the `type` enum of the schema that narrows `Problem`.
fn documented(doc: &Value) -> BTreeSet<(u16, String)> {
    let mut found = BTreeSet::new();
    let responses = doc["components"]["responses"].as_mapping().unwrap();
    for (name, resp) in responses {
        let schema = &resp["content"]["application/problem+json"]["schema"];
        let Some(parts) = schema["allOf"].as_sequence() else {
            panic!("{name:?}: a problem response narrows Problem with allOf");
        };
        let narrowed = &parts[1]["properties"];
        let status = narrowed["status"]["const"].as_u64().unwrap() as u16;
        for t in narrowed["type"]["enum"].as_sequence().unwrap() {
            let slug = t.as_str().unwrap().strip_prefix(PROBLEM_TYPE_PREFIX).unwrap();
            found.insert((status, slug.to_owned()));
        }
    }
    found
}

#[test]
fn openapi_lists_exactly_the_error_tables_problems() {
    let table: BTreeSet<(u16, String)> = Error::every_case()
        .iter()
        .map(|e| {
            let case = e.case();
            (case.status.as_u16(), case.slug.to_owned())
        })
        .collect();
    assert_eq!(documented(&openapi()), table);
}

#[test]
fn each_operations_error_codes_point_at_responses_of_that_status() {
    let doc = openapi();
    let responses = &doc["components"]["responses"];
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, op) in item.as_mapping().unwrap() {
            let Some(codes) = op["responses"].as_mapping() else {
                continue;
            };
            for (code, resp) in codes {
                let code: u16 = code.as_str().unwrap().parse().unwrap();
                let Some(target) = resp["$ref"].as_str() else {
                    continue;
                };
                let name = target.strip_prefix("#/components/responses/").unwrap();
                let schema = &responses[name]["content"]["application/problem+json"]["schema"];
                assert_eq!(
                    schema["allOf"][1]["properties"]["status"]["const"].as_u64(),
                    Some(u64::from(code)),
                    "{path:?} {method:?} {code} points at {name}"
                );
            }
        }
    }
}
