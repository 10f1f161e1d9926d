//! Nemesis (issue 19): faults injected into the pods of a local-mode RedisReplication
//! under a recorded write load, then a Jepsen-style check of the history.
//!
//! - The checker's rules, on small hand-made histories (no processes).
//! - One e2e test per fault type (one round each; together they are the short form CI
//!   runs): the operator must promote within downAfterSeconds + 2 s of the fault's start
//!   (asserted outside CI, printed under CI=true), the set must heal to Ready with
//!   exactly one master and every other pod (the old master included) its linked
//!   replica, and the checker's verdict must pass.
//! - The harness's own bad input: a missing tool, a pod that never comes back.
//! - The long form (ignored; `bench/nemesis.py --rounds 50`, docs/nemesis.md): many rounds
//!   mixing faults on one instance.
//!
//! Needs root (network namespaces, tc) and `cargo build -p tandem-server` first.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::local::Local;
use common::nemesis::{self, ExternalOperator, Fault, NemesisError, PodTarget};
use common::nemesis_check::{self, EpochSample, Op, Outcome, PodState, Value, Write};
use common::nemesis_round::{self, in_ci, manifest, run_round, SetUnderTest, NS};

const DOWN_AFTER_SECONDS: u64 = 5;
const SET: &str = "nem";

// ---- the checker on hand-made histories ----

fn set(key: &str, value: &str) -> Write {
    Write::Set {
        key: key.into(),
        value: value.into(),
    }
}

fn op(t0: Instant, ms: (u64, u64), w: Write, outcome: Outcome, pod: &str) -> Op {
    Op {
        client: "c".into(),
        write: w,
        invoked: t0 + Duration::from_millis(ms.0),
        completed: t0 + Duration::from_millis(ms.1),
        outcome,
        pod: Some(pod.into()),
    }
}

fn epoch(t0: Instant, ms: u64, epoch: i64, master: &str) -> EpochSample {
    EpochSample {
        at: t0 + Duration::from_millis(ms),
        epoch,
        master: Some(master.into()),
    }
}

fn pod(name: &str, role: &str, data: &[(&str, Value)]) -> PodState {
    PodState {
        pod: name.into(),
        role: role.into(),
        digest: None,
        data: data
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

fn s(v: &str) -> Value {
    Value::Str(v.into())
}

#[test]
fn the_checker_passes_a_history_where_every_acknowledged_write_survived() {
    let t0 = Instant::now();
    let ops = vec![
        op(t0, (0, 5), set("a", "1"), Outcome::Acked, "p0"),
        op(
            t0,
            (10, 15),
            set("b", "2"),
            Outcome::Failed("READONLY".into()),
            "p1",
        ),
        op(t0, (2000, 2005), set("c", "3"), Outcome::Acked, "p1"),
    ];
    let epochs = [epoch(t0, 0, 0, "p0"), epoch(t0, 1500, 1, "p1")];
    let data = [("a", s("1")), ("c", s("3"))];
    let finals = [pod("p0", "slave", &data), pod("p1", "master", &data)];
    let v = nemesis_check::check(&ops, &epochs, &finals);
    assert!(v.passed(), "{v}");
    assert_eq!((v.acked, v.acked_lost, v.unacked_lost), (2, 0, 0));
    assert!(v.converged);
    assert_eq!(
        v.writers_per_epoch,
        BTreeMap::from([
            (0, BTreeSet::from(["p0".to_string()])),
            (1, BTreeSet::from(["p1".to_string()]))
        ])
    );
}

#[test]
fn the_checker_fails_when_an_acknowledged_write_is_missing_on_a_replica() {
    let t0 = Instant::now();
    let ops = vec![
        op(t0, (0, 5), set("a", "1"), Outcome::Acked, "p0"),
        op(t0, (6, 9), set("b", "2"), Outcome::Acked, "p0"),
    ];
    let epochs = [epoch(t0, 0, 0, "p0")];
    let finals = [
        pod("p0", "master", &[("a", s("1")), ("b", s("2"))]),
        pod("p1", "slave", &[("a", s("1"))]),
    ];
    let v = nemesis_check::check(&ops, &epochs, &finals);
    assert!(!v.passed());
    assert_eq!(v.acked_lost, 1);
    assert!(
        v.problems.iter().any(|p| p.contains("missing on [\"p1\"]")),
        "{v}"
    );
    assert!(!v.converged, "different key sets are different digests");
}

#[test]
fn the_checker_fails_when_acknowledged_increments_are_missing() {
    let t0 = Instant::now();
    let incr = || Write::Incr { key: "c".into() };
    let ops = vec![
        op(t0, (0, 1), incr(), Outcome::Acked, "p0"),
        op(t0, (2, 3), incr(), Outcome::Acked, "p0"),
        op(t0, (4, 5), incr(), Outcome::Unacked, "p0"),
    ];
    let epochs = [epoch(t0, 0, 0, "p0")];
    let data = [("c", s("1"))];
    let finals = [pod("p0", "master", &data), pod("p1", "slave", &data)];
    let v = nemesis_check::check(&ops, &epochs, &finals);
    assert!(!v.passed());
    assert_eq!(v.acked_lost, 2, "one missing increment on each pod: {v}");
    assert_eq!(v.unacked_lost, 2, "3 accepted, 1 left");
}

#[test]
fn the_checker_fails_when_two_pods_acknowledge_writes_in_one_epoch() {
    let t0 = Instant::now();
    // p0 stays the recorded master of epoch 0 throughout; p1 acknowledges too.
    let ops = vec![
        op(t0, (0, 5), set("a", "1"), Outcome::Acked, "p0"),
        op(t0, (100, 105), set("b", "2"), Outcome::Acked, "p1"),
    ];
    let epochs = [epoch(t0, 0, 0, "p0"), epoch(t0, 5000, 0, "p0")];
    let data = [("a", s("1")), ("b", s("2"))];
    let finals = [pod("p0", "master", &data), pod("p1", "slave", &data)];
    let v = nemesis_check::check(&ops, &epochs, &finals);
    assert!(!v.passed());
    assert!(
        v.problems.iter().any(|p| p.starts_with("epoch 0: 2 pods")),
        "{v}"
    );
}

#[test]
fn a_promotion_recorded_shortly_after_the_new_masters_first_writes_is_one_epoch_each() {
    let t0 = Instant::now();
    // p1 answers at 1000 ms; the status says so from 1400 ms (within STATUS_LAG).
    let ops = vec![
        op(t0, (0, 5), set("a", "1"), Outcome::Acked, "p0"),
        op(t0, (1000, 1005), set("b", "2"), Outcome::Acked, "p1"),
    ];
    let epochs = [epoch(t0, 0, 0, "p0"), epoch(t0, 1400, 1, "p1")];
    let data = [("a", s("1")), ("b", s("2"))];
    let finals = [pod("p0", "slave", &data), pod("p1", "master", &data)];
    let v = nemesis_check::check(&ops, &epochs, &finals);
    assert!(v.passed(), "{v}");
    assert_eq!(v.writers_per_epoch.len(), 2);
}

#[test]
fn the_checker_reports_lost_unacknowledged_writes_and_the_dual_write_window() {
    let t0 = Instant::now();
    let ops = vec![
        op(t0, (0, 5), set("a", "1"), Outcome::Acked, "p0"),
        // The old master, cut off, still accepts until 3000 ms; the new one from 2000 ms.
        op(t0, (2990, 3000), set("lost", "x"), Outcome::Unacked, "p0"),
        op(t0, (1995, 2000), set("b", "2"), Outcome::Acked, "p1"),
        op(t0, (3995, 4000), set("c", "3"), Outcome::Acked, "p1"),
    ];
    let epochs = [epoch(t0, 0, 0, "p0"), epoch(t0, 2100, 1, "p1")];
    let data = [("a", s("1")), ("b", s("2")), ("c", s("3"))];
    let finals = [pod("p0", "slave", &data), pod("p1", "master", &data)];
    let v = nemesis_check::check(&ops, &epochs, &finals);
    assert!(
        v.passed(),
        "lost unacknowledged writes are reported, not failed: {v}"
    );
    assert_eq!(v.unacked_lost, 1);
    assert_eq!(v.dual_write_window, Duration::from_millis(1000));
}

#[test]
fn the_checker_fails_without_exactly_one_master() {
    let t0 = Instant::now();
    let ops = vec![op(t0, (0, 5), set("a", "1"), Outcome::Acked, "p0")];
    let data = [("a", s("1"))];
    let finals = [pod("p0", "master", &data), pod("p1", "master", &data)];
    let v = nemesis_check::check(&ops, &[epoch(t0, 0, 0, "p0")], &finals);
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains("2 pods report role master")),
        "{v}"
    );
}

#[test]
fn a_missing_tool_is_named_in_the_error() {
    let e = nemesis::require_tools_in(&["sh", "no-such-nemesis-tool"], &["/usr/bin", "/bin"])
        .unwrap_err();
    assert!(matches!(&e, NemesisError::MissingTool(t) if t == "no-such-nemesis-tool"));
    assert!(e.to_string().contains("`no-such-nemesis-tool`"), "{e}");
    assert!(nemesis::require_tools_in(&["sh"], &["/usr/bin", "/bin"]).is_ok());
    assert!(matches!(
        nemesis::run("no-such-nemesis-tool", &[]),
        Err(NemesisError::MissingTool(_))
    ));
}

#[test]
fn network_faults_are_refused_for_a_pod_without_its_own_network_namespace() {
    // Loopback mode (not root): pods share the host's network; nothing to cut.
    let pod = PodTarget {
        name: "p0".into(),
        ip: "127.1.2.3".into(),
        pid: std::process::id(),
        netns: None,
        host_veth: None,
    };
    let e = nemesis::partition(&pod).unwrap_err();
    assert!(matches!(e, NemesisError::NoNetns(_)), "{e}");
    assert!(e.to_string().contains("cannot partition a pod"), "{e}");
    assert!(matches!(
        nemesis::netem(&pod, 100, 10, 5),
        Err(NemesisError::NoNetns(_))
    ));
}

// ---- e2e: one round per fault ----

/// Starts local mode for `fault` (with an external operator for [`Fault::OperatorKill`]).
async fn start(tag: &str, external_operator: bool) -> (Local, SetUnderTest) {
    let m = manifest(SET, DOWN_AFTER_SECONDS);
    let extra: &[&str] = if external_operator {
        &["--no-controller"]
    } else {
        &[]
    };
    let l = Local::start_with(tag, &[&m], extra).await;
    let mut set = SetUnderTest {
        name: SET.into(),
        down_after_seconds: DOWN_AFTER_SECONDS,
        operator: None,
        operators_started: 0,
    };
    if external_operator {
        set.operator = Some(ExternalOperator::start(&l, 0).unwrap_or_else(|e| panic!("{e}")));
    }
    l.wait_ready(NS, SET, 3, Duration::from_secs(90)).await;
    (l, set)
}

async fn one_round(fault: Fault) {
    if let Err(e) = nemesis::preflight(&[fault]) {
        panic!("cannot run the {fault} round: {e}");
    }
    let scenario = async {
        let (l, mut set) = start(&format!("nem-{fault}"), fault == Fault::OperatorKill).await;
        let report = match run_round(&l, &mut set, fault, 1).await {
            Ok(r) => r,
            Err(e) => panic!("{fault} round: {e}\n--- local output ---\n{}", l.output()),
        };
        eprintln!("NEMESIS_ROUND {}", report.json());
        eprintln!("{fault}: {}", report.verdict);
        assert!(report.verdict.passed(), "{fault}: {}", report.verdict);
        if fault.expects_promotion() {
            assert_ne!(
                report.new_master, report.old_master,
                "{fault}: no new master"
            );
        }
        let bound = Duration::from_secs(DOWN_AFTER_SECONDS + 2);
        let took = report.failover_time();
        eprintln!("{fault}: failover after {took:?} (acceptance bound {bound:?})");
        if !in_ci() {
            assert!(
                took.is_some_and(|t| t <= bound),
                "{fault}: failover after {took:?}, bound {bound:?}"
            );
        }
    };
    // Below nextest's 180 s limit (.config/nextest.toml), so the message is this one.
    if tokio::time::timeout(Duration::from_secs(170), scenario)
        .await
        .is_err()
    {
        panic!("the {fault} round exceeded 170 s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_master_is_failed_over_without_losing_acknowledged_writes() {
    one_round(Fault::Pause).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_master_is_failed_over_without_losing_acknowledged_writes() {
    one_round(Fault::Partition).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_master_still_reached_by_a_client_loses_no_acknowledged_writes() {
    one_round(Fault::PartitionClientSide).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_behind_delay_and_loss_is_failed_over_without_losing_acknowledged_writes() {
    one_round(Fault::Netem).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_failed_over_without_losing_acknowledged_writes() {
    one_round(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_mid_failover_is_replaced_and_the_failover_completes() {
    one_round(Fault::OperatorKill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_every_pod_at_once_loses_no_acknowledged_writes() {
    one_round(Fault::RestartAll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_master_is_failed_over_without_losing_acknowledged_writes() {
    one_round(Fault::Flap).await;
}

// ---- the harness's own bad input ----

/// A pod that does not come back (here: a replica kept paused) ends the wait for the
/// heal with an error naming it, within the given bound; the guard resumes it. Faults
/// injected by a test that panics are undone while it unwinds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_never_comes_back_ends_the_round_with_a_clear_message() {
    let (l, _set) = start("nem-stuck", false).await;
    let master = l
        .status(NS, SET)
        .await
        .and_then(|r| r.status)
        .and_then(|s| s.master);
    let pods = nemesis_round::pod_ips(&l, SET).await;
    let replica = pods
        .keys()
        .find(|p| Some(p.as_str()) != master.as_deref())
        .expect("a replica")
        .clone();
    let target = PodTarget::find(&l, NS, &replica).await.unwrap();
    let password = l.password(NS, SET).await;
    let guard = nemesis::pause(&target).unwrap();
    let started = Instant::now();
    let err = nemesis_round::wait_healed(&l, SET, &pods, &password, Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(15), "not bounded");
    let text = err.to_string();
    assert!(text.contains("did not happen within 3s"), "{text}");
    assert!(text.contains(&replica), "the message names the pod: {text}");
    drop(guard);
    assert!(
        common::local::pid_alive(target.pid),
        "the guard resumed (did not kill) the pod"
    );
    nemesis_round::wait_healed(&l, SET, &pods, &password, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("healed after SIGCONT: {e}"));

    // A test that panics with faults injected undoes them while unwinding.
    let veth = target.host_veth.clone().expect("netns mode");
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _cut = nemesis::partition(&target).unwrap();
        let _stopped = nemesis::pause(&target).unwrap();
        assert!(!link_is_up(&veth) && process_state(target.pid) == Some('T'));
        panic!("a failing test");
    }));
    assert!(unwound.is_err());
    assert!(link_is_up(&veth), "{veth} left down");
    assert_ne!(process_state(target.pid), Some('T'), "pod left stopped");
}

/// Whether `dev` has the UP flag (`ip -o link show dev <dev>`).
fn link_is_up(dev: &str) -> bool {
    let out = nemesis::run("ip", &["-o", "link", "show", "dev", dev]).unwrap_or_default();
    out.split(['<', '>'])
        .nth(1)
        .is_some_and(|flags| flags.split(',').any(|f| f == "UP"))
}

/// The state letter of a process (/proc/<pid>/stat), e.g. 'T' when stopped.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

// ---- long form ----

/// `TANDEM_NEMESIS_ROUNDS` rounds (default 50) cycling through `TANDEM_NEMESIS_FAULTS`
/// (comma-separated names, default every fault) on one instance with an external
/// operator; prints one `NEMESIS_ROUND {json}` line per round (bench/nemesis.py reads
/// them) and fails at the end if any round failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long form: bench/nemesis.py --rounds 50 (docs/nemesis.md)"]
async fn long_form() {
    let rounds: u32 = std::env::var("TANDEM_NEMESIS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let faults: Vec<Fault> = match std::env::var("TANDEM_NEMESIS_FAULTS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|n| {
                Fault::from_name(n.trim()).unwrap_or_else(|| {
                    panic!(
                        "unknown fault {n:?}; known: {:?}",
                        Fault::ALL.map(Fault::name)
                    )
                })
            })
            .collect(),
        _ => Fault::ALL.to_vec(),
    };
    if let Err(e) = nemesis::preflight(&faults) {
        panic!("cannot run the long form: {e}");
    }
    let (l, mut set) = start("nem-long", true).await;
    let mut failed = Vec::new();
    for i in 0..rounds {
        let fault = faults[i as usize % faults.len()];
        match run_round(&l, &mut set, fault, i + 1).await {
            Ok(r) => {
                println!("NEMESIS_ROUND {}", r.json());
                if !r.verdict.passed() {
                    failed.push(format!("round {} ({fault}): {}", i + 1, r.verdict));
                }
            }
            Err(e) => {
                // The set may be broken: stop here, with the reason.
                println!(
                    "NEMESIS_ABORT {}",
                    serde_json::json!({"round": i + 1, "fault": fault.name(), "error": e.to_string()})
                );
                failed.push(format!("round {} ({fault}) aborted the run: {e}", i + 1));
                break;
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
