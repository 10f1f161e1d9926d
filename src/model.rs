//! The validated model: a `RedisReplication` spec normalised once by the validate step
//! ([`crate::controller::validate::validate`]). The failover step, rollout and status read
//! the facts below from here; no step re-derives a default or a clamp from the raw spec.

use std::time::Duration;

use kube::ResourceExt;

use crate::crd::{self, RedisReplication, ReplicationSpec};
use crate::failover::{FailoverInProgress, RecordedState, Topology};
use crate::names;

/// The normalised facts of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub name: String,
    pub namespace: String,
    /// The resource's uid (`<namespace>/<name>` when it has none, as in unit tests).
    pub uid: String,
    pub replicas: i32,
    /// Star, or chain with a fanout of at least 1.
    pub topology: Topology,
    pub failover_enabled: bool,
    /// `failover.downAfterSeconds`, at least one second.
    pub down_after: Duration,
    pub auth: Auth,
    /// `status.master`, `status.epoch` and the failover marker as recorded.
    pub recorded: RecordedState,
}

/// Where the password lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// `auth.secretName`, else the generated `<name>-auth`.
    pub secret_name: String,
    pub key: String,
    /// The operator generates (and owns) the Secret.
    pub generated: bool,
}

/// The failover topology of a replication spec: the one conversion (fanout at least 1).
pub fn topology(r: &ReplicationSpec) -> Topology {
    match r.topology {
        crd::Topology::Star => Topology::Star,
        crd::Topology::Chain => Topology::Chain {
            fanout: usize::try_from(r.fanout.max(1)).unwrap_or(1),
        },
    }
}

/// The Secret holding the password: `auth.secretName`, else the generated `<name>-auth`.
pub fn auth_secret_name(rr: &RedisReplication) -> String {
    rr.spec
        .auth
        .secret_name
        .clone()
        .unwrap_or_else(|| names::generated_secret(&rr.name_any()))
}

/// The recorded state of the status (master, epoch, failover marker).
pub fn recorded(rr: &RedisReplication) -> RecordedState {
    let st = rr.status.clone().unwrap_or_default();
    RecordedState {
        master: st.master,
        epoch: u64::try_from(st.epoch).unwrap_or(0),
        failover_in_progress: st.failover_in_progress.map(|f| FailoverInProgress {
            target: f.target,
            epoch: u64::try_from(f.epoch).unwrap_or(0),
        }),
    }
}

impl Validated {
    /// Normalises the spec (the checks that can reject it are the validate step's).
    pub fn from_resource(rr: &RedisReplication) -> Self {
        let name = rr.name_any();
        let namespace = rr.namespace().unwrap_or_default();
        let down_after_secs = u64::try_from(rr.spec.failover.down_after_seconds)
            .unwrap_or(crd::DEFAULT_DOWN_AFTER_SECONDS)
            .max(1);
        Validated {
            uid: rr.uid().unwrap_or_else(|| format!("{namespace}/{name}")),
            replicas: rr.spec.replicas,
            topology: topology(&rr.spec.replication),
            failover_enabled: rr.spec.failover.enabled,
            down_after: Duration::from_secs(down_after_secs),
            auth: Auth {
                secret_name: auth_secret_name(rr),
                key: rr.spec.auth.key.clone(),
                generated: rr.spec.auth.secret_name.is_none(),
            },
            recorded: recorded(rr),
            name,
            namespace,
        }
    }

    /// The recorded master, else the bootstrap master (pod 0).
    pub fn recorded_master_or_bootstrap(&self) -> Option<String> {
        self.recorded
            .master
            .clone()
            .or_else(|| Some(names::pod(&self.name, 0)))
    }

    /// Ordinal of the recorded master when it names a pod of this set.
    pub fn recorded_master_ordinal(&self) -> Option<i32> {
        names::ordinal(&self.name, self.recorded.master.as_deref()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use serde_json::json;

    #[test]
    fn spec_is_normalised_once_with_its_clamps() {
        let r = rr(
            "c",
            "ns",
            json!({"replication": {"topology": "chain", "fanout": 0},
                   "failover": {"downAfterSeconds": 0, "enabled": false}}),
        );
        let m = Validated::from_resource(&r);
        assert_eq!(m.topology, Topology::Chain { fanout: 1 });
        assert_eq!(m.down_after, Duration::from_secs(1));
        assert!(!m.failover_enabled);
        assert_eq!(m.auth.secret_name, "c-auth");
        assert!(m.auth.generated);
        assert_eq!(Some(m.uid.clone()), r.uid());
        assert_eq!(m.recorded_master_or_bootstrap().as_deref(), Some("c-0"));
        assert_eq!(m.recorded_master_ordinal(), None);

        let m = Validated::from_resource(&rr(
            "c",
            "ns",
            json!({"failover": {"downAfterSeconds": -3}, "auth": {"secretName": "mine"}}),
        ));
        assert_eq!(
            m.down_after,
            Duration::from_secs(crd::DEFAULT_DOWN_AFTER_SECONDS)
        );
        assert_eq!(m.topology, Topology::Star);
        assert_eq!(
            (m.auth.secret_name.as_str(), m.auth.generated),
            ("mine", false)
        );
    }
}
