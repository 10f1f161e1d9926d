//! Replication topologies: which upstream every pod follows, given the master.
//!
//! `star`: every replica follows the master. `chain` with `fanout`: the seed's multi-level
//! replication, laid out breadth-first by ordinal: the master feeds the first `fanout`
//! replicas, each of those feeds up to `fanout` of the next ones, and so on. With 7 pods
//! A..G and fanout 2: A -> B, C; B -> D, E; C -> F, G. The layout is recomputed from the
//! current master, so after a promotion the new master is the root.

use std::collections::VecDeque;

/// `replication.topology` of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// Every replica follows the master directly.
    Star,
    /// Breadth-first tree of the given fanout; a fanout of 0 is treated as 1 (a line),
    /// since a node that feeds nobody would strand the rest of the set.
    Chain { fanout: usize },
}

/// "`pod` must follow `upstream`" (one `REPLICAOF <upstream's DNS name>` when carried out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repoint {
    pub pod: String,
    pub upstream: String,
}

impl Repoint {
    pub fn new(pod: impl Into<String>, upstream: impl Into<String>) -> Self {
        Repoint {
            pod: pod.into(),
            upstream: upstream.into(),
        }
    }
}

/// The upstream of every member except `master`, parents before their children (the order
/// in which repoints should be sent, so an intermediate is in place before its sub-replicas).
///
/// `members` are `(ordinal, pod name)`; `master` need not be among them. Duplicates are
/// ignored. The result has one entry per distinct non-master member.
pub fn desired_upstreams(
    topology: Topology,
    master: &str,
    members: &[(u32, &str)],
) -> Vec<Repoint> {
    let mut others: Vec<(u32, &str)> = members
        .iter()
        .copied()
        .filter(|(_, name)| *name != master)
        .collect();
    others.sort_unstable();
    others.dedup_by(|a, b| a.1 == b.1);

    match topology {
        Topology::Star => others
            .iter()
            .map(|(_, name)| Repoint::new(*name, master))
            .collect(),
        Topology::Chain { fanout } => {
            let fanout = fanout.max(1);
            let mut out = Vec::with_capacity(others.len());
            let mut parents: VecDeque<&str> = VecDeque::from([master]);
            let mut next = others.iter();
            'fill: while let Some(parent) = parents.pop_front() {
                for _ in 0..fanout {
                    let Some((_, child)) = next.next() else {
                        break 'fill;
                    };
                    out.push(Repoint::new(*child, parent));
                    parents.push_back(child);
                }
            }
            out
        }
    }
}

/// The REPLICAOF commands needed to go from `current` to `desired`: every desired link whose
/// pod does not already follow that upstream, in `desired`'s order.
///
/// `current` maps a pod to the upstream it follows now (`None`: it is a master, fenced or in
/// an unknown state, so it needs an explicit assignment). Pods absent from `current` are
/// skipped: they were not reachable, so there is nothing to send them yet; they are picked
/// up by the next plan once they answer. A replica that already follows the right upstream
/// is left alone even if its link is down or syncing: repointing it would only restart its
/// sync.
pub fn minimal_repoints(current: &[(&str, Option<&str>)], desired: &[Repoint]) -> Vec<Repoint> {
    desired
        .iter()
        .filter(|want| {
            current
                .iter()
                .find(|(pod, _)| *pod == want.pod)
                .is_some_and(|(_, now)| *now != Some(want.upstream.as_str()))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEVEN: [(u32, &str); 7] = [
        (0, "A"),
        (1, "B"),
        (2, "C"),
        (3, "D"),
        (4, "E"),
        (5, "F"),
        (6, "G"),
    ];

    fn links(pairs: &[(&str, &str)]) -> Vec<Repoint> {
        pairs.iter().map(|(p, u)| Repoint::new(*p, *u)).collect()
    }

    #[test]
    fn star_points_every_replica_at_the_master() {
        let got = desired_upstreams(Topology::Star, "B", &[(2, "C"), (0, "A"), (1, "B")]);
        assert_eq!(got, links(&[("A", "B"), ("C", "B")]));
    }

    #[test]
    fn chain_fanout_2_with_7_pods_is_the_seeds_binary_tree() {
        let got = desired_upstreams(Topology::Chain { fanout: 2 }, "A", &SEVEN);
        assert_eq!(
            got,
            links(&[
                ("B", "A"),
                ("C", "A"),
                ("D", "B"),
                ("E", "B"),
                ("F", "C"),
                ("G", "C"),
            ])
        );
    }

    #[test]
    fn chain_is_laid_out_by_ordinal_not_by_input_order() {
        let mut shuffled = SEVEN;
        shuffled.reverse();
        assert_eq!(
            desired_upstreams(Topology::Chain { fanout: 2 }, "A", &shuffled),
            desired_upstreams(Topology::Chain { fanout: 2 }, "A", &SEVEN)
        );
    }

    #[test]
    fn chain_is_recomputed_with_the_promoted_pod_as_root() {
        let got = desired_upstreams(Topology::Chain { fanout: 2 }, "C", &SEVEN);
        assert_eq!(
            got,
            links(&[
                ("A", "C"),
                ("B", "C"),
                ("D", "A"),
                ("E", "A"),
                ("F", "B"),
                ("G", "B"),
            ])
        );
    }

    #[test]
    fn chain_table_of_fanouts_and_sizes() {
        struct Case {
            name: &'static str,
            fanout: usize,
            pods: usize,
            want: &'static [(&'static str, &'static str)],
        }
        let cases = [
            Case {
                name: "fanout 1 is a line",
                fanout: 1,
                pods: 4,
                want: &[("B", "A"), ("C", "B"), ("D", "C")],
            },
            Case {
                name: "fanout 0 is treated as a line, never strands pods",
                fanout: 0,
                pods: 3,
                want: &[("B", "A"), ("C", "B")],
            },
            Case {
                name: "fanout at least the replica count is a star",
                fanout: 6,
                pods: 4,
                want: &[("B", "A"), ("C", "A"), ("D", "A")],
            },
            Case {
                name: "fanout 2 with 4 pods fills the second level from the left",
                fanout: 2,
                pods: 4,
                want: &[("B", "A"), ("C", "A"), ("D", "B")],
            },
            Case {
                name: "a lone master has no links",
                fanout: 2,
                pods: 1,
                want: &[],
            },
        ];
        for case in cases {
            let got = desired_upstreams(
                Topology::Chain {
                    fanout: case.fanout,
                },
                "A",
                &SEVEN[..case.pods],
            );
            assert_eq!(got, links(case.want), "{}", case.name);
        }
    }

    #[test]
    fn the_master_is_never_given_an_upstream_even_when_listed() {
        let got = desired_upstreams(Topology::Chain { fanout: 2 }, "D", &SEVEN);
        assert!(got.iter().all(|l| l.pod != "D"));
        assert_eq!(got.len(), 6);
    }

    #[test]
    fn repoints_only_the_pods_whose_upstream_changes() {
        // Star on A -> chain fanout 2 on A: B and C already follow A.
        let desired = desired_upstreams(Topology::Chain { fanout: 2 }, "A", &SEVEN[..5]);
        let current = [
            ("B", Some("A")),
            ("C", Some("A")),
            ("D", Some("A")),
            ("E", Some("A")),
        ];
        assert_eq!(
            minimal_repoints(&current, &desired),
            links(&[("D", "B"), ("E", "B")])
        );
    }

    #[test]
    fn repoints_masters_and_fenced_pods_and_skips_unobserved_ones() {
        let desired = links(&[("B", "A"), ("C", "A"), ("D", "A")]);
        // B is a stale master, C is fenced, D was not reachable so it is not in `current`.
        let current = [("B", None), ("C", None)];
        assert_eq!(
            minimal_repoints(&current, &desired),
            links(&[("B", "A"), ("C", "A")])
        );
    }

    #[test]
    fn nothing_to_do_when_current_matches_desired() {
        let desired = desired_upstreams(Topology::Star, "A", &SEVEN[..3]);
        let current = [("B", Some("A")), ("C", Some("A"))];
        assert!(minimal_repoints(&current, &desired).is_empty());
    }

    #[test]
    fn repoints_after_promotion_keep_parents_before_children() {
        // Old chain on A (A dead); C promoted: only pods whose parent changes move,
        // and an intermediate is repointed before the pods that will hang below it.
        let desired = desired_upstreams(
            Topology::Chain { fanout: 2 },
            "C",
            &SEVEN[1..], // A is gone
        );
        assert_eq!(
            desired,
            links(&[("B", "C"), ("D", "C"), ("E", "B"), ("F", "B"), ("G", "D"),])
        );
        let current = [
            ("B", Some("A")),
            ("D", Some("B")),
            ("E", Some("B")),
            ("F", Some("C")),
            ("G", Some("C")),
        ];
        assert_eq!(
            minimal_repoints(&current, &desired),
            links(&[("B", "C"), ("D", "C"), ("F", "B"), ("G", "D")])
        );
    }
}
