//! Property tests. The id rule against the regex crate's reading of HealthLake's model pattern;
//! and every response the handler renders, whatever HealthLake answered, through the real SDK
//! client (an in-process HTTP client answers its calls, so the SDK's own deserialisation runs).

use crate::common::job_path;
use aws_credential_types::Credentials;
use aws_sdk_healthlake::config::Region;
use aws_smithy_http_client::test_util::infallible_client_fn;
use export_job_status::aws::sdk_config_loader;
use export_job_status::config::{AllowedOrigins, Config};
use export_job_status::handler::{handle, App};
use export_job_status::ids::{DatastoreId, JobId, MAX_LEN};
use lambda_http::http::{self, Method};
use lambda_http::{Body, Response};
use proptest::prelude::*;
use regex::Regex;
use regex_syntax::hir::{Class, ClassUnicode, HirKind};
use serde_json::{json, Value};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

// ---- Ids ----

/// HealthLake's model pattern for DatastoreId and JobId, as the model writes it.
const MODEL_PATTERN: &str = r"^([\p{L}\p{Z}\p{N}_.:/=+\-%@]*)$";

static MODEL: LazyLock<Regex> = LazyLock::new(|| Regex::new(MODEL_PATTERN).unwrap());
/// The contract's timestamps (openapi.yaml): RFC 3339, UTC, milliseconds.
static TIMESTAMP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$").unwrap());

/// regex's Unicode tables are version 16; the function's (unicode-properties) are version 18. A
/// code point assigned in 17 or 18 is unassigned (`\p{Cn}`) to regex, so regex cannot say
/// whether it is a letter: those code points are left out of the comparison, and the exhaustive
/// test below proves that they are the only ones where the two differ.
static REGEX_UNASSIGNED: LazyLock<ClassUnicode> = LazyLock::new(|| unicode_class(r"\p{Cn}"));

/// The character class of a one-class pattern, as regex's parser reads it.
fn unicode_class(pattern: &str) -> ClassUnicode {
    let hir = regex_syntax::parse(pattern).unwrap();
    match hir.kind() {
        HirKind::Class(Class::Unicode(class)) => class.clone(),
        other => panic!("{pattern} is not a Unicode class: {other:?}"),
    }
}

fn in_class(class: &ClassUnicode, c: char) -> bool {
    class.ranges().iter().any(|r| r.start() <= c && c <= r.end())
}

fn known_to_regex(c: &char) -> bool {
    !in_class(&REGEX_UNASSIGNED, *c)
}

/// Characters from everywhere, weighted towards the ones the rule is about.
fn id_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        3 => proptest::char::ranges(vec!['a'..='z', '0'..='9', ' '..='/', ':'..='@'].into()),
        2 => proptest::sample::select(vec![
            '_', '.', ':', '/', '=', '+', '-', '%', '@', '#', '?', '\t', '\n', '\u{00A0}',
            '\u{2028}', '\u{2029}', '\u{3000}', '\u{200B}', '\u{0301}', '\u{093E}', 'Ⅻ', '½',
            '٣', 'ǅ', 'ʰ', 'デ', '😀', '€',
        ]),
        // Letters, marks, numbers and symbols of other scripts.
        2 => proptest::char::range('\u{0080}', '\u{33FF}'),
    ]
    .prop_filter("assigned in regex's Unicode tables", known_to_regex)
}

fn id_string() -> impl Strategy<Value = String> {
    prop::collection::vec(id_char(), 0..=40).prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_id_rule_is_the_model_pattern_and_1_to_32_characters(s in id_string()) {
        let model = MODEL.is_match(&s) && (1..=MAX_LEN).contains(&s.chars().count());
        prop_assert_eq!(DatastoreId::parse(&s).is_ok(), model, "{:?}", s);
        prop_assert_eq!(JobId::parse(&s).is_ok(), model, "{:?}", s);
        if let Ok(id) = JobId::parse(&s) {
            prop_assert_eq!(id.as_str(), s.as_str());
        }
    }
}

/// Every code point, one at a time, against the class regex reads from the model pattern:
/// they agree wherever regex's tables assign the code point.
#[test]
fn every_code_point_agrees_with_the_model_class_where_regex_knows_it() {
    let class = unicode_class(r"[\p{L}\p{Z}\p{N}_.:/=+\-%@]");
    let mut newer = 0;
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        let ours = JobId::parse(c.encode_utf8(&mut [0; 4])).is_ok();
        if known_to_regex(&c) {
            assert_eq!(ours, in_class(&class, c), "U+{:04X}", u32::from(c));
        } else if ours {
            newer += 1; // a letter, number or separator assigned after Unicode 16
        }
    }
    // Unicode 17 and 18 assigned about 17,500 such letters and numbers (17,480 when this was
    // written): a sign that the function's tables really are newer, and that the skip above is
    // not hiding everything.
    eprintln!("{newer} code points accepted that regex's Unicode 16 tables leave unassigned");
    assert!((1..25_000).contains(&newer), "{newer} newer code points accepted");
}

// ---- Responses, whatever HealthLake answered ----

/// What identifies the account: none of it may reach a response.
#[derive(Debug, Clone)]
struct Secrets {
    account: String,
    key_id: String,
    role_arn: String,
    kms_arn: String,
}

fn secrets() -> impl Strategy<Value = Secrets> {
    (
        "[0-9]{12}",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[A-Za-z][A-Za-z0-9+=,.@_-]{0,20}",
        prop::sample::select(vec!["us-east-1", "eu-west-2", "ap-southeast-2"]),
        prop::sample::select(vec!["aws", "aws-us-gov", "aws-cn"]),
    )
        .prop_map(|(account, key_id, role, region, partition)| Secrets {
            role_arn: format!("arn:{partition}:iam::{account}:role/{role}"),
            kms_arn: format!("arn:{partition}:kms:{region}:{account}:key/{key_id}"),
            account,
            key_id,
        })
}

/// Text as HealthLake writes it: words, numbers, paths and the secrets, at word boundaries
/// (joined by spaces, punctuation, dashes or slashes, as in messages, ARNs and bucket names). A
/// secret glued to letters or digits ("acct123456789012") is another token and not covered.
fn text(s: &Secrets) -> impl Strategy<Value = String> {
    let token = prop_oneof![
        3 => "[A-Za-z]{1,10}",
        2 => "[0-9]{1,6}",
        1 => "[0-9a-f]{1,12}",
        1 => Just(s.account.clone()),
        1 => Just(s.key_id.clone()),
        1 => Just(s.role_arn.clone()),
        1 => Just(s.kms_arn.clone()),
        1 => "\\PC{1,8}",
    ];
    let sep = prop::sample::select(vec![
        " ", ", ", ": ", ":", "/", "-", "_", ".", "(", ")", "=", "\n", "'",
    ]);
    prop::collection::vec((token, sep), 0..8)
        .prop_map(|parts| parts.into_iter().map(|(t, s)| format!("{t}{s}")).collect())
}

fn s3_uri(s: &Secrets) -> impl Strategy<Value = String> {
    let part = prop_oneof![
        2 => "[a-z]{1,10}",
        1 => "[0-9]{1,4}",
        1 => Just(s.account.clone()),
    ];
    (
        prop::collection::vec(part, 1..5),
        prop::collection::vec(text(s), 0..3),
    )
        .prop_map(|(bucket, prefix)| format!("s3://{}/{}", bucket.join("-"), prefix.join("/")))
}

#[derive(Debug, Clone)]
enum Upstream {
    Job(Value),
    Error { status: u16, body: Value },
    Raw { status: u16, body: String },
}

const STATUSES: [&str; 10] = [
    "SUBMITTED",
    "QUEUED",
    "IN_PROGRESS",
    "COMPLETED",
    "COMPLETED_WITH_ERRORS",
    "FAILED",
    "CANCEL_SUBMITTED",
    "CANCEL_IN_PROGRESS",
    "CANCEL_COMPLETED",
    "CANCEL_FAILED",
];

/// Any answer HealthLake could give about `ds`/`job`, sprinkled with `s`.
fn upstream(s: Secrets, ds: String, job: String) -> impl Strategy<Value = Upstream> {
    let status = prop_oneof![
        4 => prop::sample::select(STATUSES.to_vec()).prop_map(str::to_owned),
        1 => "[A-Z_]{1,24}",
        1 => "\\PC{0,12}",
    ];
    let time = prop_oneof![
        4 => 1_500_000_000.0..1_900_000_000.0f64,
        1 => Just(0.0),
        1 => -1e11..1e11f64,
        1 => Just(1e20),
    ];
    let job_id = prop_oneof![4 => Just(job), 1 => "[a-z0-9]{1,32}"];
    let job_value = (
        job_id,
        status,
        time.clone(),
        proptest::option::of(time),
        proptest::option::of("[A-Za-z0-9 _-]{0,20}"),
        proptest::option::of(text(&s)),
        proptest::option::of(s3_uri(&s)),
        any::<bool>(),
    )
        .prop_map({
            let s = s.clone();
            move |(job_id, status, submit, end, name, message, uri, with_kms)| {
                let mut props = json!({
                    "JobId": job_id,
                    "DatastoreId": ds,
                    "JobStatus": status,
                    "SubmitTime": submit,
                    "DataAccessRoleArn": s.role_arn,
                });
                let mut s3 = json!({"S3Uri": uri.unwrap_or_else(|| format!("s3://exports-{}/", s.account))});
                if with_kms {
                    s3["KmsKeyId"] = json!(s.kms_arn);
                }
                props["OutputDataConfig"] = json!({"S3Configuration": s3});
                for (key, value) in [
                    ("EndTime", end.map(|e| json!(e))),
                    ("JobName", name.map(|n| json!(n))),
                    ("Message", message.map(|m| json!(m))),
                ] {
                    if let Some(v) = value {
                        props[key] = v;
                    }
                }
                Upstream::Job(props)
            }
        });
    let code = prop_oneof![
        prop::sample::select(vec![
            "ValidationException",
            "ResourceNotFoundException",
            "ThrottlingException",
            "AccessDeniedException",
            "UnrecognizedClientException",
            "InternalServerException",
            "ServiceUnavailable",
            "ExpiredTokenException",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z#.]{1,30}",
    ];
    let http_status = prop::sample::select(vec![200u16, 400, 403, 404, 408, 429, 500, 502, 503, 504]);
    let error = (http_status.clone(), code, text(&s)).prop_map(|(status, code, message)| Upstream::Error {
        status,
        body: json!({"__type": format!("com.amazonaws.healthlake#{code}"), "message": message}),
    });
    let raw = (http_status, text(&s)).prop_map(|(status, body)| Upstream::Raw { status, body });
    prop_oneof![6 => job_value, 3 => error, 1 => raw]
}

#[derive(Debug, Clone)]
struct Call {
    method: Method,
    ds: String,
    job: String,
    if_none_match: Option<String>,
    origin: Option<String>,
}

fn call() -> impl Strategy<Value = Call> {
    let id = prop_oneof![8 => "[a-z0-9][a-z0-9-]{0,31}", 1 => "[a-z%#]{1,5}", 1 => Just(String::new())];
    (
        prop::sample::select(vec![
            Method::GET,
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::POST,
        ]),
        id.clone(),
        id,
        proptest::option::of(prop_oneof![Just("*".to_owned()), "\"[0-9a-f]{16}\""]),
        proptest::option::of(prop::sample::select(vec![
            "https://app.example.com".to_owned(),
            "https://evil.example.com".to_owned(),
        ])),
    )
        .prop_map(|(method, ds, job, if_none_match, origin)| Call {
            method,
            ds,
            job,
            if_none_match,
            origin,
        })
}

/// One client for every case, as in Lambda; its HTTP client answers with the current case's
/// upstream answer.
struct World {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_healthlake::Client,
    answer: Arc<Mutex<Option<Upstream>>>,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer: Arc<Mutex<Option<Upstream>>> = Arc::default();
    let current = answer.clone();
    let sdk = rt.block_on(
        sdk_config_loader(&config())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDPROP",
                "prop-secret",
                None,
                None,
                "properties",
            ))
            .http_client(infallible_client_fn(move |_req| {
                let (status, body) = match current.lock().unwrap().clone().expect("an answer") {
                    Upstream::Job(props) => (200, json!({ "ExportJobProperties": props }).to_string()),
                    Upstream::Error { status, body } => (status, body.to_string()),
                    Upstream::Raw { status, body } => (status, body),
                };
                http::Response::builder()
                    .status(status)
                    .header("content-type", "application/x-amz-json-1.0")
                    .body(body)
                    .unwrap()
            }))
            .load(),
    );
    World {
        rt,
        client: aws_sdk_healthlake::Client::new(&sdk),
        answer,
    }
});

fn config() -> Config {
    Config {
        allowed_origins: AllowedOrigins::List(vec!["https://app.example.com".into()]),
        // One attempt: retries of throttled or failed answers would only add backoff sleeps.
        max_attempts: 1,
        upstream_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

fn render(call: &Call, answer: Upstream) -> Response<Body> {
    let world = &*WORLD;
    *world.answer.lock().unwrap() = Some(answer);
    let app = App::new(world.client.clone(), config());
    let mut req = crate::common::request(call.method.clone(), &job_path(&call.ds, &call.job));
    if let Some(v) = &call.if_none_match {
        req.headers_mut().insert("if-none-match", v.parse().unwrap());
    }
    if let Some(v) = &call.origin {
        req.headers_mut().insert("origin", v.parse().unwrap());
    }
    world.rt.block_on(handle(&app, req))
}

fn case() -> impl Strategy<Value = (Call, Secrets, Upstream)> {
    (call(), secrets()).prop_flat_map(|(call, s)| {
        let up = upstream(s.clone(), call.ds.clone(), call.job.clone());
        (Just(call), Just(s), up)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn every_response_is_well_formed_and_never_identifies_the_account((call, s, answer) in case()) {
        let resp = render(&call, answer);
        let status = resp.status().as_u16();
        let content_type = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let empty = call.method == Method::HEAD || status == 204 || status == 304;
        match (resp.body(), empty) {
            (Body::Empty, true) => {}
            (Body::Text(text), false) => {
                let v: Value = serde_json::from_str(text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
                prop_assert!(v.is_object());
                for key in ["submittedAt", "endedAt"] {
                    if let Some(t) = v.get(key) {
                        prop_assert!(t.as_str().is_some_and(|t| TIMESTAMP.is_match(t)), "{}: {}", key, t);
                    }
                }
            }
            (other, _) => prop_assert!(false, "{} {status}: body {other:?}", call.method),
        }
        let want_type = match status {
            200 => Some("application/json"),
            204 | 304 => None,
            _ => Some("application/problem+json"),
        };
        prop_assert_eq!(content_type.as_deref(), want_type, "{}", status);

        let mut all = format!("{:?}", resp.headers());
        if let Body::Text(t) = resp.body() {
            all.push_str(t);
        }
        for secret in [&s.account, &s.key_id, &s.role_arn, &s.kms_arn] {
            prop_assert!(!all.contains(secret.as_str()), "leaks {secret}: {all}");
        }
    }
}

/// Found by the property above: an account id after a dash-joined number ("2024-123456789012",
/// as in a bucket name) or after a key id came through `scrub` whole.
#[test]
fn account_ids_after_dash_joined_numbers_are_redacted() {
    use export_job_status::job::redact::scrub;
    assert_eq!(
        scrub("s3://exports-2024-123456789012/x/"),
        "s3://exports-2024-[redacted]/x/"
    );
    assert_eq!(
        scrub("key 1234abcd-12ab-34cd-56ef-1234567890ab-123456789012"),
        "key [redacted]-[redacted]"
    );
}

/// Found by the property above: a time before year 0 rendered as "-1182-12-19T01:02:28.673Z",
/// which is not RFC 3339. Such an answer is not a usable job: 502.
#[test]
fn times_before_year_0_are_not_rendered() {
    use aws_smithy_types::DateTime;
    use export_job_status::job::rfc3339_millis;
    assert_eq!(rfc3339_millis(&DateTime::from_secs(-100_000_000_000)), None);
    assert_eq!(
        rfc3339_millis(&DateTime::from_secs(-62_167_219_200)).as_deref(),
        Some("0000-01-01T00:00:00.000Z")
    );
}
