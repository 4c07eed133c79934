//! Who asked, and what they may read. API Gateway has already authenticated the caller; this
//! decides, per request, whether that caller may read the datastore it asks for and which fields
//! the answer may carry.
//!
//! - An event that carries `requestContext.identity.apiKeyId` (REST API, payload 1.0: the only
//!   shape API keys come in) is an API-key caller, whatever the deployment's `AUTH_MODE`. It reads
//!   the datastores its partner mapping names and nothing else.
//! - With `AUTH_MODE=API_KEY`, every other event (no key id: an HTTP API, function URL or ALB
//!   event, a REST event without a key) reads nothing, so no event shape bypasses the mapping.
//! - With `AUTH_MODE=AWS_IAM` (the default), IAM has scoped the caller at API Gateway (the
//!   caller's policy names the datastore's path, see docs/partners.md); the function serves the
//!   deployment's datastores to an event that names an IAM principal (a REST API's
//!   `identity`, an HTTP API's or function URL's `authorizer.iam`). An event with no caller
//!   identity reads nothing: a front door without IAM (an ALB, an open route) is refused.
//! - With `AUTH_MODE=NONE` (never deployed: the template does not offer it), every event is
//!   served as in `AWS_IAM` mode, identity or not: for the local run and `sam local invoke`.
//!
//! The mapping lives in the status table (`STATUS_TABLE`), one item per key, read with GetItem
//! when a key is first seen and again once it is older than `PARTNER_REFRESH_MS` (at most a
//! minute). Whatever that read finds is what the key reads until the next one: an item without
//! `datastores` grants nothing, and an item that cannot be read as a mapping (or no item) refuses
//! the key, so that a revocation always takes effect within one refresh interval.
//! docs/partners.md has the item's shape and why it is read this way.

use crate::config::ConfigError;
use crate::ids::DatastoreId;
use crate::job::RenderedJob;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// "Refreshed within a minute": the longest a process may go on using a mapping it read.
pub(crate) const MAX_REFRESH: Duration = Duration::from_secs(60);
/// A mapping read is one GetItem that DynamoDB answers in milliseconds. Bounded well below the
/// HealthLake budget, so that an unreachable table costs the caller a second, not the request.
const MAPPING_TIMEOUT: Duration = Duration::from_millis(1_000);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Keys a process remembers. Only keys API Gateway has validated reach the function, so this is
/// the number of partners, not something a caller can grow; the bound is a backstop.
const MAX_KEYS: usize = 1_024;
/// Item attributes: see docs/partners.md.
pub(crate) const PK: &str = "pk";
pub(crate) const KEY_PREFIX: &str = "apikey#";
pub(crate) const DATASTORES: &str = "datastores";
pub(crate) const LABEL: &str = "label";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Callers sign with SigV4; IAM scopes them at API Gateway.
    AwsIam,
    /// Callers send a partner API key; the partner mapping scopes them here.
    ApiKey,
    /// No authentication in front: every event is served, identity or not. The local run and
    /// `sam local invoke` only; the template cannot deploy it.
    None,
}

/// Which fields an answer may carry. The caches hold the whole document, keyed by datastore and
/// job; [`Fields::restrict`] trims it for each caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fields {
    All,
    /// Without `outputS3Uri` (the customer's bucket and prefix layout), and without S3 locations
    /// or the bucket's name in `message`.
    WithoutOutputUri,
}

impl Fields {
    /// The answer this caller may be told: the cached document as it is, or re-rendered without
    /// what the caller may not see (its own body, so its own ETag). The caches hold the whole
    /// document, so no caller's answer is ever served to another kind of caller.
    pub(crate) fn restrict(self, rendered: Arc<RenderedJob>) -> Arc<RenderedJob> {
        match self {
            Fields::All => rendered,
            Fields::WithoutOutputUri => rendered.without_output_location().map_or(rendered, Arc::new),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeConfig {
    pub auth_mode: AuthMode,
    /// `STATUS_TABLE`: the DynamoDB table holding the partner mapping.
    pub status_table: Option<String>,
    /// `PARTNER_REFRESH_MS`: how long a mapping read is used before it is read again.
    pub partner_refresh: Duration,
    /// `API_KEY_OUTPUT_S3_URI`: what API-key callers are told (IAM callers get every field).
    pub api_key_fields: Fields,
}

impl Default for ScopeConfig {
    fn default() -> Self {
        ScopeConfig {
            auth_mode: AuthMode::AwsIam,
            status_table: None,
            partner_refresh: MAX_REFRESH,
            api_key_fields: Fields::WithoutOutputUri,
        }
    }
}

impl ScopeConfig {
    /// Reads the variables through `get`, which already treats an empty value as unset.
    pub(crate) fn from_vars(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let err = |variable, reason: String| ConfigError { variable, reason };
        let auth_mode = match get("AUTH_MODE").as_deref().map(str::trim) {
            None | Some("AWS_IAM") => AuthMode::AwsIam,
            Some("API_KEY") => AuthMode::ApiKey,
            Some("NONE") => AuthMode::None,
            Some(v) => return Err(err("AUTH_MODE", format!("{v:?} is not AWS_IAM, API_KEY or NONE"))),
        };
        let status_table = match get("STATUS_TABLE").map(|v| v.trim().to_owned()) {
            None => None,
            Some(t) if is_table_name(&t) => Some(t),
            Some(t) => {
                return Err(err(
                    "STATUS_TABLE",
                    format!("{t:?} is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)"),
                ))
            }
        };
        let partner_refresh = match get("PARTNER_REFRESH_MS") {
            None => MAX_REFRESH,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(ms) if (1..=MAX_REFRESH.as_millis() as u64).contains(&ms) => Duration::from_millis(ms),
                _ => {
                    return Err(err(
                        "PARTNER_REFRESH_MS",
                        format!("{v:?} is not a whole number from 1 to 60000"),
                    ))
                }
            },
        };
        let api_key_fields = match get("API_KEY_OUTPUT_S3_URI").as_deref().map(str::trim) {
            None | Some("omit") => Fields::WithoutOutputUri,
            Some("include") => Fields::All,
            Some(v) => {
                return Err(err(
                    "API_KEY_OUTPUT_S3_URI",
                    format!("{v:?} is not omit or include"),
                ))
            }
        };
        Ok(ScopeConfig {
            auth_mode,
            status_table,
            partner_refresh,
            api_key_fields,
        })
    }
}

fn is_table_name(t: &str) -> bool {
    (3..=255).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Who asked, as API Gateway identified them. Holds ids only: never a key's value, an ARN or an
/// account id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A REST API event with an API key's id (API Gateway validated the key before calling us).
    ApiKey(String),
    /// An `apiKeyId` that is not an id as API Gateway makes them: read nothing, log no id.
    BadApiKey,
    /// A REST API event signed by an IAM principal: its unique id (`AIDA...`, `AROA...`), without
    /// the session name or anything else.
    Iam(String),
    /// No identity in the event (an HTTP API, function URL or ALB event, the local server).
    Unidentified,
}

impl Caller {
    pub(crate) fn of(req: &Request) -> Caller {
        let ctx = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV1(ctx)) => ctx,
            // An HTTP API route or a function URL with IAM authorization: the signer is in
            // `authorizer.iam` (payload 2.0); there are no API keys in this shape.
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                return ctx
                    .authorizer
                    .as_ref()
                    .and_then(|a| a.iam.as_ref())
                    .and_then(|iam| {
                        [&iam.user_id, &iam.caller_id]
                            .into_iter()
                            .flatten()
                            .find_map(|p| principal_id(p))
                    })
                    .map_or(Caller::Unidentified, Caller::Iam);
            }
            _ => return Caller::Unidentified,
        };
        let identity = &ctx.identity;
        // A key id API Gateway sets is present or absent, never empty; treat empty as absent.
        if let Some(key) = identity.api_key_id.as_deref().filter(|k| !k.is_empty()) {
            return if is_key_id(key) {
                Caller::ApiKey(key.to_owned())
            } else {
                Caller::BadApiKey
            };
        }
        // `user` is "AIDA..." for a user, "AROA...:session" for a role; `caller` likewise.
        [&identity.user, &identity.caller]
            .into_iter()
            .flatten()
            .find_map(|p| principal_id(p))
            .map_or(Caller::Unidentified, Caller::Iam)
    }

    /// For the log line.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Caller::ApiKey(_) | Caller::BadApiKey => "api-key",
            Caller::Iam(_) => "iam",
            Caller::Unidentified => "unidentified",
        }
    }

    /// For the log line: the key's id or the principal's unique id.
    pub(crate) fn id(&self) -> Option<&str> {
        match self {
            Caller::ApiKey(id) | Caller::Iam(id) => Some(id),
            Caller::BadApiKey | Caller::Unidentified => None,
        }
    }
}

/// API key ids are short runs of letters and digits (`a1b2c3d4e5`).
fn is_key_id(k: &str) -> bool {
    (1..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The unique id of an IAM principal (`AIDA...`, `AROA...`: upper-case letters and digits) from
/// `user` or `caller`, without a role's session name. An account's root user is identified by
/// the account id itself, which is never logged: that, and anything else, gives `None`.
fn principal_id(p: &str) -> Option<String> {
    let id = p.split(':').next()?;
    let ok = (16..=128).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_uppercase())
        && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    ok.then(|| id.to_owned())
}

/// What a partner key may read: one item of the status table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub datastores: HashSet<DatastoreId>,
    /// The partner's name, for the log line.
    pub label: Option<String>,
}

/// Why an item cannot be used, naming the attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Mapping {
    /// Reads an item: `datastores` a String Set of datastore ids, `label` an optional String.
    pub(crate) fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Mapping, Malformed> {
        let bad = |s: String| Err(Malformed(s));
        let datastores = match item.get(DATASTORES) {
            Some(AttributeValue::Ss(ids)) => ids
                .iter()
                .map(|id| {
                    DatastoreId::parse(id).map_err(|e| {
                        Malformed(format!("{DATASTORES}: {:?} {e}", id.escape_debug().to_string()))
                    })
                })
                .collect::<Result<HashSet<_>, _>>()?,
            Some(_) => return bad(format!("{DATASTORES} is not a String Set (SS)")),
            // DynamoDB has no empty sets: deleting a key's last datastore from the set removes
            // the attribute. That is a revocation, not a malformed item.
            None => HashSet::new(),
        };
        let label = match item.get(LABEL) {
            None => None,
            Some(AttributeValue::S(l)) if is_label(l) => Some(l.clone()),
            Some(_) => {
                return bad(format!(
                    "{LABEL} is not a String of 1 to 64 characters without control characters"
                ))
            }
        };
        Ok(Mapping { datastores, label })
    }
}

/// Any short name an operator would write ("Acme Health, Inc."); no control characters, so that
/// a label cannot forge a line in a text view of the log.
fn is_label(l: &str) -> bool {
    (1..=64).contains(&l.chars().count()) && !l.chars().any(char::is_control)
}

/// Why a request was refused; every reason gets the same 404 `job-not-found`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denial {
    /// The key's mapping does not name this datastore.
    NotMapped,
    /// The key has no mapping item, or only a malformed one: it reads nothing.
    NoMapping,
    /// `AUTH_MODE=API_KEY` and the event carries no (usable) API key id.
    NoApiKey,
    /// `AUTH_MODE=AWS_IAM` and the event names no IAM principal (no authentication in front).
    NoIdentity,
    /// The mapping could not be read (no table configured, or the table did not answer).
    MappingUnavailable,
}

impl Denial {
    /// For the log line's `access` field.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Denial::NotMapped => "not-mapped",
            Denial::NoMapping => "no-mapping",
            Denial::NoApiKey => "no-api-key",
            Denial::NoIdentity => "no-identity",
            Denial::MappingUnavailable => "mapping-unavailable",
        }
    }
}

/// What a caller may be told about a datastore it may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub fields: Fields,
    /// The partner's label, for the log line.
    pub partner: Option<String>,
}

/// The per-process scoping state: the configuration and, with a table, the mapping reader.
pub(crate) struct Scope {
    config: ScopeConfig,
    partners: Option<Partners>,
}

impl Scope {
    /// Without a table client: API-key callers read nothing until [`Scope::connect`].
    pub(crate) fn new(config: ScopeConfig) -> Scope {
        Scope {
            config,
            partners: None,
        }
    }

    /// Builds the DynamoDB client from the function's SDK configuration (its HTTPS client,
    /// credentials and region; `AWS_ENDPOINT_URL_DYNAMODB` as the SDK reads it), when a table is
    /// configured. Without one, API-key callers read nothing, and start-up says so.
    pub(crate) fn connect(&mut self, sdk: &aws_config::SdkConfig) {
        match &self.config.status_table {
            Some(table) => {
                let timeouts = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_timeout(MAPPING_TIMEOUT)
                    .build();
                let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
                    .timeout_config(timeouts)
                    .build();
                self.partners = Some(Partners::new(
                    crate::upstream::lazy(move || aws_sdk_dynamodb::Client::from_conf(conf)),
                    table.clone(),
                    self.config.partner_refresh,
                ));
            }
            None if self.config.auth_mode == AuthMode::ApiKey => tracing::warn!(
                "AUTH_MODE is API_KEY but STATUS_TABLE is not set: API-key callers read nothing"
            ),
            None => {}
        }
    }

    /// May `caller` read `datastore` (one the deployment serves), and with which fields.
    pub(crate) async fn authorize(&self, caller: &Caller, datastore: &DatastoreId) -> Result<Grant, Denial> {
        match caller {
            Caller::ApiKey(key) => {
                let partners = self.partners.as_ref().ok_or(Denial::MappingUnavailable)?;
                let mapping = partners.mapping(key).await?.ok_or(Denial::NoMapping)?;
                if mapping.datastores.contains(datastore) {
                    Ok(Grant {
                        fields: self.config.api_key_fields,
                        partner: mapping.label.clone(),
                    })
                } else {
                    Err(Denial::NotMapped)
                }
            }
            Caller::BadApiKey => Err(Denial::NoApiKey),
            _ if self.config.auth_mode == AuthMode::ApiKey => Err(Denial::NoApiKey),
            Caller::Unidentified if self.config.auth_mode == AuthMode::AwsIam => Err(Denial::NoIdentity),
            Caller::Iam(_) | Caller::Unidentified => Ok(Grant {
                fields: Fields::All,
                partner: None,
            }),
        }
    }
}

/// Partner mappings as read from the table, each kept for the refresh interval. Read on the
/// request path, not by a timer: Lambda freezes the process between invocations, so a timer
/// would not run when it should, and a process that serves no API-key caller reads nothing.
pub(crate) struct Partners {
    /// Made when the first API-key caller comes.
    client: crate::upstream::LazyClient<aws_sdk_dynamodb::Client>,
    table: String,
    refresh: Duration,
    known: Mutex<HashMap<String, Known>>,
}

struct Known {
    /// `None`: no usable item, so the key reads nothing.
    mapping: Option<Arc<Mapping>>,
    read_at: Instant,
}

impl Partners {
    pub(crate) fn new(
        client: crate::upstream::LazyClient<aws_sdk_dynamodb::Client>,
        table: String,
        refresh: Duration,
    ) -> Partners {
        Partners {
            client,
            table,
            refresh,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The key's mapping, read again once older than the refresh interval. `Ok(None)`: the key
    /// has no usable mapping. `Err`: the table could not be read, so the caller is refused.
    pub(crate) async fn mapping(&self, key: &str) -> Result<Option<Arc<Mapping>>, Denial> {
        if let Some(k) = self
            .lock()
            .get(key)
            .filter(|k| k.read_at.elapsed() < self.refresh)
        {
            return Ok(k.mapping.clone());
        }
        let item_name = format!("{KEY_PREFIX}{key}");
        let read = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(item_name.clone()))
            .send()
            .await;
        let mapping = match read {
            Err(err) => {
                // Not remembered: the next request asks the table again.
                tracing::error!(
                    item = %item_name,
                    error = %sdk_error_code(&err),
                    "partner mapping could not be read: the API key's requests are refused"
                );
                return Err(Denial::MappingUnavailable);
            }
            Ok(out) => match out.item.as_ref().map(Mapping::from_item) {
                None => None,
                Some(Ok(mapping)) => Some(Arc::new(mapping)),
                // Never the last good one: a revoking write with a typo must still revoke.
                Some(Err(reason)) => {
                    tracing::error!(
                        item = %item_name,
                        reason = %reason,
                        "malformed partner mapping: the API key reads nothing until it is fixed"
                    );
                    None
                }
            },
        };
        let mut known = self.lock();
        if known.len() >= MAX_KEYS && !known.contains_key(key) {
            let refresh = self.refresh;
            known.retain(|_, k| k.read_at.elapsed() < refresh);
            if known.len() >= MAX_KEYS {
                known.clear();
            }
        }
        known.insert(
            key.to_owned(),
            Known {
                mapping: mapping.clone(),
                read_at: Instant::now(),
            },
        );
        Ok(mapping)
    }

    /// Nothing here can panic half-way through a mutation, so a poisoned lock is still sound.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The service's error code, or what kind of failure it was: for the log, never AWS's message.
fn sdk_error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> String {
    match err {
        SdkError::ServiceError(e) => e
            .err()
            .code()
            .map_or_else(|| "Unrecognized".to_owned(), crate::upstream::log_safe),
        SdkError::TimeoutError(_) => "Timeout".to_owned(),
        SdkError::DispatchFailure(d) if d.is_timeout() => "ConnectTimeout".to_owned(),
        SdkError::DispatchFailure(d) if d.is_io() => "ConnectionError".to_owned(),
        SdkError::DispatchFailure(_) => "DispatchFailure".to_owned(),
        SdkError::ResponseError(_) => "UnparseableResponse".to_owned(),
        SdkError::ConstructionFailure(_) => "ConstructionFailure".to_owned(),
        _ => "Unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(vars: &[(&str, &str)]) -> Result<ScopeConfig, ConfigError> {
        ScopeConfig::from_vars(&|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    /// A REST API (payload 1.0) event with this identity, as lambda_http reads it.
    fn rest_with_identity(identity: serde_json::Value) -> Request {
        let event = json!({
            "resource": "/datastores/{datastoreId}/export-jobs/{jobId}",
            "path": "/datastores/ds1/export-jobs/job1",
            "httpMethod": "GET",
            "headers": {},
            "multiValueHeaders": {},
            "pathParameters": {"datastoreId": "ds1", "jobId": "job1"},
            "requestContext": {
                "resourcePath": "/datastores/{datastoreId}/export-jobs/{jobId}",
                "httpMethod": "GET",
                "stage": "v1",
                "requestId": "r1",
                "accountId": "111122223333",
                "identity": identity,
                "apiId": "abc123defg"
            },
            "body": null,
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("a REST event")
    }

    fn ds(id: &str) -> DatastoreId {
        DatastoreId::parse(id).unwrap()
    }

    #[test]
    fn reads_the_variables() {
        let c = config(&[]).unwrap();
        assert_eq!(c, ScopeConfig::default());
        assert_eq!(c.auth_mode, AuthMode::AwsIam);
        assert_eq!(c.api_key_fields, Fields::WithoutOutputUri);
        let c = config(&[
            ("AUTH_MODE", "API_KEY"),
            ("STATUS_TABLE", "stack-status"),
            ("PARTNER_REFRESH_MS", "250"),
            ("API_KEY_OUTPUT_S3_URI", "include"),
        ])
        .unwrap();
        assert_eq!(c.auth_mode, AuthMode::ApiKey);
        assert_eq!(c.status_table.as_deref(), Some("stack-status"));
        assert_eq!(c.partner_refresh, Duration::from_millis(250));
        assert_eq!(c.api_key_fields, Fields::All);
        for (var, value) in [
            ("AUTH_MODE", "api_key"),
            ("AUTH_MODE", "none"),
            ("STATUS_TABLE", "ab"),
            ("STATUS_TABLE", "a table"),
            ("PARTNER_REFRESH_MS", "0"),
            ("PARTNER_REFRESH_MS", "60001"),
            ("API_KEY_OUTPUT_S3_URI", "yes"),
        ] {
            let e = config(&[(var, value)]).unwrap_err();
            assert_eq!(e.variable, var, "{value}");
        }
    }

    #[test]
    fn the_caller_is_taken_from_the_rest_identity_without_secrets() {
        let key = rest_with_identity(
            json!({"apiKeyId": "k1a2b3c4d5", "apiKey": "SECRETVALUE0123456789", "sourceIp": "203.0.113.1"}),
        );
        assert_eq!(Caller::of(&key), Caller::ApiKey("k1a2b3c4d5".into()));
        assert_eq!(Caller::of(&key).id(), Some("k1a2b3c4d5"));

        let role = rest_with_identity(json!({
            "user": "AROAEXAMPLEROLEID0001:app-session-123456789012",
            "caller": "AROAEXAMPLEROLEID0001:app-session-123456789012",
            "userArn": "arn:aws:sts::111122223333:assumed-role/App/app-session",
            "accountId": "111122223333"
        }));
        assert_eq!(Caller::of(&role), Caller::Iam("AROAEXAMPLEROLEID0001".into()));

        // The root user is identified by its account id, which is never logged.
        let root =
            rest_with_identity(json!({"user": "111122223333", "userArn": "arn:aws:iam::111122223333:root"}));
        assert_eq!(Caller::of(&root), Caller::Unidentified);

        let bad = rest_with_identity(json!({"apiKeyId": "a b\"c"}));
        assert_eq!(Caller::of(&bad), Caller::BadApiKey);
        assert_eq!(Caller::of(&bad).id(), None);

        let none = rest_with_identity(json!({"apiKeyId": "", "sourceIp": "203.0.113.1"}));
        assert_eq!(Caller::of(&none), Caller::Unidentified);

        let plain = lambda_http::http::Request::builder()
            .uri("/datastores/ds1/export-jobs/job1")
            .body(lambda_http::Body::Empty)
            .unwrap();
        assert_eq!(Caller::of(&plain), Caller::Unidentified);
    }

    #[tokio::test]
    async fn without_a_table_api_key_callers_read_nothing_in_any_mode() {
        for mode in [AuthMode::AwsIam, AuthMode::ApiKey] {
            let scope = Scope::new(ScopeConfig {
                auth_mode: mode,
                ..ScopeConfig::default()
            });
            let key = Caller::ApiKey("k1".into());
            assert_eq!(
                scope.authorize(&key, &ds("ds1")).await,
                Err(Denial::MappingUnavailable)
            );
            assert_eq!(
                scope.authorize(&Caller::BadApiKey, &ds("ds1")).await,
                Err(Denial::NoApiKey)
            );
        }
    }

    #[tokio::test]
    async fn api_key_mode_refuses_every_caller_without_a_key() {
        let scope = Scope::new(ScopeConfig {
            auth_mode: AuthMode::ApiKey,
            ..ScopeConfig::default()
        });
        for caller in [Caller::Iam("AIDAEXAMPLEUSERID0001".into()), Caller::Unidentified] {
            assert_eq!(
                scope.authorize(&caller, &ds("ds1")).await,
                Err(Denial::NoApiKey),
                "{caller:?}"
            );
        }
        let iam = Scope::new(ScopeConfig::default());
        let grant = iam
            .authorize(&Caller::Iam("AIDAEXAMPLEUSERID0001".into()), &ds("ds1"))
            .await
            .unwrap();
        assert_eq!(grant.fields, Fields::All);
        // No identity: no authentication in front, so nothing is read...
        assert_eq!(
            iam.authorize(&Caller::Unidentified, &ds("ds1")).await,
            Err(Denial::NoIdentity)
        );
        // ...except under the explicit mode of the local run.
        let open = Scope::new(ScopeConfig {
            auth_mode: AuthMode::None,
            ..ScopeConfig::default()
        });
        for caller in [Caller::Iam("AIDAEXAMPLEUSERID0001".into()), Caller::Unidentified] {
            assert_eq!(
                open.authorize(&caller, &ds("ds1")).await.unwrap().fields,
                Fields::All
            );
        }
        assert_eq!(
            open.authorize(&Caller::BadApiKey, &ds("ds1")).await,
            Err(Denial::NoApiKey)
        );
    }

    #[test]
    fn an_http_api_or_function_url_caller_is_its_iam_principal() {
        let event = json!({
            "version": "2.0",
            "routeKey": "GET /datastores/{datastoreId}/export-jobs/{jobId}",
            "rawPath": "/datastores/ds1/export-jobs/job1",
            "rawQueryString": "",
            "headers": {"host": "abc.execute-api.us-east-1.amazonaws.com"},
            "requestContext": {
                "accountId": "111122223333",
                "apiId": "abc",
                "domainName": "abc.execute-api.us-east-1.amazonaws.com",
                "http": {"method": "GET", "path": "/datastores/ds1/export-jobs/job1", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "t"},
                "requestId": "r1", "routeKey": "$default", "stage": "$default", "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0,
                "authorizer": {"iam": {
                    "accessKey": "ASIAEXAMPLE", "accountId": "111122223333",
                    "callerId": "AROAEXAMPLEROLEID0001:session",
                    "userArn": "arn:aws:sts::111122223333:assumed-role/R/session",
                    "userId": "AROAEXAMPLEROLEID0001:session"
                }}
            },
            "isBase64Encoded": false
        });
        let req = lambda_http::request::from_str(&event.to_string()).expect("an HTTP API event");
        assert_eq!(Caller::of(&req), Caller::Iam("AROAEXAMPLEROLEID0001".into()));
        let mut bare = event.clone();
        bare["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("authorizer");
        let req = lambda_http::request::from_str(&bare.to_string()).unwrap();
        assert_eq!(Caller::of(&req), Caller::Unidentified);
    }

    #[test]
    fn reads_a_mapping_item_and_names_what_is_wrong() {
        let item = |pairs: Vec<(&str, AttributeValue)>| -> HashMap<String, AttributeValue> {
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        };
        let good = Mapping::from_item(&item(vec![
            (PK, AttributeValue::S("apikey#k1".into())),
            (DATASTORES, AttributeValue::Ss(vec!["ds1".into(), "ds2".into()])),
            (LABEL, AttributeValue::S("Acme Health, Inc.".into())),
        ]))
        .unwrap();
        assert_eq!(good.datastores, [ds("ds1"), ds("ds2")].into());
        assert_eq!(good.label.as_deref(), Some("Acme Health, Inc."));

        // No `datastores` (DynamoDB removes a set whose last member is deleted): an empty grant.
        let revoked = Mapping::from_item(&item(vec![(PK, AttributeValue::S("apikey#k1".into()))])).unwrap();
        assert!(revoked.datastores.is_empty());
        for (attrs, names) in [
            (vec![(DATASTORES, AttributeValue::S("ds1".into()))], "String Set"),
            (
                vec![(
                    DATASTORES,
                    AttributeValue::L(vec![AttributeValue::S("ds1".into())]),
                )],
                "String Set",
            ),
            (
                vec![(
                    DATASTORES,
                    AttributeValue::Ss(vec!["ds1".into(), "bad#id".into()]),
                )],
                "bad#id",
            ),
            (
                vec![
                    (DATASTORES, AttributeValue::Ss(vec!["ds1".into()])),
                    (LABEL, AttributeValue::N("1".into())),
                ],
                LABEL,
            ),
            (
                vec![
                    (DATASTORES, AttributeValue::Ss(vec!["ds1".into()])),
                    (LABEL, AttributeValue::S("Acme\nforged line".into())),
                ],
                LABEL,
            ),
        ] {
            let err = Mapping::from_item(&item(attrs)).unwrap_err();
            assert!(err.0.contains(names), "{err} should name {names}");
        }
    }
}
