//! Partner mappings: one item of the status table per API key, naming the datastores the key
//! may read. Read on the request path when a key is first seen and again once older than
//! `PARTNER_REFRESH_MS`; whatever a read finds is what the key reads until the next one.

use super::Denial;
use crate::aws::{self, LazyClient};
use crate::ids::DatastoreId;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keys a process remembers. Only keys API Gateway has validated reach the function, so this is
/// the number of partners, not something a caller can grow; the bound is a backstop.
const MAX_KEYS: usize = 1_024;
/// Item attributes: see docs/partners.md.
pub(crate) const PK: &str = "pk";
pub(crate) const KEY_PREFIX: &str = "apikey#";
pub(crate) const DATASTORES: &str = "datastores";
pub(crate) const LABEL: &str = "label";

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

/// Partner mappings as read from the table, each kept for the refresh interval. Read on the
/// request path, not by a timer: Lambda freezes the process between invocations, so a timer
/// would not run when it should, and a process that serves no API-key caller reads nothing.
pub(crate) struct Partners {
    /// Made when the first API-key caller comes.
    client: LazyClient<aws_sdk_dynamodb::Client>,
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
        client: LazyClient<aws_sdk_dynamodb::Client>,
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
                    error = %aws::error_code(&err),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(id: &str) -> DatastoreId {
        DatastoreId::parse(id).unwrap()
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
