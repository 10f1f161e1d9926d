//! The PodDisruptionBudget (enabled by default, maxUnavailable 1).

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Owner;
use crate::crd::RedisReplication;
use crate::names;

pub fn pdb(rr: &RedisReplication, owner: &Owner) -> Option<PodDisruptionBudget> {
    let spec = &rr.spec.pod_disruption_budget;
    if !spec.enabled {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: owner.child_meta(names::pdb(&owner.name)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(spec.max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(names::selector_labels(&owner.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;

    #[test]
    fn pdb_limits_unavailable_pods_of_this_set() {
        let r = rr("cache", "prod", serde_json::json!({}));
        let p = pdb(&r, &Owner::of(&r).unwrap()).unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("cache"));
        let s = p.spec.unwrap();
        assert_eq!(s.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(
            s.selector.unwrap().match_labels,
            Some(names::selector_labels("cache"))
        );
    }
}
