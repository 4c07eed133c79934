//! Who asked, as the event's front door identified them: a partner's API key id or an IAM
//! principal's unique id, never a key's value, an ARN or an account id.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
