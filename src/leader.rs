//! Leader election over a coordination.k8s.io/v1 Lease, so two operator replicas never act at
//! once. The holder renews every `RENEW`; a candidate takes over only after the holder's
//! renewTime is older than the lease duration. The decision (`may_take`) is pure and tested.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

pub const LEASE_SECONDS: i32 = 15;
const RENEW: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("failed to read or write Lease {name:?}: {source}")]
    Api {
        name: String,
        #[source]
        source: kube::Error,
    },
}

#[derive(Clone)]
pub struct Leader {
    api: Api<Lease>,
    name: String,
    identity: String,
}

/// May `me` take (or keep) the lease now?
pub fn may_take(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(h) if h == me => true,
        Some(_) => {
            let dur = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
            match &spec.renew_time {
                None => true,
                Some(t) => now.duration_since(t.0) > SignedDuration::from_secs(dur),
            }
        }
    }
}

impl Leader {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Leader {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
        }
    }

    fn err(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            name: self.name.clone(),
            source,
        }
    }

    /// One attempt: true when we hold the lease afterwards. Uses the resourceVersion for
    /// optimistic concurrency, so two candidates cannot both win the same round.
    pub async fn try_acquire(&self) -> Result<bool, LeaderError> {
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.err(e))?;
        match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(now, None, 0)),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(self.err(e)),
                }
            }
            Some(mut lease) => {
                if !may_take(lease.spec.as_ref(), &self.identity, now) {
                    return Ok(false);
                }
                let old = lease.spec.take();
                let ours = old.as_ref().and_then(|s| s.holder_identity.as_deref())
                    == Some(self.identity.as_str());
                let transitions = old.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0);
                let acquire = if ours {
                    old.as_ref().and_then(|s| s.acquire_time.clone())
                } else {
                    None
                };
                lease.spec = Some(self.spec(now, acquire, transitions + i32::from(!ours)));
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(self.err(e)),
                }
            }
        }
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Waits until we hold the lease.
    pub async fn acquire(&self) -> Result<(), LeaderError> {
        tracing::info!(lease = %self.name, identity = %self.identity, "waiting for leadership");
        loop {
            match self.try_acquire().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, "became leader");
                    return Ok(());
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Renews until a renewal fails for longer than the lease lasts; then signals `lost`.
    pub async fn keep_renewed(self, lost: tokio::sync::oneshot::Sender<()>) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW).await;
            match self.try_acquire().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "lease renewal failed");
                    // Stop before another candidate may legitimately take over.
                    if last_ok.elapsed() > Duration::from_secs(LEASE_SECONDS as u64) - RENEW {
                        break;
                    }
                }
            }
        }
        let _ = lost.send(());
    }

    /// Gives the lease up on graceful shutdown so a standby takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await {
            if let Some(spec) = lease.spec.as_mut() {
                if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                    spec.holder_identity = None;
                    spec.renew_time = None;
                    let _ = self
                        .api
                        .replace(&self.name, &PostParams::default(), &lease)
                        .await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64, now: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_secs_ago))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_fresh_lease_held_by_another_cannot_be_taken() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        assert!(!may_take(Some(&spec("other", 3, now)), "me", now));
        assert!(may_take(Some(&spec("other", 16, now)), "me", now));
        assert!(may_take(Some(&spec("me", 3, now)), "me", now));
        assert!(may_take(None, "me", now));
    }
}
