//! Who may read which datastore, and which fields they are told. API Gateway has already
//! authenticated the caller; this decides, per request, whether that caller may read the datastore
//! it asks for.
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

mod caller;
mod partners;

pub(crate) use caller::Caller;

use crate::aws::LazyClient;
use crate::config::{AccessConfig, AuthMode};
use crate::ids::DatastoreId;
use crate::job::Fields;
use partners::Partners;

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

/// The per-process state: the mode, what API-key callers are told, and, with a table, the
/// mapping reader.
pub(crate) struct Access {
    mode: AuthMode,
    /// What API-key callers are told (IAM callers are told everything).
    fields: Fields,
    partners: Option<Partners>,
}

impl Access {
    /// `table`: the status table and a client for it (`aws::partner_table`), when there is one.
    /// Without it, API-key callers read nothing, and start-up says so.
    pub(crate) fn new(
        config: AccessConfig,
        table: Option<(LazyClient<aws_sdk_dynamodb::Client>, String)>,
    ) -> Access {
        if table.is_none() && config.auth_mode == AuthMode::ApiKey {
            tracing::warn!("AUTH_MODE is API_KEY but STATUS_TABLE is not set: API-key callers read nothing");
        }
        Access {
            partners: table.map(|(client, name)| Partners::new(client, name, config.partner_refresh)),
            fields: if config.api_key_output_uri {
                Fields::All
            } else {
                Fields::WithoutOutputUri
            },
            mode: config.auth_mode,
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
                        fields: self.fields,
                        partner: mapping.label.clone(),
                    })
                } else {
                    Err(Denial::NotMapped)
                }
            }
            Caller::BadApiKey => Err(Denial::NoApiKey),
            _ if self.mode == AuthMode::ApiKey => Err(Denial::NoApiKey),
            Caller::Unidentified if self.mode == AuthMode::AwsIam => Err(Denial::NoIdentity),
            Caller::Iam(_) | Caller::Unidentified => Ok(Grant {
                fields: Fields::All,
                partner: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(id: &str) -> DatastoreId {
        DatastoreId::parse(id).unwrap()
    }

    #[tokio::test]
    async fn without_a_table_api_key_callers_read_nothing_in_any_mode() {
        for mode in [AuthMode::AwsIam, AuthMode::ApiKey] {
            let access = Access::new(
                AccessConfig {
                    auth_mode: mode,
                    ..AccessConfig::default()
                },
                None,
            );
            let key = Caller::ApiKey("k1".into());
            assert_eq!(
                access.authorize(&key, &ds("ds1")).await,
                Err(Denial::MappingUnavailable)
            );
            assert_eq!(
                access.authorize(&Caller::BadApiKey, &ds("ds1")).await,
                Err(Denial::NoApiKey)
            );
        }
    }

    #[tokio::test]
    async fn api_key_mode_refuses_every_caller_without_a_key() {
        let access = Access::new(
            AccessConfig {
                auth_mode: AuthMode::ApiKey,
                ..AccessConfig::default()
            },
            None,
        );
        for caller in [Caller::Iam("AIDAEXAMPLEUSERID0001".into()), Caller::Unidentified] {
            assert_eq!(
                access.authorize(&caller, &ds("ds1")).await,
                Err(Denial::NoApiKey),
                "{caller:?}"
            );
        }
        let iam = Access::new(AccessConfig::default(), None);
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
        let open = Access::new(
            AccessConfig {
                auth_mode: AuthMode::None,
                ..AccessConfig::default()
            },
            None,
        );
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
}
