//! Local mode's sandbox layer (src/local/sandbox): two pods running the real
//! tandem-server, `b` replicating from `a` through a name resolved by the pod's managed
//! /etc/hosts. Netns mode (root), Loopback mode, and the user-namespace path.
//!
//! Needs `cargo build -p tandem-server` first. Skips (with a printed reason) when
//! `unshare`/`ip` are missing or, for netns mode, when not root; under CI=true it fails
//! instead of skipping.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tandem_operator::local::sandbox::{self, Launch, Mount, NetMode, Network, PodNet, USERNS_ENV};

const DEADLINE: Duration = Duration::from_secs(30);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Prints why the test is skipped, or panics under CI=true.
fn skip(why: &str) {
    if in_ci() {
        panic!("CI=true: cannot skip: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

fn have(bin: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .any(|d| Path::new(d).join(bin).exists())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn server_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir of the test binary");
    let bin = dir.join("tandem-server");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p tandem-server` first",
        bin.display()
    );
    bin
}

fn ip_cmd(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the pods, sweeps the instance and removes the temp dir on drop (also when an
/// assertion fails).
struct Guard {
    instance: String,
    dir: PathBuf,
    pids: Vec<u32>,
    net: Option<Network>,
}

impl Guard {
    fn new(instance: &str) -> Guard {
        let dir =
            std::env::temp_dir().join(format!("tandem-sandbox-{instance}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        sandbox::sweep(instance);
        Guard {
            instance: instance.to_string(),
            dir,
            pids: Vec::new(),
            net: None,
        }
    }

    fn kill_all(&mut self) {
        for pid in self.pids.drain(..) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
            let end = Instant::now() + Duration::from_secs(5);
            // Gone, or a zombie (reaped by tokio later).
            while Instant::now() < end {
                let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
                match state {
                    None => break,
                    Some(s)
                        if s.rsplit(')')
                            .next()
                            .is_some_and(|r| r.trim_start().starts_with('Z')) =>
                    {
                        break
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill_all();
        if let Some(net) = self.net.take() {
            net.shutdown();
        }
        sandbox::sweep(&self.instance);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends one command; returns the reply as text ("+PONG", "$value", "-ERR ...", ":1";
/// bulk strings without the "$"). Bounded by socket timeouts.
fn call(addr: SocketAddr, args: &[&str]) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end().to_string();
    if let Some(n) = line.strip_prefix('$') {
        let n: i64 = n.parse().map_err(std::io::Error::other)?;
        if n < 0 {
            return Ok("(nil)".into());
        }
        let mut buf = vec![0u8; n as usize + 2];
        r.read_exact(&mut buf)?;
        buf.truncate(n as usize);
        return Ok(String::from_utf8_lossy(&buf).into_owned());
    }
    Ok(line)
}

fn wait_for(what: &str, mut f: impl FnMut() -> Option<String>) -> String {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {DEADLINE:?} waiting for {what}");
}

fn log_of(dir: &Path, pod: &str) -> String {
    std::fs::read_to_string(dir.join("pods").join(format!("default_{pod}")).join("log"))
        .unwrap_or_default()
}

struct Pod {
    net: PodNet,
    pid: u32,
    _child: tokio::process::Child,
}

/// Starts pod `name` with tandem-server: config mounted at /etc/tandem/config, data at
/// /data, `extra` appended to the command line.
fn start_pod(
    g: &mut Guard,
    name: &str,
    net: PodNet,
    hosts: &str,
    extra: &[&str],
    userns: bool,
) -> Pod {
    let pod_dir = g.dir.join("pods").join(format!("default_{name}"));
    let cfg = g.dir.join(format!("config-{name}"));
    let data = pod_dir.join("data");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    // Reached from other network namespaces without a password: Redis 7.0's protected
    // mode would refuse those clients, so the config turns it off as a user would.
    std::fs::write(
        cfg.join("tandem.conf"),
        "port 6379\nbind 0.0.0.0\nprotected-mode no\ndir /data\nsave \"\"\nappendonly no\n",
    )
    .unwrap();
    sandbox::write_hosts(&pod_dir, hosts).unwrap();
    let mut command: Vec<String> = vec![
        "/usr/local/bin/tandem-server".into(),
        "/etc/tandem/config/tandem.conf".into(),
    ];
    if net.netns.is_none() {
        // Loopback mode: the sandbox exports TANDEM_BIND; this server version takes
        // --bind on the command line.
        command.extend(["--bind".into(), net.ip.to_string()]);
    }
    command.extend(extra.iter().map(|s| s.to_string()));
    let launch = Launch {
        pod_dir: pod_dir.clone(),
        net: net.clone(),
        hostname: name.to_string(),
        mounts: vec![
            Mount {
                host: cfg,
                path: "/etc/tandem/config".into(),
                read_only: true,
            },
            Mount {
                host: data,
                path: "/data".into(),
                read_only: false,
            },
        ],
        command,
        env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
        server_bin: server_bin(),
        log: pod_dir.join("log"),
        workdir: Some("/data".into()),
    };
    let child =
        sandbox::spawn_with(&launch, userns).unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let pid = child.id().expect("child pid");
    g.pids.push(pid);
    Pod {
        net,
        pid,
        _child: child,
    }
}

fn hosts_for(a: Ipv4Addr, b: Ipv4Addr) -> String {
    format!(
        "127.0.0.1\tlocalhost\n{a}\ta.h.default.svc.cluster.local a\n{b}\tb.h.default.svc.cluster.local b\n"
    )
}

/// The shared scenario: a and b up, b replicates a via its DNS name, SET on a is seen
/// on b, b reports master_link_status:up, the pids are the tandem-server processes.
fn replication_pair(g: &mut Guard, mode: NetMode, userns: bool) {
    let net = Network::create(&g.instance, mode).expect("create network");
    assert_eq!(net.mode(), mode);
    let na = net.attach("default_a").expect("attach a");
    let nb = net.attach("default_b").expect("attach b");
    assert_ne!(na.ip, nb.ip);
    assert_eq!(net.attach("default_a").unwrap(), na, "address is stable");
    assert_eq!(na.netns.is_some(), mode == NetMode::Netns);
    g.net = Some(net);
    let hosts = hosts_for(na.ip, nb.ip);

    let a = start_pod(g, "a", na, &hosts, &[], userns);
    let b = start_pod(
        g,
        "b",
        nb,
        &hosts,
        &["--replicaof", "a.h.default.svc.cluster.local", "6379"],
        userns,
    );
    let addr_a = SocketAddr::from((a.net.ip, 6379));
    let addr_b = SocketAddr::from((b.net.ip, 6379));
    let dir = g.dir.clone();
    for (addr, name) in [(addr_a, "a"), (addr_b, "b")] {
        wait_for(&format!("PING on pod {name} at {addr}"), || {
            match call(addr, &["PING"]) {
                Ok(r) if r == "+PONG" => Some(r),
                _ => None,
            }
        });
    }
    // The returned pid is the server itself (exec chain).
    for (pod, name) in [(&a, "a"), (&b, "b")] {
        let exe = std::fs::read_link(format!("/proc/{}/exe", pod.pid))
            .unwrap_or_else(|e| panic!("exe of {name}: {e}"));
        assert!(
            exe.to_string_lossy().ends_with("tandem-server"),
            "pid {} of pod {name} is {} (log: {})",
            pod.pid,
            exe.display(),
            log_of(&dir, name)
        );
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", pod.pid)).unwrap();
        assert_eq!(comm.trim(), "tandem-server");
        // Own process group.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pod.pid)).unwrap();
        let after = stat.rsplit(')').next().unwrap_or("");
        let pgrp: u32 = after.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert_eq!(pgrp, pod.pid, "pod {name} leads its own process group");
    }

    assert_eq!(call(addr_a, &["SET", "k", "hello"]).unwrap(), "+OK");
    wait_for("the key replicated to b", || {
        match call(addr_b, &["GET", "k"]) {
            Ok(v) if v == "hello" => Some(v),
            _ => None,
        }
    });
    let info = call(addr_b, &["INFO", "replication"]).unwrap();
    assert!(info.contains("role:slave"), "{info}");
    assert!(
        info.contains("master_link_status:up"),
        "{info}\nlog b:\n{}",
        log_of(&dir, "b")
    );
    assert!(
        info.contains("master_host:a.h.default.svc.cluster.local"),
        "{info}"
    );

    // The pod sees its managed /etc/hosts, and a rewrite shows through while it runs.
    let pod_hosts = format!("/proc/{}/root/etc/hosts", a.pid);
    assert_eq!(std::fs::read_to_string(&pod_hosts).unwrap(), hosts);
    sandbox::write_hosts(&dir.join("pods/default_a"), "10.9.9.9\tz\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(&pod_hosts).unwrap(),
        "10.9.9.9\tz\n"
    );
    // The mounts are in place and the data dir is the host's.
    let cfg_in_pod = format!("/proc/{}/root/etc/tandem/config/tandem.conf", a.pid);
    assert!(std::fs::read_to_string(cfg_in_pod)
        .unwrap()
        .contains("dir /data"));
    assert_eq!(
        call(addr_a, &["CONFIG", "GET", "dir"]).unwrap(),
        "*2",
        "CONFIG GET answers an array"
    );
    // Nothing of the sandbox is mounted on the host.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&dir.to_string_lossy().into_owned()),
        "pod mounts leaked to the host namespace"
    );
}

#[test]
fn netns_mode_pods_replicate_through_pod_dns_names() {
    if !have("ip") || !have("unshare") {
        return skip("`ip` or `unshare` missing");
    }
    if !is_root() {
        return skip("network namespace mode needs root");
    }
    let instance = format!("n{}", std::process::id() % 100_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _enter = rt.enter();
    {
        let mut g = Guard::new(&instance);
        replication_pair(&mut g, NetMode::Netns, false);
        // The pods' addresses are real: the host reaches them through the bridge.
        let links = ip_cmd(&["-o", "link", "show"]);
        assert!(links.contains(&format!("tnd{instance}br")), "{links}");
        let ns = ip_cmd(&["netns", "list"]);
        assert!(ns.contains(&format!("tnd{instance}-")), "{ns}");
        // Orderly stop: kill pods, detach, shut down.
        g.kill_all();
        let net = g.net.take().unwrap();
        net.detach("default_a").unwrap();
        net.detach("default_a").unwrap();
        net.shutdown();
        net.shutdown();
    }
    let ns = ip_cmd(&["netns", "list"]);
    assert!(!ns.contains(&format!("tnd{instance}-")), "netns left: {ns}");
    let links = ip_cmd(&["-o", "link", "show"]);
    assert!(
        !links.contains(&format!("tnd{instance}")),
        "links left: {links}"
    );
}

#[test]
fn sweep_removes_leftovers_of_a_dead_instance() {
    if !have("ip") || !have("unshare") {
        return skip("`ip` or `unshare` missing");
    }
    if !is_root() {
        return skip("network namespace mode needs root");
    }
    let instance = format!("s{}", std::process::id() % 100_000);
    let _g = Guard::new(&instance);
    let net = Network::create(&instance, NetMode::Netns).unwrap();
    net.attach("default_x").unwrap();
    net.attach("default_y").unwrap();
    // Simulate a crash: the Network is never shut down.
    std::mem::forget(net);
    assert!(ip_cmd(&["netns", "list"]).contains(&format!("tnd{instance}-")));
    sandbox::sweep(&instance);
    let ns = ip_cmd(&["netns", "list"]);
    assert!(!ns.contains(&format!("tnd{instance}-")), "netns left: {ns}");
    let links = ip_cmd(&["-o", "link", "show"]);
    assert!(
        !links.contains(&format!("tnd{instance}")),
        "links left: {links}"
    );
}

#[test]
fn loopback_mode_pods_replicate() {
    if !have("unshare") {
        return skip("`unshare` missing");
    }
    if !is_root() {
        // Without root the plain mount namespace is unavailable; the userns test covers it.
        return skip("the plain mount namespace path needs root");
    }
    let instance = format!("l{}", std::process::id() % 100_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _enter = rt.enter();
    let mut g = Guard::new(&instance);
    replication_pair(&mut g, NetMode::Loopback, false);
}

#[test]
fn user_namespace_path_pods_replicate() {
    if !have("unshare") {
        return skip("`unshare` missing");
    }
    let probe = Command::new("unshare").args(["-Urm", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        return skip("unprivileged user namespaces are not available");
    }
    let _ = USERNS_ENV;
    let instance = format!("u{}", std::process::id() % 100_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _enter = rt.enter();
    let mut g = Guard::new(&instance);
    replication_pair(&mut g, NetMode::Loopback, true);
}

const NOBODY_DIR_ENV: &str = "TANDEM_SANDBOX_TEST_NOBODY_DIR";

/// Runs `as_nobody_inner` (this test binary, re-executed) under
/// `setpriv --reuid=65534 --regid=65534 --clear-groups`: a real unprivileged user
/// starts a pod through the user-namespace path and reaches it over 127.x.
#[test]
fn unprivileged_user_runs_a_pod() {
    if !have("unshare") || !have("setpriv") {
        return skip("`unshare` or `setpriv` missing");
    }
    if !is_root() {
        return skip("needs root to switch to the nobody user");
    }
    let bin = server_bin();
    let exe = std::env::current_exe().unwrap();
    let readable = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "test",
            "-x",
        ])
        .arg(&bin)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "test",
                "-x",
            ])
            .arg(&exe)
            .status()
            .is_ok_and(|s| s.success());
    if !readable {
        // Not a sandbox failure: the build output is private to root here.
        eprintln!("SKIPPED: the test binaries are not executable by nobody");
        return;
    }
    let instance = format!("p{}", std::process::id() % 100_000);
    let mut g = Guard::new(&instance);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&g.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args(["--exact", "as_nobody_inner", "--ignored", "--nocapture"])
        .env(NOBODY_DIR_ENV, &g.dir)
        .env("TANDEM_SANDBOX_TEST_INSTANCE", &instance)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if let Ok(pid) = std::fs::read_to_string(g.dir.join("pod.pid")) {
        if let Ok(pid) = pid.trim().parse() {
            g.pids.push(pid);
        }
    }
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    let status = status.unwrap_or_else(|| panic!("inner test timed out:\n{out}"));
    assert!(status.success(), "inner test as nobody failed:\n{out}");
    assert!(out.contains("1 passed"), "inner test did not run:\n{out}");
}

/// The half of `unprivileged_user_runs_a_pod` that runs as nobody.
#[test]
#[ignore = "run by unprivileged_user_runs_a_pod under setpriv"]
fn as_nobody_inner() {
    let Ok(dir) = std::env::var(NOBODY_DIR_ENV) else {
        return;
    };
    assert!(!is_root(), "must run as an unprivileged user");
    let instance = std::env::var("TANDEM_SANDBOX_TEST_INSTANCE").unwrap();
    let dir = PathBuf::from(dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _enter = rt.enter();
    assert_eq!(NetMode::detect(), NetMode::Loopback);
    let net = Network::create(&instance, NetMode::Loopback).unwrap();
    let pn = net.attach("default_a").unwrap();
    let pod_dir = dir.join("pods/default_a");
    let data = pod_dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    sandbox::write_hosts(&pod_dir, &format!("{}\ta\n", pn.ip)).unwrap();
    let launch = Launch {
        pod_dir: pod_dir.clone(),
        net: pn.clone(),
        hostname: "a".into(),
        mounts: vec![Mount {
            host: data,
            path: "/data".into(),
            read_only: false,
        }],
        command: vec![
            "tandem-server".into(),
            "--port".into(),
            "6379".into(),
            "--bind".into(),
            pn.ip.to_string(),
            "--dir".into(),
            "/data".into(),
            // Reached from outside its namespace without a password (see start_pod).
            "--protected-mode".into(),
            "no".into(),
        ],
        env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
        server_bin: server_bin(),
        log: pod_dir.join("log"),
        workdir: None,
    };
    // Default path: not root, so the user namespace is used.
    let child = sandbox::spawn(&launch).unwrap_or_else(|e| panic!("spawn: {e}"));
    let pid = child.id().unwrap();
    std::fs::write(dir.join("pod.pid"), pid.to_string()).unwrap();
    let addr = SocketAddr::from((pn.ip, 6379));
    let log = pod_dir.join("log");
    let end = Instant::now() + DEADLINE;
    loop {
        if call(addr, &["PING"]).is_ok_and(|r| r == "+PONG") {
            break;
        }
        assert!(
            Instant::now() < end,
            "pod did not answer PING; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(call(addr, &["SET", "k", "v"]).unwrap(), "+OK");
    assert_eq!(call(addr, &["GET", "k"]).unwrap(), "v");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "tandem-server");
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}
