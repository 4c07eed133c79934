//! Configuration from environment variables, read once at start-up. Bad configuration is an
//! error that stops start-up with a message naming the variable, never a surprise at request time.

use crate::ids::DatastoreId;
use crate::scope::ScopeConfig;
use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_millis(5_000);
const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// API Gateway gives up after 29 s; a budget above that could never be honoured.
const MAX_UPSTREAM_TIMEOUT_MS: u64 = 29_000;
const MAX_ATTEMPTS_LIMIT: u32 = 10;

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
    /// Who may read what, and which fields they are told (see `scope`).
    pub scope: ScopeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            allowed_origins: AllowedOrigins::None,
            allowed_datastores: None,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            scope: ScopeConfig::default(),
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

        Ok(Config {
            allowed_origins,
            allowed_datastores,
            upstream_timeout,
            max_attempts,
            scope: ScopeConfig::from_vars(&get)?,
        })
    }

    pub(crate) fn datastore_allowed(&self, id: &DatastoreId) -> bool {
        self.allowed_datastores
            .as_ref()
            .is_none_or(|set| set.contains(id))
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
        assert_eq!(
            from(&[("ALLOWED_ORIGINS", ""), ("UPSTREAM_TIMEOUT_MS", " ")])
                .unwrap()
                .allowed_origins,
            AllowedOrigins::None
        );
    }

    #[test]
    fn reads_every_variable() {
        let c = from(&[
            ("ALLOWED_ORIGINS", "https://a.example.com, http://localhost:3000"),
            ("ALLOWED_DATASTORE_IDS", "ds1,ds2"),
            ("UPSTREAM_TIMEOUT_MS", "2500"),
            ("UPSTREAM_MAX_ATTEMPTS", "5"),
        ])
        .unwrap();
        assert!(c.allowed_origins.allows("https://a.example.com"));
        assert!(c.allowed_origins.allows("http://localhost:3000"));
        assert!(!c.allowed_origins.allows("https://evil.example.com"));
        assert!(c.datastore_allowed(&DatastoreId::parse("ds2").unwrap()));
        assert!(!c.datastore_allowed(&DatastoreId::parse("ds3").unwrap()));
        assert_eq!(c.upstream_timeout, Duration::from_millis(2500));
        assert_eq!(c.max_attempts, 5);
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
        ] {
            let e = from(&[(var, value)]).unwrap_err();
            assert_eq!(e.variable, var, "{value}");
            assert!(e
                .to_string()
                .starts_with(&format!("invalid configuration: {var}: ")));
        }
    }
}
