//! Status step, TLS part (`spec.tls`): `status.tls` (the Secret and its certificate's
//! expiry), the `TLSCertificate` condition (False when the certificate expires within
//! `expiryWarningDays`, or the Secret is unusable), and a Degraded condition naming the
//! Secret when it is unusable: missing, without `tls.key`, with a key that does not match,
//! expired. The pods keep serving the certificate they loaded (the server refuses a bad set
//! of files and keeps its own); the condition says why the new one is not served.
//!
//! Pure: applied to the status [`super::status::compute`] made, with the observed Secret and
//! the time passed in.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::observe::Observed;
use super::status::{PHASE_DEGRADED, PHASE_READY};
use crate::crd::{RedisReplication, RedisReplicationStatus, TlsStatus};
use crate::tls::{self, rfc3339};

/// Type of the condition this module owns.
pub const CONDITION: &str = "TLSCertificate";

/// Adds the TLS part to `st`; `now_unix` is `now` in Unix seconds.
pub fn apply(
    st: &mut RedisReplicationStatus,
    rr: &RedisReplication,
    observed: &Observed,
    now_unix: i64,
    now: &Time,
) {
    let Some(spec) = &rr.spec.tls else {
        st.tls = None;
        st.conditions.retain(|c| c.type_ != CONDITION);
        return;
    };
    let name = &spec.secret_name;
    let secret = observed.tls_secret.as_ref();
    st.tls = Some(TlsStatus {
        secret_name: name.clone(),
        not_after: secret.and_then(tls::not_after).map(rfc3339),
    });
    let (ok, reason, message) = match tls::check(name, secret, now_unix) {
        Ok(m) => {
            let warn_days = i64::from(spec.expiry_warning_days.max(0));
            if m.not_after - now_unix <= warn_days * 86_400 {
                (
                    false,
                    "ExpiresSoon",
                    format!(
                        "the certificate in Secret {name} expires at {} (within {warn_days} days)",
                        rfc3339(m.not_after)
                    ),
                )
            } else {
                (
                    true,
                    "Valid",
                    format!(
                        "the certificate in Secret {name} is valid until {}",
                        rfc3339(m.not_after)
                    ),
                )
            }
        }
        Err(e) => {
            degrade(st, e.reason(), &e.to_string());
            (false, e.reason(), e.to_string())
        }
    };
    set_condition(
        st,
        Condition {
            type_: CONDITION.to_string(),
            status: if ok { "True" } else { "False" }.to_string(),
            reason: reason.to_string(),
            message,
            observed_generation: rr.metadata.generation,
            last_transition_time: now.clone(),
        },
    );
    keep_times(st, rr);
}

/// Marks the status Degraded for `message` (added to the problems already listed).
fn degrade(st: &mut RedisReplicationStatus, reason: &str, message: &str) {
    if let Some(d) = st.conditions.iter_mut().find(|c| c.type_ == "Degraded") {
        if d.status == "True" {
            d.message = format!("{}; {message}", d.message);
        } else {
            d.status = "True".to_string();
            d.reason = reason.to_string();
            d.message = message.to_string();
        }
    }
    if st.phase.as_deref() == Some(PHASE_READY) {
        st.phase = Some(PHASE_DEGRADED.to_string());
    }
}

fn set_condition(st: &mut RedisReplicationStatus, c: Condition) {
    match st.conditions.iter_mut().find(|o| o.type_ == c.type_) {
        Some(o) => *o = c,
        None => st.conditions.push(c),
    }
}

/// Conditions whose status did not change keep their previous transition time (this step may
/// have changed Degraded after `compute` chose its time).
fn keep_times(st: &mut RedisReplicationStatus, rr: &RedisReplication) {
    let Some(prev) = rr.status.as_ref() else {
        return;
    };
    for c in st
        .conditions
        .iter_mut()
        .filter(|c| c.type_ == CONDITION || c.type_ == "Degraded")
    {
        if let Some(o) = prev
            .conditions
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
        {
            c.last_transition_time = o.last_transition_time.clone();
        }
    }
}
