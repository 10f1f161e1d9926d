//! The local API's audit of write requests: how many create, update, patch and delete
//! requests reached each object (and its `/status`), served at `GET /local/writes` so
//! tests and users can see how often the operator writes (issue 20: at most one status
//! write per real change during an outage).
//!
//! A Tandem-local extension, not a Kubernetes API. Counted when the request is routed to
//! a resource, before it is carried out: a write that changes nothing or fails still
//! counts, as it still costs a real API server a request. Dry runs are not counted.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Value};

/// At most this many distinct keys are kept; further ones are summed under one overflow
/// key, so a client inventing names cannot grow the audit without bound.
const MAX_KEYS: usize = 10_000;

/// What one counter counts: a verb on one object or subresource.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WriteKey {
    pub group: String,
    pub resource: String,
    /// `status` for the status subresource, else empty.
    pub subresource: String,
    pub namespace: String,
    /// Empty for a create (POST to the collection) and a deletecollection.
    pub name: String,
    /// `create`, `update`, `patch` or `delete`.
    pub verb: String,
}

impl WriteKey {
    fn overflow() -> Self {
        WriteKey {
            group: String::new(),
            resource: "(other)".into(),
            subresource: String::new(),
            namespace: String::new(),
            name: String::new(),
            verb: String::new(),
        }
    }
}

/// Shared by every connection; the lock is held only to bump or copy the counters.
#[derive(Debug, Default)]
pub struct WriteAudit {
    counts: Mutex<BTreeMap<WriteKey, u64>>,
}

impl WriteAudit {
    pub fn record(&self, key: WriteKey) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        let key = if counts.len() >= MAX_KEYS && !counts.contains_key(&key) {
            WriteKey::overflow()
        } else {
            key
        };
        *counts.entry(key).or_insert(0) += 1;
    }

    /// The counters as `{"writes": [{group, resource, subresource, namespace, name, verb,
    /// count}...]}`, sorted by key.
    pub fn to_json(&self) -> Value {
        let counts = match self.counts.lock() {
            Ok(c) => c.clone(),
            Err(_) => BTreeMap::new(),
        };
        let writes: Vec<Value> = counts
            .into_iter()
            .map(|(k, count)| {
                json!({
                    "group": k.group, "resource": k.resource, "subresource": k.subresource,
                    "namespace": k.namespace, "name": k.name, "verb": k.verb, "count": count,
                })
            })
            .collect();
        json!({ "writes": writes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, verb: &str) -> WriteKey {
        WriteKey {
            group: "tandem.dev".into(),
            resource: "redisreplications".into(),
            subresource: "status".into(),
            namespace: "default".into(),
            name: name.into(),
            verb: verb.into(),
        }
    }

    #[test]
    fn counts_per_object_and_verb_and_caps_the_number_of_keys() {
        let a = WriteAudit::default();
        a.record(key("cache", "patch"));
        a.record(key("cache", "patch"));
        a.record(key("cache", "update"));
        let v = a.to_json();
        let writes = v["writes"].as_array().unwrap();
        assert_eq!(writes.len(), 2);
        assert_eq!(writes[0]["verb"], "patch");
        assert_eq!(writes[0]["count"], 2);
        assert_eq!(writes[0]["subresource"], "status");
        for i in 0..MAX_KEYS + 5 {
            a.record(key(&format!("n{i}"), "create"));
        }
        let v = a.to_json();
        let writes = v["writes"].as_array().unwrap();
        assert_eq!(writes.len(), MAX_KEYS + 1);
        assert!(writes
            .iter()
            .any(|w| w["resource"] == "(other)" && w["count"] == 7));
    }
}
