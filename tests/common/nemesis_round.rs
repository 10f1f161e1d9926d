//! One nemesis round on a running local-mode instance: start the workload, inject a fault
//! into the master (or every pod), wait for the operator to promote, heal, wait until the
//! set is Ready with exactly one master and every other pod its replica, stop the
//! workload, wait for convergence and run the checker.
//!
//! Every wait has a deadline and ends with a [`NemesisError`] naming what did not happen
//! (a pod that never comes back, a promotion that never comes); the fault's guards are
//! dropped (undone) on every path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::Api;
use tandem_operator::crd::RedisReplication;

use super::local::{Local, Reply, Resp};
use super::nemesis::{self, ExternalOperator, Fault, Guard, NemesisError, PodTarget};
use super::nemesis_check::{self, EpochSample, PodState, Value, Verdict};
use super::nemesis_workload::{ClientSpec, Kind, Target, Workload};

pub const NS: &str = "default";

/// The RedisReplication the nemesis runs against: three pods, AOF fsynced on every
/// write (a kill of every pod at once must not lose what WAIT acknowledged), DEBUG
/// allowed (the checker compares `DEBUG DIGEST`s).
pub fn manifest(name: &str, down_after_seconds: u64) -> String {
    format!(
        "apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: {name}
spec:
  replicas: 3
  failover:
    downAfterSeconds: {down_after_seconds}
  persistence:
    appendonly: true
    appendfsync: always
  config:
    enable-debug-command: \"yes\"
"
    )
}

/// Whether the run is under CI (`CI=true` or `1`): wall-clock bounds are printed there,
/// asserted elsewhere.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The set under test and how its operator runs.
pub struct SetUnderTest {
    pub name: String,
    pub down_after_seconds: u64,
    /// The external operator (local mode started with `--no-controller`), needed by
    /// [`Fault::OperatorKill`].
    pub operator: Option<ExternalOperator>,
    /// How many operator processes were started (names their logs).
    pub operators_started: u32,
}

/// What a round measured.
#[derive(Debug, Clone)]
pub struct RoundReport {
    pub round: u32,
    pub fault: Fault,
    pub old_master: String,
    pub new_master: String,
    /// From the fault's start to the first recorded status with a new master and epoch.
    pub promoted_after: Option<Duration>,
    /// From the fault's start to the first write acknowledged again.
    pub first_ack_after: Option<Duration>,
    pub verdict: Verdict,
}

impl RoundReport {
    /// The failover time compared with the bound: the promotion, or for a restart of
    /// every pod (which may keep its master) the first acknowledged write.
    pub fn failover_time(&self) -> Option<Duration> {
        if self.fault.expects_promotion() {
            self.promoted_after
        } else {
            self.first_ack_after
        }
    }

    /// One JSON line for bench/nemesis.py.
    pub fn json(&self) -> String {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        serde_json::json!({
            "round": self.round,
            "fault": self.fault.name(),
            "old_master": self.old_master,
            "new_master": self.new_master,
            "failover_ms": ms(self.failover_time()),
            "promoted_ms": ms(self.promoted_after),
            "first_ack_ms": ms(self.first_ack_after),
            "window_ms": self.verdict.dual_write_window.as_millis() as u64,
            "ops": self.verdict.ops,
            "acked": self.verdict.acked,
            "acked_lost": self.verdict.acked_lost,
            "unacked_lost": self.verdict.unacked_lost,
            "split_epochs": self.verdict.writers_per_epoch.values().filter(|p| p.len() > 1).count(),
            "converged": self.verdict.converged,
            "server_digests": self.verdict.server_digests,
            "passed": self.verdict.passed(),
            "problems": self.verdict.problems.iter().take(10).collect::<Vec<_>>(),
        })
        .to_string()
    }
}

/// Samples `status.epoch` / `status.master` every 100 ms until dropped.
struct EpochWatch {
    samples: Arc<Mutex<Vec<EpochSample>>>,
    stop: Arc<AtomicBool>,
}

impl EpochWatch {
    fn start(api: Api<RedisReplication>, name: &str) -> EpochWatch {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st, name) = (samples.clone(), stop.clone(), name.to_string());
        tokio::spawn(async move {
            // Bounded like the workload: at most 10 minutes.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !st.load(Ordering::SeqCst) && Instant::now() < deadline {
                if let Ok(Some(rr)) = api.get_opt(&name).await {
                    let status = rr.status.unwrap_or_default();
                    s.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(EpochSample {
                            at: Instant::now(),
                            epoch: status.epoch,
                            master: status.master,
                        });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        EpochWatch { samples, stop }
    }

    fn samples(&self) -> Vec<EpochSample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// When a status with an epoch above `epoch` and a master other than `old` was
    /// first seen at or after `since`.
    fn promoted(&self, epoch: i64, old: &str, since: Instant) -> Option<(Instant, String)> {
        self.samples().into_iter().find_map(|s| {
            let m = s.master?;
            (s.at >= since && s.epoch > epoch && m != old).then_some((s.at, m))
        })
    }
}

impl Drop for EpochWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Connects to a pod with short timeouts and authenticates.
fn pod_resp(ip: &str, password: &str) -> Result<Resp, String> {
    let mut c = Resp::connect_with(
        &format!("{ip}:6379"),
        Duration::from_secs(1),
        Duration::from_secs(2),
    )
    .map_err(|e| format!("connect: {e}"))?;
    match c.cmd(&["AUTH", password]) {
        Ok(Reply::Simple(ok)) if ok == "OK" => Ok(c),
        other => Err(format!("AUTH: {other:?}")),
    }
}

fn info_replication(c: &mut Resp) -> Result<BTreeMap<String, String>, String> {
    let r = c
        .cmd(&["INFO", "replication"])
        .map_err(|e| format!("INFO: {e}"))?;
    Ok(r.text()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect())
}

/// The pods' names and IPs (sticky in local mode for the life of the instance).
pub async fn pod_ips(l: &Local, name: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for p in l.pods(NS, name).await {
        if let Some(n) = p.metadata.name {
            let ip = l.pod_ip(NS, &n).await;
            out.insert(n, ip);
        }
    }
    out
}

/// Whether every pod is healthy in one master + replicas shape; the master's name, or a
/// description of what is wrong.
fn topology(pods: &BTreeMap<String, String>, password: &str) -> Result<String, String> {
    let mut roles = BTreeMap::new();
    for (pod, ip) in pods {
        let info = pod_resp(ip, password).and_then(|mut c| info_replication(&mut c));
        roles.insert(pod.clone(), info);
    }
    let masters: Vec<&String> = roles
        .iter()
        .filter(|(_, i)| {
            i.as_ref()
                .is_ok_and(|i| i.get("role").map(String::as_str) == Some("master"))
        })
        .map(|(p, _)| p)
        .collect();
    let [master] = masters.as_slice() else {
        return Err(format!("{} masters: {masters:?}", masters.len()));
    };
    let prefix = format!("{master}.");
    for (pod, info) in &roles {
        if pod == *master {
            continue;
        }
        let ok = info.as_ref().is_ok_and(|i| {
            i.get("role").map(String::as_str) == Some("slave")
                && i.get("master_link_status").map(String::as_str) == Some("up")
                && i.get("master_host").is_some_and(|h| h.starts_with(&prefix))
        });
        if !ok {
            let seen = match info {
                Ok(i) => format!(
                    "role {:?}, master_host {:?}, link {:?}",
                    i.get("role"),
                    i.get("master_host"),
                    i.get("master_link_status")
                ),
                Err(e) => e.clone(),
            };
            return Err(format!("{pod} is not a linked replica of {master}: {seen}"));
        }
    }
    Ok((*master).clone())
}

/// Waits until the set is Ready and its pods form one master with linked replicas;
/// returns the master. A pod that never comes back ends this with an error naming it.
pub async fn wait_healed(
    l: &Local,
    name: &str,
    pods: &BTreeMap<String, String>,
    password: &str,
    within: Duration,
) -> Result<String, NemesisError> {
    let deadline = Instant::now() + within;
    let mut last = String::from("not checked yet");
    while Instant::now() < deadline {
        let ready = l
            .condition(NS, name, "Ready")
            .await
            .is_some_and(|c| c["status"] == "True");
        let (p, pw) = (pods.clone(), password.to_string());
        let topo = tokio::task::spawn_blocking(move || topology(&p, &pw))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match (ready, topo) {
            (true, Ok(m)) => return Ok(m),
            (false, Ok(_)) => last = "the Ready condition is not True".into(),
            (_, Err(e)) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(NemesisError::Timeout {
        what: format!("{NS}/{name} healed (Ready, one master, linked replicas)"),
        within,
        detail: last,
    })
}

/// Reads a pod's role, digest and the round's keys.
fn read_state(pod: &str, ip: &str, password: &str, prefix: &str) -> Result<PodState, String> {
    let mut c = pod_resp(ip, password)?;
    let role = info_replication(&mut c)?
        .get("role")
        .cloned()
        .unwrap_or_default();
    let digest = match c.cmd(&["DEBUG", "DIGEST"]) {
        Ok(Reply::Simple(d)) => Some(d),
        _ => None,
    };
    let keys = match c.cmd(&["KEYS", &format!("{prefix}:*")]) {
        Ok(Reply::Array(Some(ks))) => ks.iter().map(Reply::text).collect::<Vec<_>>(),
        other => return Err(format!("KEYS on {pod}: {other:?}")),
    };
    let mut data = BTreeMap::new();
    for k in keys {
        let v = match c
            .cmd(&["TYPE", &k])
            .map_err(|e| e.to_string())?
            .text()
            .as_str()
        {
            "list" => match c.cmd(&["LRANGE", &k, "0", "-1"]) {
                Ok(Reply::Array(Some(a))) => Value::List(a.iter().map(Reply::text).collect()),
                other => return Err(format!("LRANGE {k} on {pod}: {other:?}")),
            },
            _ => Value::Str(c.cmd(&["GET", &k]).map_err(|e| e.to_string())?.text()),
        };
        data.insert(k, v);
    }
    Ok(PodState {
        pod: pod.to_string(),
        role,
        digest,
        data,
    })
}

/// Reads every pod until their digests agree (replicas catch up after the workload
/// stops), at most `within`; returns the last reading either way.
async fn converged_states(
    pods: &BTreeMap<String, String>,
    password: &str,
    prefix: &str,
    within: Duration,
) -> Result<Vec<PodState>, NemesisError> {
    let deadline = Instant::now() + within;
    loop {
        let (p, pw, px) = (pods.clone(), password.to_string(), prefix.to_string());
        let states = tokio::task::spawn_blocking(move || {
            p.iter()
                .map(|(pod, ip)| read_state(pod, ip, &pw, &px))
                .collect::<Result<Vec<_>, String>>()
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let done = Instant::now() >= deadline;
        match states {
            Ok(s) => {
                let first = s.first().map(PodState::convergence_digest);
                if done || s.iter().all(|x| Some(x.convergence_digest()) == first) {
                    return Ok(s);
                }
            }
            Err(e) if done => {
                return Err(NemesisError::Timeout {
                    what: "reading every pod's data".into(),
                    within,
                    detail: e,
                })
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The clients of a round: through the Service (waiting and not, keys and lists /
/// counters), directly to every pod, and for [`Fault::PartitionClientSide`] one inside
/// the master's network namespace.
fn clients(
    fault: Fault,
    service: &str,
    pods: &BTreeMap<String, String>,
    master: &PodTarget,
) -> Vec<ClientSpec> {
    let spec = |name: &str, target: Target, kind, wait| ClientSpec {
        name: name.to_string(),
        target,
        kind,
        wait,
    };
    let svc = || Target::Addr(service.to_string());
    let mut v = vec![
        spec("svc-wait", svc(), Kind::Keys, true),
        spec("svc-nowait", svc(), Kind::Keys, false),
        spec("svc-lists", svc(), Kind::ListsAndCounters, true),
    ];
    for (pod, ip) in pods {
        v.push(spec(
            &format!("pod-{pod}"),
            Target::Addr(format!("{ip}:6379")),
            Kind::Keys,
            true,
        ));
    }
    if let (Fault::PartitionClientSide, Some(ns)) = (fault, &master.netns) {
        v.push(spec(
            "inside",
            Target::InNetns {
                netns: ns.clone(),
                ip: master.ip.clone(),
                pod: master.name.clone(),
            },
            Kind::Keys,
            true,
        ));
    }
    v
}

/// Kills the external operator once it logs that the failover started (or when
/// downAfterSeconds + 3 s have passed), then starts a new one.
async fn kill_operator_mid_failover(
    l: &Local,
    set: &mut SetUnderTest,
    t0: Instant,
) -> Result<(), NemesisError> {
    let name = set.name.clone();
    let Some(op) = set.operator.as_mut() else {
        return Err(NemesisError::Command {
            cmd: "operator-kill".into(),
            detail: "local mode runs its controller in-process: start it with \
                     --no-controller and an ExternalOperator"
                .into(),
        });
    };
    let give_up = t0 + Duration::from_secs(set.down_after_seconds + 3);
    // Only what it logs from now on: the first assignment at start-up logs the same lines.
    let from = op.output().len();
    let tail = |op: &ExternalOperator| op.output().get(from..).unwrap_or_default().to_string();
    // The promotion follows the marker (`status.failoverInProgress`) and the log line
    // within milliseconds: poll both every millisecond until `give_up`.
    let api = l.rrs(NS);
    let mut marked = false;
    while Instant::now() < give_up && !marked {
        marked = api
            .get_opt(&name)
            .await
            .ok()
            .flatten()
            .and_then(|r| r.status)
            .is_some_and(|s| s.failover_in_progress.is_some())
            || tail(op).contains("failover started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    op.kill();
    let when = match (marked, tail(op).contains("master promoted")) {
        (_, true) => "after it had already recorded the promotion",
        (true, false) => "mid-failover: after its failover marker, before the promotion",
        (false, false) => "before it started a failover",
    };
    eprintln!("operator-kill: the operator was killed {when}");
    set.operators_started += 1;
    set.operator = Some(ExternalOperator::start(l, set.operators_started)?);
    Ok(())
}

/// Injects `fault`; returns its guards and the instant the lasting fault began.
async fn inject(
    l: &Local,
    set: &mut SetUnderTest,
    fault: Fault,
    master: &PodTarget,
    pods: &BTreeMap<String, String>,
) -> Result<(Vec<Guard>, Instant), NemesisError> {
    // Every pod's pid before the clock starts: the kills then land within microseconds.
    let mut all = Vec::new();
    if fault == Fault::RestartAll {
        for pod in pods.keys() {
            all.push(PodTarget::find(l, NS, pod).await?);
        }
    }
    let t0 = Instant::now();
    let guards = match fault {
        Fault::Pause => vec![nemesis::pause(master)?],
        Fault::Partition | Fault::PartitionClientSide => vec![nemesis::partition(master)?],
        Fault::Netem => {
            let (guard, kind) = nemesis::netem(master, 1500, 200, 40)?;
            if kind == nemesis::Degrade::TbfThrottle {
                eprintln!(
                    "netem: this kernel has no sch_netem; the master's link is throttled \
                     with tbf (8 kbit/s, 1.5 s queue) instead"
                );
            }
            vec![guard]
        }
        Fault::Kill => {
            nemesis::kill(master)?;
            vec![]
        }
        Fault::OperatorKill => {
            nemesis::kill(master)?;
            kill_operator_mid_failover(l, set, t0).await?;
            vec![]
        }
        Fault::RestartAll => {
            nemesis::kill_all(&all)?;
            vec![]
        }
        Fault::Flap => {
            // Two faults within downAfterSeconds: a 2 s pause, 1 s up, a lasting pause.
            let first = nemesis::pause(master)?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(first);
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Ok((vec![nemesis::pause(master)?], Instant::now()));
        }
    };
    Ok((guards, t0))
}

/// Runs one round of `fault` (see the module doc).
pub async fn run_round(
    l: &Local,
    set: &mut SetUnderTest,
    fault: Fault,
    round: u32,
) -> Result<RoundReport, NemesisError> {
    nemesis::preflight(&[fault])?;
    let name = set.name.clone();
    let password = l.password(NS, &name).await;
    let pods = pod_ips(l, &name).await;
    let old_master = wait_healed(l, &name, &pods, &password, Duration::from_secs(90)).await?;
    let old_epoch = l
        .status(NS, &name)
        .await
        .and_then(|r| r.status)
        .map(|s| s.epoch)
        .unwrap_or_default();
    let master = PodTarget::find(l, NS, &old_master).await?;
    let service = l
        .endpoint(&format!("{NS}/{name}-master"), Duration::from_secs(30))
        .await
        .to_string();
    let by_ip = pods.iter().map(|(p, ip)| (ip.clone(), p.clone())).collect();
    let prefix = format!("r{round}");
    let watch = EpochWatch::start(l.rrs(NS), &name);
    let workload = Workload::start(
        clients(fault, &service, &pods, &master),
        &password,
        &prefix,
        by_ip,
    );
    wait_until(
        "30 acknowledged writes before the fault",
        Duration::from_secs(30),
        || (workload.acked() >= 30).then_some(()),
    )
    .await?;

    let (guards, t0) = inject(l, set, fault, &master, &pods).await?;
    let within = Duration::from_secs(set.down_after_seconds + 40);
    let promoted = if fault.expects_promotion() {
        let p = wait_until("a promotion recorded in the status", within, || {
            watch.promoted(old_epoch, &old_master, t0)
        })
        .await;
        // Heal even when no promotion came; the error is returned after cleanup below.
        Some(p)
    } else {
        None
    };
    // Keep the fault a moment past the promotion: a client on the old master's side
    // shows how long two pods accept writes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(guards);
    let promoted = promoted.transpose()?;

    let healed = wait_healed(l, &name, &pods, &password, Duration::from_secs(90)).await?;
    let first_ack = wait_until(
        "a write acknowledged after the fault",
        Duration::from_secs(30),
        || workload.first_ack_after(t0),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ops = tokio::task::spawn_blocking(move || workload.finish())
        .await
        .unwrap_or_default();
    let states = converged_states(&pods, &password, &prefix, Duration::from_secs(30)).await?;
    let samples = watch.samples();
    let mut verdict = nemesis_check::check(&ops, &samples, &states);
    // A blip shorter than downAfterSeconds (flap) must not cause a promotion by itself.
    if let Some(early) = samples.iter().find(|s| s.at < t0 && s.epoch > old_epoch) {
        verdict.problems.push(format!(
            "promoted to {:?} (epoch {}) {} ms before the lasting fault began",
            early.master,
            early.epoch,
            t0.saturating_duration_since(early.at).as_millis()
        ));
    }
    Ok(RoundReport {
        round,
        fault,
        old_master,
        new_master: healed,
        promoted_after: promoted.map(|(at, _)| at.saturating_duration_since(t0)),
        first_ack_after: Some(first_ack.saturating_duration_since(t0)),
        verdict,
    })
}

/// Polls `check` every 50 ms until it returns Some, or fails after `within`.
pub async fn wait_until<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, NemesisError> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(t) = check() {
            return Ok(t);
        }
        if Instant::now() >= deadline {
            return Err(NemesisError::Timeout {
                what: what.to_string(),
                within,
                detail: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
