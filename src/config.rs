//! Configuration from environment variables, read once at start-up. Bad configuration is an
//! error that stops start-up with a message naming the variable, never a surprise at request time.

use crate::ids::DatastoreId;
use crate::telemetry::metrics;
use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_millis(5_000);
const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// API Gateway gives up after 29 s; a budget above that could never be honoured.
const MAX_UPSTREAM_TIMEOUT_MS: u64 = 29_000;
const MAX_ATTEMPTS_LIMIT: u32 = 10;

/// A running job's answer is fresh this long. The function tells pollers to come back after 2 to
/// 30 s (`reply::poll_after_secs`), so refreshing faster than every 2 s shows no one anything
/// new; 3 s keeps 24 running or queued jobs fresh within the default budget of 8 calls a second.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_millis(3_000);
/// Below HealthLake's 10 DescribeFHIRExportJob calls per second per account, leaving 2 for the
/// console and the tools that start exports.
pub const DEFAULT_UPSTREAM_RATE: u32 = 8;
/// How old an answer may be and still be served when HealthLake cannot be asked.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(60);
/// The shared table's own time budget per call: DynamoDB answers in single-digit milliseconds
/// in-region, so a call this slow is failing and the function goes on without it.
pub const DEFAULT_TABLE_TIMEOUT: Duration = Duration::from_millis(150);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// CORS is off: no `Access-Control-*` headers.
    None,
    /// `*`: every origin is echoed.
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::None => false,
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        *self != AllowedOrigins::None
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub allowed_origins: AllowedOrigins,
    /// `None` means every datastore the role can read.
    pub allowed_datastores: Option<HashSet<DatastoreId>>,
    pub upstream_timeout: Duration,
    pub max_attempts: u32,
    /// Who may read what, and which fields they are told (see `access`).
    pub access: AccessConfig,
    /// `STATUS_TABLE`: the DynamoDB table of the fleet's shared tier and of partner mappings;
    /// `None` keeps the memory tier only, and API-key callers read nothing.
    pub status_table: Option<String>,
    /// `METRICS_NAMESPACE`: where the request lines' metrics go (see `metrics`).
    pub metrics_namespace: String,
    pub fleet: FleetConfig,
    /// `BASE_PATH`: a path prefix in front of the route (a custom domain's base path mapping),
    /// without its trailing slash; see `route`.
    pub base_path: Option<String>,
}

/// Where the SDK may be pointed instead of AWS's endpoints; `http://` is for loopback only.
pub const ENDPOINT_VARS: [&str; 3] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_HEALTHLAKE",
    "AWS_ENDPOINT_URL_DYNAMODB",
];

/// The shared tier (`STATUS_TABLE`) and the fleet-wide upstream budget: see docs/fleet.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    pub refresh_interval: Duration,
    /// HealthLake calls per second for the whole fleet.
    pub upstream_rate: u32,
    pub max_stale: Duration,
    pub table_timeout: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            upstream_rate: DEFAULT_UPSTREAM_RATE,
            max_stale: DEFAULT_MAX_STALE,
            table_timeout: DEFAULT_TABLE_TIMEOUT,
        }
    }
}

/// "Refreshed within a minute": the longest a process may go on using a partner mapping it read.
pub const MAX_PARTNER_REFRESH: Duration = Duration::from_secs(60);

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

/// Who may read what (see `access`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// `AUTH_MODE`.
    pub auth_mode: AuthMode,
    /// `PARTNER_REFRESH_MS`: how long a mapping read is used before it is read again.
    pub partner_refresh: Duration,
    /// `API_KEY_OUTPUT_S3_URI`: whether API-key callers are told where the export went (IAM
    /// callers always are).
    pub api_key_output_uri: bool,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            auth_mode: AuthMode::AwsIam,
            partner_refresh: MAX_PARTNER_REFRESH,
            api_key_output_uri: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            allowed_origins: AllowedOrigins::None,
            allowed_datastores: None,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            access: AccessConfig::default(),
            status_table: None,
            metrics_namespace: metrics::DEFAULT_NAMESPACE.to_owned(),
            fleet: FleetConfig::default(),
            base_path: None,
        }
    }
}

/// A variable that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}: {}", self.variable, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup` so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // An empty variable means "not set": SAM passes empty parameters through as "".
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let err = |variable, reason: String| ConfigError { variable, reason };

        let allowed_origins = match get("ALLOWED_ORIGINS") {
            None => AllowedOrigins::None,
            Some(v) if v.trim() == "*" => AllowedOrigins::Any,
            Some(v) => AllowedOrigins::List(
                split_list(&v)
                    .map(|o| parse_origin(o).map_err(|r| err("ALLOWED_ORIGINS", r)))
                    .collect::<Result<_, _>>()?,
            ),
        };

        let allowed_datastores = get("ALLOWED_DATASTORE_IDS")
            .map(|v| {
                split_list(&v)
                    .map(|id| {
                        DatastoreId::parse(id)
                            .map_err(|e| err("ALLOWED_DATASTORE_IDS", format!("{id:?} {e}")))
                    })
                    .collect::<Result<HashSet<_>, _>>()
            })
            .transpose()?;

        let upstream_timeout = match get("UPSTREAM_TIMEOUT_MS") {
            None => DEFAULT_UPSTREAM_TIMEOUT,
            Some(v) => Duration::from_millis(
                parse_in_range(&v, 1, MAX_UPSTREAM_TIMEOUT_MS).map_err(|r| err("UPSTREAM_TIMEOUT_MS", r))?,
            ),
        };

        let max_attempts = match get("UPSTREAM_MAX_ATTEMPTS") {
            None => DEFAULT_MAX_ATTEMPTS,
            Some(v) => parse_in_range(&v, 1, u64::from(MAX_ATTEMPTS_LIMIT))
                .map_err(|r| err("UPSTREAM_MAX_ATTEMPTS", r))? as u32,
        };

        let metrics_namespace = match get(metrics::NAMESPACE_VAR) {
            None => metrics::DEFAULT_NAMESPACE.to_owned(),
            Some(v) => metrics::parse_namespace(&v).map_err(|r| err(metrics::NAMESPACE_VAR, r))?,
        };
        let fleet = fleet_from(&get)?;
        let status_table = get("STATUS_TABLE")
            .map(|v| {
                let v = v.trim().to_owned();
                // DynamoDB's rule for table names.
                let ok = (3..=255).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                if ok {
                    Ok(v)
                } else {
                    Err(err(
                        "STATUS_TABLE",
                        format!("{v:?} is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)"),
                    ))
                }
            })
            .transpose()?;
        let base_path = get("BASE_PATH")
            .map(|v| parse_base_path(v.trim()).map_err(|r| err("BASE_PATH", r)))
            .transpose()?;
        for var in ENDPOINT_VARS {
            if let Some(url) = get(var) {
                check_endpoint(url.trim()).map_err(|r| err(var, r))?;
            }
        }

        Ok(Config {
            allowed_origins,
            allowed_datastores,
            upstream_timeout,
            max_attempts,
            access: access_from(&get)?,
            status_table,
            metrics_namespace,
            fleet,
            base_path,
        })
    }

    pub(crate) fn datastore_allowed(&self, id: &DatastoreId) -> bool {
        self.allowed_datastores
            .as_ref()
            .is_none_or(|set| set.contains(id))
    }
}

fn access_from(get: &impl Fn(&str) -> Option<String>) -> Result<AccessConfig, ConfigError> {
    let err = |variable, reason: String| ConfigError { variable, reason };
    let auth_mode = match get("AUTH_MODE").as_deref().map(str::trim) {
        None | Some("AWS_IAM") => AuthMode::AwsIam,
        Some("API_KEY") => AuthMode::ApiKey,
        Some("NONE") => AuthMode::None,
        Some(v) => return Err(err("AUTH_MODE", format!("{v:?} is not AWS_IAM, API_KEY or NONE"))),
    };
    let partner_refresh = match get("PARTNER_REFRESH_MS") {
        None => MAX_PARTNER_REFRESH,
        Some(v) => Duration::from_millis(
            parse_in_range(&v, 1, MAX_PARTNER_REFRESH.as_millis() as u64)
                .map_err(|r| err("PARTNER_REFRESH_MS", r))?,
        ),
    };
    let api_key_output_uri = match get("API_KEY_OUTPUT_S3_URI").as_deref().map(str::trim) {
        None | Some("omit") => false,
        Some("include") => true,
        Some(v) => {
            return Err(err(
                "API_KEY_OUTPUT_S3_URI",
                format!("{v:?} is not omit or include"),
            ))
        }
    };
    Ok(AccessConfig {
        auth_mode,
        partner_refresh,
        api_key_output_uri,
    })
}

fn fleet_from(get: &impl Fn(&str) -> Option<String>) -> Result<FleetConfig, ConfigError> {
    let err = |variable, reason: String| ConfigError { variable, reason };
    let number = |name: &'static str, default: u64, min: u64, max: u64| match get(name) {
        None => Ok(default),
        Some(v) => parse_in_range(&v, min, max).map_err(|r| err(name, r)),
    };
    Ok(FleetConfig {
        refresh_interval: Duration::from_millis(number(
            "REFRESH_INTERVAL_MS",
            DEFAULT_REFRESH_INTERVAL.as_millis() as u64,
            100,
            300_000,
        )?),
        upstream_rate: number(
            "UPSTREAM_RATE_PER_SEC",
            u64::from(DEFAULT_UPSTREAM_RATE),
            1,
            1_000,
        )? as u32,
        max_stale: Duration::from_secs(number("MAX_STALE_SECS", DEFAULT_MAX_STALE.as_secs(), 0, 86_400)?),
        table_timeout: Duration::from_millis(number(
            "TABLE_TIMEOUT_MS",
            DEFAULT_TABLE_TIMEOUT.as_millis() as u64,
            10,
            5_000,
        )?),
    })
}

/// `/segment[/segment...]` of unreserved characters: what a base path mapping can be.
fn parse_base_path(v: &str) -> Result<String, String> {
    let trimmed = v.trim_end_matches('/');
    let ok = trimmed.starts_with('/')
        && trimmed[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        });
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(format!(
            "{v:?} is not a path of segments of A-Z a-z 0-9 - . _ ~ (like /health)"
        ))
    }
}

/// An endpoint the SDK may send the function's signed requests to: `https://` anywhere (the
/// certificate is checked), `http://` only to this machine, where nothing crosses a network.
fn check_endpoint(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    // `host.docker.internal` is the machine itself as seen from a container: what
    // `sam local invoke` reaches a stand-in on the developer's machine through.
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.eq_ignore_ascii_case("host.docker.internal")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback && !authority.contains('@') {
        Ok(())
    } else {
        Err(format!(
            "{url:?}: http:// is allowed for this machine only (127.0.0.0/8, ::1, localhost, \
             host.docker.internal); use https://"
        ))
    }
}

fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_in_range(v: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{v:?} is not a whole number from {min} to {max}")),
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
fn parse_origin(o: &str) -> Result<String, String> {
    let bad =
        || format!("{o:?} is not an origin like https://app.example.com (scheme://host[:port], no path)");
    let (scheme, rest) = o.split_once("://").ok_or_else(bad)?;
    let scheme_ok = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let host_ok = !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' ', '*'])
        && lambda_http::http::HeaderValue::from_str(o).is_ok();
    if scheme_ok && host_ok {
        Ok(o.to_owned())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let c = from(&[]).unwrap();
        assert_eq!(c.allowed_origins, AllowedOrigins::None);
        assert!(c.allowed_datastores.is_none());
        assert_eq!(c.upstream_timeout, Duration::from_secs(5));
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.metrics_namespace, "ExportJobStatus");
        assert_eq!(c.fleet, FleetConfig::default());
        assert_eq!(
            from(&[("STATUS_TABLE", " ")]).unwrap().status_table,
            None,
            "an empty STATUS_TABLE keeps the memory tier only"
        );
        assert_eq!(
            from(&[("ALLOWED_ORIGINS", ""), ("UPSTREAM_TIMEOUT_MS", " ")])
                .unwrap()
                .allowed_origins,
            AllowedOrigins::None
        );
    }

    #[test]
    fn http_endpoints_are_for_loopback_only() {
        for ok in [
            "https://healthlake.us-east-1.amazonaws.com",
            "http://127.0.0.1:9911",
            "http://127.8.9.10",
            "http://localhost:8000/",
            "http://[::1]:8000",
            "http://host.docker.internal:9911",
        ] {
            assert!(from(&[("AWS_ENDPOINT_URL_HEALTHLAKE", ok)]).is_ok(), "{ok}");
        }
        for (var, bad) in [
            ("AWS_ENDPOINT_URL_HEALTHLAKE", "http://10.0.0.5:9911"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://dynamodb.example.com"),
            ("AWS_ENDPOINT_URL", "http://localhost.example.com"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1@evil.example.com"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "ftp://127.0.0.1"),
        ] {
            assert_eq!(from(&[(var, bad)]).unwrap_err().variable, var, "{bad}");
        }
    }

    #[test]
    fn a_base_path_is_a_path() {
        assert_eq!(
            from(&[("BASE_PATH", "/v1/health/")])
                .unwrap()
                .base_path
                .as_deref(),
            Some("/v1/health")
        );
        for bad in ["health", "/", "/a//b", "/a b", "/a?b"] {
            assert_eq!(
                from(&[("BASE_PATH", bad)]).unwrap_err().variable,
                "BASE_PATH",
                "{bad}"
            );
        }
    }

    #[test]
    fn reads_the_access_variables() {
        let c = from(&[]).unwrap().access;
        assert_eq!(c, AccessConfig::default());
        assert_eq!(c.auth_mode, AuthMode::AwsIam);
        assert!(!c.api_key_output_uri);
        let c = from(&[
            ("AUTH_MODE", "API_KEY"),
            ("PARTNER_REFRESH_MS", "250"),
            ("API_KEY_OUTPUT_S3_URI", "include"),
        ])
        .unwrap()
        .access;
        assert_eq!(c.auth_mode, AuthMode::ApiKey);
        assert_eq!(c.partner_refresh, Duration::from_millis(250));
        assert!(c.api_key_output_uri);
        assert_eq!(
            from(&[("AUTH_MODE", "NONE")]).unwrap().access.auth_mode,
            AuthMode::None
        );
        for (var, value) in [
            ("AUTH_MODE", "api_key"),
            ("AUTH_MODE", "none"),
            ("STATUS_TABLE", "ab"),
            ("STATUS_TABLE", "a table"),
            ("PARTNER_REFRESH_MS", "0"),
            ("PARTNER_REFRESH_MS", "60001"),
            ("API_KEY_OUTPUT_S3_URI", "yes"),
        ] {
            let e = from(&[(var, value)]).unwrap_err();
            assert_eq!(e.variable, var, "{value}");
        }
    }

    #[test]
    fn reads_every_variable() {
        let c = from(&[
            ("ALLOWED_ORIGINS", "https://a.example.com, http://localhost:3000"),
            ("ALLOWED_DATASTORE_IDS", "ds1,ds2"),
            ("UPSTREAM_TIMEOUT_MS", "2500"),
            ("UPSTREAM_MAX_ATTEMPTS", "5"),
            ("METRICS_NAMESPACE", "Team/ExportJobs"),
            ("STATUS_TABLE", "export-status-Table-1A2B.x_y"),
            ("REFRESH_INTERVAL_MS", "5000"),
            ("UPSTREAM_RATE_PER_SEC", "4"),
            ("MAX_STALE_SECS", "120"),
            ("TABLE_TIMEOUT_MS", "80"),
        ])
        .unwrap();
        assert_eq!(
            c.fleet,
            FleetConfig {
                refresh_interval: Duration::from_secs(5),
                upstream_rate: 4,
                max_stale: Duration::from_secs(120),
                table_timeout: Duration::from_millis(80),
            }
        );
        assert_eq!(c.status_table.as_deref(), Some("export-status-Table-1A2B.x_y"));
        assert!(c.allowed_origins.allows("https://a.example.com"));
        assert!(c.allowed_origins.allows("http://localhost:3000"));
        assert!(!c.allowed_origins.allows("https://evil.example.com"));
        assert!(c.datastore_allowed(&DatastoreId::parse("ds2").unwrap()));
        assert!(!c.datastore_allowed(&DatastoreId::parse("ds3").unwrap()));
        assert_eq!(c.upstream_timeout, Duration::from_millis(2500));
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.metrics_namespace, "Team/ExportJobs");
        assert_eq!(
            from(&[("ALLOWED_ORIGINS", "*")]).unwrap().allowed_origins,
            AllowedOrigins::Any
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("UPSTREAM_TIMEOUT_MS", "0"),
            ("UPSTREAM_TIMEOUT_MS", "five"),
            ("UPSTREAM_TIMEOUT_MS", "30000"),
            ("UPSTREAM_MAX_ATTEMPTS", "0"),
            ("UPSTREAM_MAX_ATTEMPTS", "11"),
            ("ALLOWED_ORIGINS", "https://a.example.com/"),
            ("ALLOWED_ORIGINS", "a.example.com"),
            ("ALLOWED_ORIGINS", "https://*.example.com"),
            ("ALLOWED_DATASTORE_IDS", "ok,bad#id"),
            ("METRICS_NAMESPACE", "AWS/Lambda"),
            ("STATUS_TABLE", "ab"),
            ("STATUS_TABLE", "arn:aws:dynamodb:us-east-1:123456789012:table/t"),
            ("REFRESH_INTERVAL_MS", "99"),
            ("UPSTREAM_RATE_PER_SEC", "0"),
            ("UPSTREAM_RATE_PER_SEC", "8.5"),
            ("MAX_STALE_SECS", "-1"),
            ("TABLE_TIMEOUT_MS", "5001"),
        ] {
            let e = from(&[(var, value)]).unwrap_err();
            assert_eq!(e.variable, var, "{value}");
            assert!(e
                .to_string()
                .starts_with(&format!("invalid configuration: {var}: ")));
        }
    }
}
