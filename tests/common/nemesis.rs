//! Nemesis faults for local-mode pods (issue 19): pause (SIGSTOP), partition (the pod's
//! veth link down on the host side), packet delay and loss (`tc netem` on both ends of
//! the pod's veth), SIGKILL, a kill of an external operator process, a kill of every pod
//! at once, and flapping.
//!
//! Every fault that leaves something behind returns a [`Guard`] that undoes it on drop
//! (SIGCONT, link up, qdisc deleted), also when the test panics; pods themselves, their
//! namespaces and links are removed by `Local`'s drop. Tools are checked first
//! ([`preflight`]): a missing one ends the run with a message naming it.
//!
//! Netns mode names (src/local/sandbox/network.rs): pod `10.X.Y.n` lives in network
//! namespace `tnd<instance>-<n>` with the veth host end `tnd<instance>v<n>` on the
//! instance's bridge and `eth0` inside.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::local::{operator_bin, pid_alive, Local};

/// Errors of the harness itself (not verdicts about the product).
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    #[error(
        "the nemesis needs `{0}` (iproute2 on Debian), which is not installed in \
         /usr/sbin, /sbin, /usr/bin or /bin; install it or skip this fault"
    )]
    MissingTool(String),
    #[error("the nemesis needs root (network namespaces and tc); running as uid {0}")]
    NotRoot(String),
    #[error("local mode runs without network namespaces (loopback mode): cannot {0}")]
    NoNetns(String),
    #[error("`{cmd}` failed: {detail}")]
    Command { cmd: String, detail: String },
    #[error("pod {pod}: {detail}")]
    Pod { pod: String, detail: String },
    #[error("{what} did not happen within {within:?}: {detail}")]
    Timeout {
        what: String,
        within: Duration,
        detail: String,
    },
}

/// The fault types of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// SIGSTOP of the master past downAfterSeconds, SIGCONT when healed.
    Pause,
    /// The master's veth down: cut off from the replicas, the operator and clients.
    Partition,
    /// Like `Partition`, but a client inside the master's network namespace still
    /// reaches it (a client on the master's side of the cut).
    PartitionClientSide,
    /// `tc netem` delay 1500 ms ± 200 ms and 40% loss on both directions of the master.
    Netem,
    /// SIGKILL of the master.
    Kill,
    /// SIGKILL of the master, then of the (external) operator once it starts the
    /// failover; a new operator process is started at once.
    OperatorKill,
    /// SIGKILL of every pod at once.
    RestartAll,
    /// A short pause (below downAfterSeconds), a resume, then a pause that lasts.
    Flap,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::Pause,
        Fault::Partition,
        Fault::PartitionClientSide,
        Fault::Netem,
        Fault::Kill,
        Fault::OperatorKill,
        Fault::RestartAll,
        Fault::Flap,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Pause => "pause",
            Fault::Partition => "partition",
            Fault::PartitionClientSide => "partition-client-side",
            Fault::Netem => "netem",
            Fault::Kill => "kill",
            Fault::OperatorKill => "operator-kill",
            Fault::RestartAll => "restart-all",
            Fault::Flap => "flap",
        }
    }

    pub fn from_name(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }

    /// External tools the fault runs.
    pub fn tools(self) -> &'static [&'static str] {
        match self {
            Fault::Partition => &["ip"],
            Fault::PartitionClientSide => &["ip", "redis-cli", "timeout"],
            Fault::Netem => &["ip", "tc"],
            _ => &["kill"],
        }
    }

    /// Whether the fault needs pods in their own network namespaces.
    pub fn needs_netns(self) -> bool {
        matches!(
            self,
            Fault::Partition | Fault::PartitionClientSide | Fault::Netem
        )
    }

    /// Whether the operator is expected to promote another pod (a restart of every pod
    /// may keep the same master).
    pub fn expects_promotion(self) -> bool {
        self != Fault::RestartAll
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const BIN_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The first of `dirs` holding `tool`.
pub fn find_tool_in(tool: &str, dirs: &[&str]) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// Checks that every tool exists in `dirs`.
pub fn require_tools_in(tools: &[&str], dirs: &[&str]) -> Result<(), NemesisError> {
    match tools.iter().find(|t| find_tool_in(t, dirs).is_none()) {
        Some(t) => Err(NemesisError::MissingTool((*t).to_string())),
        None => Ok(()),
    }
}

fn effective_uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(String::from))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// What a run of `faults` needs from the machine: root and the tools.
pub fn preflight(faults: &[Fault]) -> Result<(), NemesisError> {
    let uid = effective_uid();
    if faults.iter().any(|f| f.needs_netns()) && uid != "0" {
        return Err(NemesisError::NotRoot(uid));
    }
    for f in faults {
        require_tools_in(f.tools(), &BIN_DIRS)?;
    }
    Ok(())
}

/// Runs a tool from the system directories; its stdout, or an error with its stderr.
pub fn run(tool: &str, args: &[&str]) -> Result<String, NemesisError> {
    let prog =
        find_tool_in(tool, &BIN_DIRS).ok_or_else(|| NemesisError::MissingTool(tool.to_string()))?;
    let cmd = format!("{tool} {}", args.join(" "));
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NemesisError::Command {
            cmd: cmd.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NemesisError::Command {
            cmd,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

fn signal(pid: u32, sig: &str) -> Result<(), NemesisError> {
    run("kill", &[sig, &pid.to_string()]).map(|_| ())
}

/// Where a pod runs: its process and its network names.
#[derive(Debug, Clone)]
pub struct PodTarget {
    pub name: String,
    pub ip: String,
    pub pid: u32,
    /// `tnd<instance>-<n>` in netns mode.
    pub netns: Option<String>,
    /// `tnd<instance>v<n>` in netns mode.
    pub host_veth: Option<String>,
}

impl PodTarget {
    /// Reads the pod's pid file and derives its network names from its address.
    pub async fn find(l: &Local, ns: &str, pod: &str) -> Result<PodTarget, NemesisError> {
        let ip = l.pod_ip(ns, pod).await;
        let pid_file = l.dir.join("pods").join(format!("{ns}_{pod}")).join("pid");
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|p| pid_alive(*p))
            .ok_or_else(|| NemesisError::Pod {
                pod: pod.to_string(),
                detail: format!("no live process in {}", pid_file.display()),
            })?;
        let n = ip.rsplit('.').next().unwrap_or_default().to_string();
        let netns = format!("tnd{}-{n}", l.instance);
        let in_netns = super::local::netns_of(&l.instance).contains(&netns);
        Ok(PodTarget {
            name: pod.to_string(),
            ip,
            pid,
            netns: in_netns.then_some(netns),
            host_veth: in_netns.then(|| format!("tnd{}v{n}", l.instance)),
        })
    }

    fn netns_names(&self, doing: &str) -> Result<(&str, &str), NemesisError> {
        match (&self.netns, &self.host_veth) {
            (Some(ns), Some(v)) => Ok((ns, v)),
            _ => Err(NemesisError::NoNetns(doing.to_string())),
        }
    }
}

/// Undoes one fault when dropped.
#[derive(Debug)]
pub enum Guard {
    /// SIGCONT to a stopped process (if it still exists).
    Paused(u32),
    /// `ip link set <dev> up` (the pod may have been restarted with a new link).
    LinkDown(String),
    /// Deletes the root qdisc on the host end and on `eth0` in the netns.
    Netem { host_veth: String, netns: String },
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.undo();
    }
}

impl Guard {
    fn undo(&self) -> Result<(), NemesisError> {
        match self {
            Guard::Paused(pid) if pid_alive(*pid) => signal(*pid, "-CONT"),
            Guard::Paused(_) => Ok(()),
            Guard::LinkDown(dev) => run("ip", &["link", "set", dev, "up"]).map(|_| ()),
            Guard::Netem { host_veth, netns } => {
                let a = run("tc", &["qdisc", "del", "dev", host_veth, "root"]);
                let b = run(
                    "ip",
                    &[
                        "netns", "exec", netns, "tc", "qdisc", "del", "dev", "eth0", "root",
                    ],
                );
                a.and(b).map(|_| ())
            }
        }
    }
}

/// SIGSTOP `pod`'s process until the guard drops.
pub fn pause(pod: &PodTarget) -> Result<Guard, NemesisError> {
    signal(pod.pid, "-STOP")?;
    Ok(Guard::Paused(pod.pid))
}

/// Takes `pod`'s host veth end down until the guard drops: the pod reaches nothing
/// outside its namespace and nothing outside reaches it.
pub fn partition(pod: &PodTarget) -> Result<Guard, NemesisError> {
    let (_, veth) = pod.netns_names("partition a pod")?;
    run("ip", &["link", "set", veth, "down"])?;
    Ok(Guard::LinkDown(veth.to_string()))
}

/// How [`netem`] degraded the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Degrade {
    /// `tc netem delay <ms> <jitter> loss <pct>`.
    Netem,
    /// The kernel has no `sch_netem` (some VM kernels): a `tbf` throttle of 8 kbit/s with
    /// a 1.5 s queue instead, which delays what it queues and drops what overflows.
    TbfThrottle,
}

/// Delay and loss on both directions of `pod`'s veth until the guard drops: `tc netem`,
/// or where the kernel lacks it a `tbf` throttle (see [`Degrade`]).
pub fn netem(
    pod: &PodTarget,
    delay_ms: u32,
    jitter_ms: u32,
    loss_pct: u32,
) -> Result<(Guard, Degrade), NemesisError> {
    let (ns, veth) = pod.netns_names("add netem to a pod")?;
    let (delay, jitter, loss) = (
        format!("{delay_ms}ms"),
        format!("{jitter_ms}ms"),
        format!("{loss_pct}%"),
    );
    let netem_spec = ["root", "netem", "delay", &delay, &jitter, "loss", &loss];
    let latency = format!("{delay_ms}ms");
    let tbf_spec = [
        "root", "tbf", "rate", "8kbit", "burst", "1600", "latency", &latency,
    ];
    let add = |dev_args: &[&str], spec: &[&str]| {
        let mut args = dev_args.to_vec();
        args.extend_from_slice(spec);
        run(args[0], &args[1..]).map(|_| ())
    };
    let host = ["tc", "qdisc", "add", "dev", veth];
    let kind = match add(&host, &netem_spec) {
        Ok(()) => Degrade::Netem,
        Err(NemesisError::Command { detail, .. }) if detail.contains("qdisc kind is unknown") => {
            add(&host, &tbf_spec)?;
            Degrade::TbfThrottle
        }
        Err(e) => return Err(e),
    };
    // From here on the guard removes whatever was added.
    let guard = Guard::Netem {
        host_veth: veth.to_string(),
        netns: ns.to_string(),
    };
    let inner = [
        "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0",
    ];
    match kind {
        Degrade::Netem => add(&inner, &netem_spec)?,
        Degrade::TbfThrottle => add(&inner, &tbf_spec)?,
    }
    Ok((guard, kind))
}

/// SIGKILL of `pod`'s process (the local runtime restarts it; nothing to undo).
pub fn kill(pod: &PodTarget) -> Result<(), NemesisError> {
    signal(pod.pid, "-KILL")
}

/// SIGKILL of every pod by one `kill` call (all of them within microseconds).
pub fn kill_all(pods: &[PodTarget]) -> Result<(), NemesisError> {
    let pids: Vec<String> = pods.iter().map(|p| p.pid.to_string()).collect();
    let mut args = vec!["-KILL"];
    args.extend(pids.iter().map(String::as_str));
    run("kill", &args).map(|_| ())
}

/// A `tandem-operator run` process against a local-mode instance started with
/// `--no-controller`; killed by pid on drop.
pub struct ExternalOperator {
    child: Option<Child>,
    pub log: PathBuf,
}

impl ExternalOperator {
    /// Starts the controller with the instance's kubeconfig; its output goes to
    /// `DIR/operator-<n>.out`.
    pub fn start(l: &Local, n: u32) -> Result<ExternalOperator, NemesisError> {
        let log = l.dir.join(format!("operator-{n}.out"));
        let out = std::fs::File::create(&log).map_err(|e| NemesisError::Command {
            cmd: format!("create {}", log.display()),
            detail: e.to_string(),
        })?;
        let err = out.try_clone().map_err(|e| NemesisError::Command {
            cmd: "dup log".into(),
            detail: e.to_string(),
        })?;
        let child = Command::new(operator_bin())
            .args(["run", "--metrics-addr", "127.0.0.1:0"])
            .env("KUBECONFIG", l.dir.join("kubeconfig"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| NemesisError::Command {
                cmd: "tandem-operator run".into(),
                detail: e.to_string(),
            })?;
        Ok(ExternalOperator {
            child: Some(child),
            log,
        })
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ExternalOperator {
    fn drop(&mut self) {
        self.kill();
    }
}
