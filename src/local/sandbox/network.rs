//! Pod addresses: per-pod network namespaces behind a bridge (root), or 127.X.Y.n.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::{NetMode, PodNet, SandboxError};

/// Host numbers 2..=254 are handed to pods (.1 is the bridge in Netns mode).
const FIRST_HOST: u8 = 2;
const LAST_HOST: u8 = 254;

/// Runs a command, returning its stdout or a [`SandboxError::Command`].
fn run(prog: &str, args: &[&str]) -> Result<String, SandboxError> {
    let cmd_text = || {
        let mut s = prog.to_string();
        for a in args {
            s.push(' ');
            s.push_str(a);
        }
        s
    };
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SandboxError::Command {
            cmd: cmd_text(),
            status: "not started".into(),
            stderr: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(SandboxError::Command {
            cmd: cmd_text(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn ip(args: &[&str]) -> Result<String, SandboxError> {
    run(super::host::ip_bin(), args)
}

/// True when `ip` runs and a network namespace can be created (`unshare -n true`).
pub(super) fn netns_usable() -> bool {
    let quiet = |prog: &str, args: &[&str]| {
        Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    quiet(super::host::ip_bin(), &["-V"]) && quiet(super::host::unshare_bin(), &["-n", "true"])
}

fn check_instance(instance: &str) -> Result<(), SandboxError> {
    let ok = (1..=6).contains(&instance.len())
        && instance
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(SandboxError::InvalidInstance(instance.to_string()))
    }
}

/// FNV-1a over the instance name: the starting point for its subnet.
fn instance_hash(instance: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in instance.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn bridge_name(instance: &str) -> String {
    format!("tnd{instance}br")
}
fn netns_name(instance: &str, n: u8) -> String {
    format!("tnd{instance}-{n}")
}
fn veth_host(instance: &str, n: u8) -> String {
    format!("tnd{instance}v{n}")
}
fn veth_pod(instance: &str, n: u8) -> String {
    format!("tnd{instance}p{n}")
}

/// Whether `name` is a link this instance creates (bridge or veth end). Other
/// instances' names never match: an instance contains no `v`/`p` followed by digits
/// only at the end of a name unless it is this one's.
fn is_instance_link(instance: &str, name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix("tnd")
        .and_then(|r| r.strip_prefix(instance))
    else {
        return false;
    };
    if rest == "br" {
        return true;
    }
    let mut chars = rest.chars();
    matches!(chars.next(), Some('v') | Some('p'))
        && !chars.as_str().is_empty()
        && chars.as_str().bytes().all(|b| b.is_ascii_digit())
}

fn is_instance_netns(instance: &str, name: &str) -> bool {
    name.strip_prefix("tnd")
        .and_then(|r| r.strip_prefix(instance))
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// IPv4 addresses currently configured on the host (`ip -4 -o addr`), with prefixes.
fn host_addrs() -> Result<Vec<(Ipv4Addr, u8)>, SandboxError> {
    let out = ip(&["-4", "-o", "addr", "show"])?;
    let mut addrs = Vec::new();
    for line in out.lines() {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == "inet" {
                if let Some(cidr) = words.next() {
                    let (a, p) = cidr.split_once('/').unwrap_or((cidr, "32"));
                    if let (Ok(a), Ok(p)) = (a.parse::<Ipv4Addr>(), p.parse::<u8>()) {
                        addrs.push((a, p.min(32)));
                    }
                }
                break;
            }
        }
    }
    Ok(addrs)
}

fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let p = a.1.min(b.1);
    let mask = if p == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(p))
    };
    (u32::from(a.0) & mask) == (u32::from(b.0) & mask)
}

/// Network namespaces (`ip netns list`; first word of each line).
fn netns_list() -> Vec<String> {
    ip(&["netns", "list"])
        .map(|out| {
            out.lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Link names (`ip -o link show`; "3: name@peer: <...>").
fn link_list() -> Vec<String> {
    ip(&["-o", "link", "show"])
        .map(|out| {
            out.lines()
                .filter_map(|l| {
                    let name = l.split(": ").nth(1)?;
                    Some(name.split('@').next().unwrap_or(name).to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Removes leftovers of an instance that died without cleaning up. In this order: the
/// processes still running in its network namespaces are killed (SIGKILL; they are
/// orphaned pods), its network namespaces `tnd<instance>-<n>` are deleted, then its
/// links: veth ends `tnd<instance>v<n>` / `tnd<instance>p<n>` and the bridge
/// `tnd<instance>br`. Errors are ignored (best effort); an invalid instance name does
/// nothing. Loopback mode creates no kernel objects, so there is nothing else to sweep.
pub fn sweep(instance: &str) {
    if check_instance(instance).is_err() {
        return;
    }
    for ns in netns_list() {
        if !is_instance_netns(instance, &ns) {
            continue;
        }
        if let Ok(pids) = ip(&["netns", "pids", &ns]) {
            for pid in pids.split_whitespace() {
                let pid = pid.parse().ok().and_then(rustix::process::Pid::from_raw);
                if let Some(pid) = pid {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        let _ = ip(&["netns", "del", &ns]);
    }
    let links = link_list();
    for l in links.iter().filter(|l| is_instance_link(instance, l)) {
        if !l.ends_with("br") {
            let _ = ip(&["link", "del", l]);
        }
    }
    if links.iter().any(|l| *l == bridge_name(instance)) {
        let _ = ip(&["link", "del", &bridge_name(instance)]);
    }
    super::nat::sweep(instance);
}

#[derive(Default)]
struct State {
    /// Sticky host number per pod key (kept after detach so a re-attach gets the same
    /// address unless it had to be given away).
    assigned: HashMap<String, u8>,
    /// Pods currently attached.
    active: HashMap<String, PodNet>,
    shut_down: bool,
}

/// The pod addresses of one local-mode instance. Send + Sync.
pub struct Network {
    instance: String,
    mode: NetMode,
    /// First three octets of the pods' addresses.
    prefix: [u8; 3],
    state: Mutex<State>,
    /// Netns mode with `nft`: the Services' kernel forwarding (else the proxy carries them).
    nat: Option<super::nat::Nat>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("instance", &self.instance)
            .field("mode", &self.mode)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Network {
    /// `instance`: `[a-z0-9]{1,6}`, unique per running local-mode instance; every kernel
    /// object name (netns, bridge, veth) is derived from it so [`sweep`] can find them.
    /// Netns mode sweeps the instance's leftovers first, then creates its bridge on a
    /// 10.X.Y.0/24 that overlaps no address on the host.
    pub fn create(instance: &str, mode: NetMode) -> Result<Network, SandboxError> {
        check_instance(instance)?;
        let h = instance_hash(instance);
        let prefix = match mode {
            NetMode::Loopback => {
                // 127.X.Y.n with X in 1..=254 (127.0.0.x stays the host's own).
                let x = 1 + (h % 254) as u8;
                let y = (h >> 8) as u8;
                [127, x, y]
            }
            NetMode::Netns => {
                if super::host::effective_uid() != Some(0) {
                    return Err(SandboxError::NetnsUnavailable(
                        "not running as root".to_string(),
                    ));
                }
                ip(&["-V"]).map_err(|e| SandboxError::NetnsUnavailable(e.to_string()))?;
                sweep(instance);
                let used = host_addrs()?;
                let start = (h & 0xffff) as u16;
                let mut found = None;
                for i in 0..=u16::MAX {
                    let xy = start.wrapping_add(i);
                    let [x, y] = xy.to_be_bytes();
                    let net = (Ipv4Addr::new(10, x, y, 0), 24);
                    if !used.iter().any(|u| overlaps(*u, net)) {
                        found = Some([10, x, y]);
                        break;
                    }
                }
                let prefix = found.ok_or_else(|| SandboxError::NoSubnet(instance.to_string()))?;
                let br = bridge_name(instance);
                let gw = format!("{}.{}.{}.1/24", prefix[0], prefix[1], prefix[2]);
                let setup = ip(&["link", "add", &br, "type", "bridge"])
                    .and_then(|_| ip(&["addr", "add", &gw, "dev", &br]))
                    .and_then(|_| ip(&["link", "set", &br, "up"]));
                if let Err(e) = setup {
                    let _ = ip(&["link", "del", &br]);
                    return Err(e);
                }
                prefix
            }
        };
        let nat = match mode {
            NetMode::Loopback => None,
            NetMode::Netns => match super::nat::Nat::create(instance, &bridge_name(instance)) {
                Ok(nat) => Some(nat),
                Err(e) => {
                    tracing::info!(
                        "services through the user-space proxy (no kernel forwarding: {e})"
                    );
                    None
                }
            },
        };
        Ok(Network {
            instance: instance.to_string(),
            mode,
            prefix,
            state: Mutex::new(State::default()),
            nat,
        })
    }

    pub fn mode(&self) -> NetMode {
        self.mode
    }

    /// The instance name this network was created for.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The bridge's address (Netns mode: the host's address on the pods' subnet;
    /// Loopback mode: 127.X.Y.1, which is not given to pods either).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.prefix[0], self.prefix[1], self.prefix[2], 1)
    }

    /// Whether Services are forwarded by the kernel ([`Network::forward`] takes effect).
    pub fn forwards(&self) -> bool {
        self.nat.is_some()
    }

    /// Points each Service port on 127.0.0.1 at its Ready pods by kernel forwarding (no-op
    /// without it, and when nothing changed). Blocking: runs `nft` when the rules change.
    pub fn forward(&self, forwards: &[super::nat::Forward]) -> Result<(), SandboxError> {
        match &self.nat {
            Some(nat) if !self.lock().shut_down => nat.apply(forwards),
            _ => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Address of a pod, allocated on first call and stable for that key while the
    /// Network lives (key = `"<namespace>_<pod>"`). Attaching an attached pod returns
    /// its current [`PodNet`]. Netns mode: creates the netns `tnd<instance>-<n>` and a
    /// veth pair (host end on the bridge, pod end `eth0` with 10.X.Y.n/24, `lo` up,
    /// default route via the bridge).
    pub fn attach(&self, pod_key: &str) -> Result<PodNet, SandboxError> {
        let mut st = self.lock();
        if st.shut_down {
            return Err(SandboxError::InvalidLaunch(format!(
                "network of instance {:?} is shut down",
                self.instance
            )));
        }
        if let Some(p) = st.active.get(pod_key) {
            return Ok(p.clone());
        }
        let n = match st.assigned.get(pod_key) {
            Some(n) if !st.active.keys().any(|k| st.assigned.get(k) == Some(n)) => *n,
            _ => {
                let taken: HashSet<u8> = st.assigned.values().copied().collect();
                let fresh = (FIRST_HOST..=LAST_HOST).find(|n| !taken.contains(n));
                let n = match fresh {
                    Some(n) => n,
                    None => {
                        // Reuse the address of a detached pod.
                        let busy: HashSet<u8> = st
                            .active
                            .keys()
                            .filter_map(|k| st.assigned.get(k).copied())
                            .collect();
                        let n = (FIRST_HOST..=LAST_HOST)
                            .find(|n| !busy.contains(n))
                            .ok_or_else(|| {
                                SandboxError::AddressesExhausted(self.instance.clone())
                            })?;
                        st.assigned.retain(|_, v| *v != n);
                        n
                    }
                };
                st.assigned.insert(pod_key.to_string(), n);
                n
            }
        };
        let addr = Ipv4Addr::new(self.prefix[0], self.prefix[1], self.prefix[2], n);
        let pod = match self.mode {
            NetMode::Loopback => PodNet {
                ip: addr,
                netns: None,
            },
            NetMode::Netns => {
                let ns = netns_name(&self.instance, n);
                if let Err(e) = self.create_netns(n, &ns, addr) {
                    let _ = ip(&["link", "del", &veth_host(&self.instance, n)]);
                    let _ = ip(&["netns", "del", &ns]);
                    return Err(e);
                }
                PodNet {
                    ip: addr,
                    netns: Some(ns),
                }
            }
        };
        st.active.insert(pod_key.to_string(), pod.clone());
        Ok(pod)
    }

    fn create_netns(&self, n: u8, ns: &str, addr: Ipv4Addr) -> Result<(), SandboxError> {
        let vh = veth_host(&self.instance, n);
        let vp = veth_pod(&self.instance, n);
        // Leftovers of an earlier attach of this number (e.g. a failed detach).
        let _ = ip(&["link", "del", &vh]);
        if netns_list().iter().any(|x| x == ns) {
            let _ = ip(&["netns", "del", ns]);
        }
        let cidr = format!("{addr}/24");
        let gw = self.gateway().to_string();
        ip(&["netns", "add", ns])?;
        ip(&["link", "add", &vh, "type", "veth", "peer", "name", &vp])?;
        ip(&["link", "set", &vp, "netns", ns])?;
        ip(&["link", "set", &vh, "master", &bridge_name(&self.instance)])?;
        ip(&["link", "set", &vh, "up"])?;
        ip(&["-n", ns, "link", "set", &vp, "name", "eth0"])?;
        ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "route", "add", "default", "via", &gw])?;
        Ok(())
    }

    /// Frees the pod's address (Netns: deletes its veth pair and netns). Idempotent.
    /// Kill the pod's processes first: a netns lives on while processes are in it.
    pub fn detach(&self, pod_key: &str) -> Result<(), SandboxError> {
        let mut st = self.lock();
        let Some(pod) = st.active.remove(pod_key) else {
            return Ok(());
        };
        self.teardown(&pod)
    }

    fn teardown(&self, pod: &PodNet) -> Result<(), SandboxError> {
        let Some(ns) = &pod.netns else {
            return Ok(());
        };
        let n = pod.ip.octets()[3];
        let vh = veth_host(&self.instance, n);
        if link_list().contains(&vh) {
            ip(&["link", "del", &vh])?;
        }
        if netns_list().iter().any(|x| x == ns) {
            ip(&["netns", "del", ns])?;
        }
        Ok(())
    }

    /// Removes everything this Network created (every pod's netns and veth, the
    /// bridge), then sweeps the instance. Idempotent; also called from Drop.
    pub fn shutdown(&self) {
        let mut st = self.lock();
        if st.shut_down {
            return;
        }
        st.shut_down = true;
        let pods: Vec<PodNet> = st.active.drain().map(|(_, p)| p).collect();
        drop(st);
        if self.mode == NetMode::Netns {
            for p in &pods {
                let _ = self.teardown(p);
            }
            if let Some(nat) = &self.nat {
                nat.remove();
            }
            let _ = ip(&["link", "del", &bridge_name(&self.instance)]);
            sweep(&self.instance);
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_do_not_collide() {
        assert!(bridge_name("abcdef").len() <= 15);
        assert!(veth_host("abcdef", 254).len() <= 15);
        assert!(veth_pod("abcdef", 254).len() <= 15);
        assert!(is_instance_link("a", "tndabr"));
        assert!(is_instance_link("a", "tndav12"));
        assert!(is_instance_link("a", "tndap3"));
        assert!(!is_instance_link("a", "tndavbr"));
        assert!(!is_instance_link("a", "tndavv3"));
        assert!(!is_instance_link("a", "tnda1br"));
        assert!(!is_instance_link("a", "tndav1v2"));
        assert!(!is_instance_link("a", "tndav"));
        assert!(is_instance_netns("a", "tnda-3"));
        assert!(!is_instance_netns("a", "tndab-3"));
        assert!(!is_instance_netns("a", "tnda-"));
    }

    #[test]
    fn instance_names_are_checked() {
        assert!(check_instance("abc123").is_ok());
        assert!(check_instance("").is_err());
        assert!(check_instance("abcdefg").is_err());
        assert!(check_instance("a-b").is_err());
        assert!(check_instance("A").is_err());
    }

    #[test]
    fn overlap() {
        let a = (Ipv4Addr::new(10, 1, 2, 7), 24);
        assert!(overlaps(a, (Ipv4Addr::new(10, 1, 2, 0), 24)));
        assert!(overlaps(
            (Ipv4Addr::new(10, 0, 0, 1), 8),
            (Ipv4Addr::new(10, 1, 2, 0), 24)
        ));
        assert!(!overlaps(a, (Ipv4Addr::new(10, 1, 3, 0), 24)));
    }

    #[test]
    fn loopback_addresses_are_stable_and_distinct() {
        let net = Network::create("unit1", NetMode::Loopback).unwrap();
        let a = net.attach("default_a").unwrap();
        let b = net.attach("default_b").unwrap();
        assert_ne!(a.ip, b.ip);
        assert_eq!(a.ip.octets()[0], 127);
        assert_eq!(net.attach("default_a").unwrap(), a);
        net.detach("default_a").unwrap();
        net.detach("default_a").unwrap();
        assert_eq!(net.attach("default_a").unwrap(), a);
        net.shutdown();
        net.shutdown();
    }
}
