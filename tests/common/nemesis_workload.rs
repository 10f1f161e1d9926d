//! The nemesis workload: client threads writing unique keys, list elements and counter
//! increments, each write optionally followed by `WAIT 1 <ms>`, recording every operation
//! (invocation, completion, outcome, the pod that answered) for the checker.
//!
//! Every client is bounded: at most [`MAX_OPS`] operations and [`MAX_RUN`] of wall time,
//! and it stops at once when asked. Reads and writes time out after [`IO_TIMEOUT`], so a
//! paused pod holds a client at most that long per operation.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::local::{Reply, Resp};
use super::nemesis_check::{Op, Outcome, Write};

pub const MAX_OPS: u64 = 20_000;
pub const MAX_RUN: Duration = Duration::from_secs(300);
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The `WAIT 1 <ms>` timeout.
pub const WAIT_MS: u64 = 500;
/// Pause between two operations of one client.
const PACE: Duration = Duration::from_millis(5);

/// Where a client sends its writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A TCP address: the `-master` Service endpoint or a pod's `IP:6379`.
    Addr(String),
    /// A pod reached from inside its own network namespace (`ip netns exec` +
    /// `redis-cli`, one process per write): a client on the master's side of a cut.
    InNetns {
        netns: String,
        ip: String,
        pod: String,
    },
}

/// What a client writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `SET <unique key> <value>`.
    Keys,
    /// `RPUSH` of unique elements to a few lists, alternating with `INCR` of a few counters.
    ListsAndCounters,
}

#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub name: String,
    pub target: Target,
    pub kind: Kind,
    /// Follow every accepted write with `WAIT 1 WAIT_MS`.
    pub wait: bool,
}

struct Shared {
    stop: AtomicBool,
    ops: Mutex<Vec<Op>>,
    password: String,
    /// Key prefix of this round (keys of different rounds never collide).
    prefix: String,
    /// Pod IP -> pod name, to name the pod behind the Service.
    pods_by_ip: BTreeMap<String, String>,
}

/// Running clients; [`Workload::finish`] stops them and returns the history.
pub struct Workload {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Workload {
    pub fn start(
        specs: Vec<ClientSpec>,
        password: &str,
        prefix: &str,
        pods_by_ip: BTreeMap<String, String>,
    ) -> Workload {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            ops: Mutex::new(Vec::new()),
            password: password.to_string(),
            prefix: prefix.to_string(),
            pods_by_ip,
        });
        let threads = specs
            .into_iter()
            .map(|spec| {
                let shared = shared.clone();
                std::thread::spawn(move || client(spec, &shared))
            })
            .collect();
        Workload { shared, threads }
    }

    fn ops(&self) -> std::sync::MutexGuard<'_, Vec<Op>> {
        self.shared.ops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Acknowledged writes so far.
    pub fn acked(&self) -> usize {
        self.ops()
            .iter()
            .filter(|o| o.outcome == Outcome::Acked)
            .count()
    }

    /// The first acknowledged write invoked after `t`, if any (its completion time).
    pub fn first_ack_after(&self, t: Instant) -> Option<Instant> {
        self.ops()
            .iter()
            .filter(|o| o.outcome == Outcome::Acked && o.invoked >= t)
            .map(|o| o.completed)
            .min()
    }

    /// Stops every client (each ends within one operation) and returns the history.
    pub fn finish(mut self) -> Vec<Op> {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        std::mem::take(&mut *self.ops())
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// The `seq`-th write of a client.
fn write_of(spec: &ClientSpec, prefix: &str, seq: u64) -> Write {
    let c = &spec.name;
    match spec.kind {
        Kind::Keys => Write::Set {
            key: format!("{prefix}:k:{c}:{seq}"),
            value: format!("{c}-{seq}"),
        },
        Kind::ListsAndCounters if seq.is_multiple_of(2) => Write::Rpush {
            key: format!("{prefix}:l:{}", seq / 2 % 4),
            elem: format!("{c}:{seq}"),
        },
        Kind::ListsAndCounters => Write::Incr {
            key: format!("{prefix}:c:{}", seq / 2 % 4),
        },
    }
}

fn args_of(w: &Write) -> Vec<&str> {
    match w {
        Write::Set { key, value } => vec!["SET", key, value],
        Write::Rpush { key, elem } => vec!["RPUSH", key, elem],
        Write::Incr { key } => vec!["INCR", key],
    }
}

/// A connection and the pod behind it.
struct Conn {
    resp: Resp,
    pod: Option<String>,
}

/// Connects, authenticates and asks which pod answered (`CLIENT INFO`'s `laddr`).
fn connect(addr: &str, shared: &Shared) -> Result<Conn, String> {
    let mut resp =
        Resp::connect_with(addr, CONNECT_TIMEOUT, IO_TIMEOUT).map_err(|e| e.to_string())?;
    match resp.cmd(&["AUTH", &shared.password]) {
        Ok(Reply::Simple(ok)) if ok == "OK" => {}
        other => return Err(format!("AUTH: {other:?}")),
    }
    let info = resp
        .cmd(&["CLIENT", "INFO"])
        .map_err(|e| e.to_string())?
        .text();
    let pod = info
        .split_whitespace()
        .find_map(|f| f.strip_prefix("laddr="))
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(ip, _)| shared.pods_by_ip.get(ip).cloned());
    Ok(Conn { resp, pod })
}

/// One write (+ WAIT) on a connection, and whether to keep the connection (an error
/// reply such as READONLY means the Service may lead elsewhere now: reconnect).
fn write_on(c: &mut Conn, w: &Write, wait: bool) -> (Outcome, bool) {
    let outcome = match c.resp.cmd(&args_of(w)) {
        Ok(Reply::Simple(_)) | Ok(Reply::Int(_)) => Outcome::Unacked,
        Ok(Reply::Error(e)) => return (Outcome::Failed(e), false),
        Ok(other) => return (Outcome::Unknown(format!("{other:?}")), false),
        Err(e) => return (Outcome::Unknown(e.to_string()), false),
    };
    if !wait {
        return (outcome, true);
    }
    match c.resp.cmd(&["WAIT", "1", &WAIT_MS.to_string()]) {
        Ok(Reply::Int(n)) if n >= 1 => (Outcome::Acked, true),
        Ok(Reply::Int(_)) => (Outcome::Unacked, true),
        // Accepted, acknowledgement unknown: not counted as acknowledged.
        _ => (Outcome::Unacked, false),
    }
}

/// One write (+ WAIT) by `redis-cli` inside a pod's network namespace, bounded by
/// `timeout`. redis-cli prints one raw reply per line when its stdin is not a terminal.
fn write_in_netns(netns: &str, ip: &str, password: &str, w: &Write, wait: bool) -> Outcome {
    let mut script = args_of(w).join(" ");
    script.push('\n');
    if wait {
        script.push_str(&format!("WAIT 1 {WAIT_MS}\n"));
    }
    let child = Command::new("timeout")
        .args([
            "3",
            "ip",
            "netns",
            "exec",
            netns,
            "redis-cli",
            "--no-auth-warning",
        ])
        .args(["-h", ip, "-p", "6379", "-a", password])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Outcome::Unknown(format!("redis-cli in {netns}: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = match child.wait_with_output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => return Outcome::Unknown(e.to_string()),
    };
    let mut lines = out.lines();
    let first = lines.next().unwrap_or_default();
    let applied = first == "OK" || first.parse::<i64>().is_ok();
    match (applied, first.is_empty(), lines.next()) {
        (false, true, _) => Outcome::Unknown("no reply".into()),
        (false, false, _) => Outcome::Failed(first.to_string()),
        (true, _, Some(n)) if n.parse::<i64>().is_ok_and(|n| n >= 1) => Outcome::Acked,
        (true, _, _) => Outcome::Unacked,
    }
}

/// The client loop (see the module doc for its bounds).
fn client(spec: ClientSpec, shared: &Shared) {
    let deadline = Instant::now() + MAX_RUN;
    let mut conn: Option<Conn> = None;
    for seq in 0..MAX_OPS {
        if shared.stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            break;
        }
        let w = write_of(&spec, &shared.prefix, seq);
        let invoked = Instant::now();
        let (outcome, pod) = match &spec.target {
            Target::InNetns { netns, ip, pod } => (
                write_in_netns(netns, ip, &shared.password, &w, spec.wait),
                Some(pod.clone()),
            ),
            Target::Addr(addr) => {
                if conn.is_none() {
                    match connect(addr, shared) {
                        Ok(c) => conn = Some(c),
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                let pod = c.pod.clone();
                let (outcome, keep) = write_on(c, &w, spec.wait);
                if !keep {
                    conn = None;
                }
                (outcome, pod)
            }
        };
        let op = Op {
            client: spec.name.clone(),
            write: w,
            invoked,
            completed: Instant::now(),
            outcome,
            pod,
        };
        let failed = !op.outcome.accepted();
        shared
            .ops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(op);
        // Refusals (READONLY from a replica, NOREPLICAS) come fast: back off a little.
        std::thread::sleep(if failed { PACE * 10 } else { PACE });
    }
}
