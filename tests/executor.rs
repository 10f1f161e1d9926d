//! The failover executor against real `tandem-server` processes on 127.0.0.1: observe ->
//! plan -> execute, as the roles step does, without Kubernetes.
//!
//! Needs the server binary next to the operator's: `cargo build -p tandem-server` first.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tandem_operator::failover::executor::{Executor, PodTarget, Step};
use tandem_operator::failover::probe::{self, info_fields, Client, Timeouts, Value};
use tandem_operator::failover::{
    plan, ObservedRole, Plan, PodObservation, PromoteReason, RecordedState, Repoint, Settings,
    Topology,
};

const PW: &str = "s3cret";

fn server_bin() -> PathBuf {
    let op = PathBuf::from(env!("CARGO_BIN_EXE_tandem-operator"));
    let bin = op
        .parent()
        .map(|d| d.join("tandem-server"))
        .unwrap_or_default();
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build -p tandem-server` with the same CARGO_TARGET_DIR first",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One server process; killed (by its own pid) and its directory removed on drop.
struct Srv {
    name: String,
    ordinal: u32,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

impl Srv {
    fn start(tag: &str, ordinal: u32) -> Srv {
        Self::try_start(tag, ordinal, &[])
            .unwrap_or_else(|dir| panic!("tandem-server did not start, logs in {dir}"))
    }

    /// Starts with extra directives; `Err(dir)` when the server does not come up (the
    /// directory is removed with the failed attempt).
    fn try_start(tag: &str, ordinal: u32, extra: &[&str]) -> Result<Srv, String> {
        let dir = std::env::temp_dir().join(format!(
            "tandem-executor-{}-{tag}-{ordinal}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut s = Srv {
            name: format!("r-{ordinal}"),
            ordinal,
            port: 0,
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for _ in 0..5 {
            s.port = free_port();
            if s.spawn() {
                return Ok(s);
            }
        }
        Err(s.dir.display().to_string())
    }

    /// (Re)starts the process on the same port and directory; true once it answers PING.
    fn spawn(&mut self) -> bool {
        let log = |n: &str| {
            Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(n))
                    .expect("log file"),
            )
        };
        let mut cmd = Command::new(server_bin());
        cmd.args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--dir", self.dir.to_str().expect("utf8")])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--requirepass", PW, "--masterauth", PW])
            .args([
                "--repl-backlog-size",
                "16mb",
                "--repl-diskless-sync-delay",
                "0",
            ])
            .args(&self.extra)
            .current_dir(&self.dir)
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"));
        let Ok(child) = cmd.spawn() else { return false };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false;
            }
            if let Ok(mut t) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{BufRead, BufReader, Write};
                let _ = t.set_read_timeout(Some(Duration::from_millis(500)));
                if t.write_all(b"PING\r\n").is_ok() {
                    let mut line = String::new();
                    if BufReader::new(&t).read_line(&mut line).is_ok() && !line.is_empty() {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn target(&self) -> PodTarget {
        PodTarget {
            name: self.name.clone(),
            ordinal: self.ordinal,
            connect: self.addr(),
            advertise_host: "127.0.0.1".to_string(),
            advertise_port: self.port,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn client(s: &Srv) -> Client {
    Client::connect(&s.addr(), Some(PW), Timeouts::default())
        .await
        .expect("connect")
}

async fn call(s: &Srv, args: &[&str]) -> Value {
    client(s).await.call(args).await.expect("command")
}

async fn info(s: &Srv, section: &str) -> String {
    client(s).await.info(section).await.expect("INFO")
}

fn field(text: &str, name: &str) -> Option<String> {
    info_fields(text)
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Observes every server and maps `master_host:master_port` back to a pod name (ports are
/// what tells the pods apart on loopback).
async fn observe(servers: &[&Srv]) -> Vec<PodObservation> {
    let mut out = Vec::new();
    for s in servers {
        let p = probe::observe(
            &s.name,
            s.ordinal,
            &s.addr(),
            &tandem_operator::failover::credentials::Credentials::password(Some(PW.into())),
            Timeouts::default(),
        )
        .await;
        let mut o = p.observation;
        o.master_host = p.master_addr.map(|(h, port)| {
            servers
                .iter()
                .find(|x| x.port == port)
                .map(|x| x.name.clone())
                .unwrap_or(format!("{h}:{port}"))
        });
        out.push(o);
    }
    out
}

/// Polls `cond` every 20 ms for at most `limit`.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn link_up(replica: &Srv, master: &Srv) -> bool {
    match Client::connect(&replica.addr(), Some(PW), Timeouts::default()).await {
        Ok(mut c) => match c.info("replication").await {
            Ok(t) => {
                field(&t, "master_link_status").as_deref() == Some("up")
                    && field(&t, "master_port") == Some(master.port.to_string())
            }
            Err(_) => false,
        },
        Err(_) => false,
    }
}

fn settings(unreachable_for: Duration) -> Settings {
    let now = SystemTime::now();
    Settings {
        down_after: Duration::from_secs(5),
        now,
        master_unreachable_since: Some(now - unreachable_for),
        topology: Topology::Star,
        min_reachable: None,
    }
}

/// Writes `n` keys with `prefix`, `WAIT 2` after each; returns the keys acknowledged by both
/// replicas.
async fn write_with_wait(master: &Srv, prefix: &str, n: usize) -> Vec<String> {
    let mut c = client(master).await;
    let mut acked = Vec::new();
    for i in 0..n {
        let k = format!("{prefix}:{i}");
        assert_eq!(
            c.call(&["SET", &k, &format!("v{i}")]).await.expect("SET"),
            Value::Simple("OK".into())
        );
        if let Ok(Value::Int(r)) = c.call(&["WAIT", "2", "1000"]).await {
            if r >= 2 {
                acked.push(k);
            }
        }
    }
    acked
}

async fn missing_keys(s: &Srv, keys: &[String]) -> Vec<String> {
    let mut c = client(s).await;
    let mut missing = Vec::new();
    for k in keys {
        if c.call(&["EXISTS", k]).await.expect("EXISTS") != Value::Int(1) {
            missing.push(k.clone());
        }
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_killed_replica_promoted_other_partially_resynced_old_master_rejoins() {
    let mut a = Srv::start("kill", 0);
    let b = Srv::start("kill", 1);
    let c = Srv::start("kill", 2);
    for r in [&b, &c] {
        call(r, &["REPLICAOF", "127.0.0.1", &a.port.to_string()]).await;
    }
    wait_for("replicas linked to A", Duration::from_secs(10), || async {
        link_up(&b, &a).await && link_up(&c, &a).await
    })
    .await;
    let acked = write_with_wait(&a, "before", 200).await;
    assert_eq!(
        acked.len(),
        200,
        "every write acknowledged by both replicas"
    );

    a.kill();
    let pods = observe(&[&a, &b, &c]).await;
    assert!(!pods[0].reachable);
    assert!(pods[1..]
        .iter()
        .all(|p| p.reachable && p.role == ObservedRole::Replica));
    let recorded = RecordedState {
        master: Some("r-0".into()),
        epoch: 1,
        failover_in_progress: None,
    };
    // Not yet down for long enough: wait.
    assert!(matches!(
        plan(&pods, &recorded, &settings(Duration::from_secs(1))),
        Plan::Wait { .. }
    ));
    let p = plan(&pods, &recorded, &settings(Duration::from_secs(6)));
    assert_eq!(
        p,
        Plan::Promote {
            pod: "r-1".into(),
            reason: PromoteReason::MasterUnreachable,
            epoch: 2,
            repoint: vec![Repoint::new("r-2", "r-1")],
        }
    );

    let ex = Executor::new(
        vec![a.target(), b.target(), c.target()],
        Some(PW.to_string()),
    );
    let report = ex.execute(&p, &["r-0".to_string()]).await.expect("execute");
    assert_eq!(report.promoted.as_deref(), Some("r-1"));
    assert_eq!(report.epoch, Some(2), "epoch = recorded + 1");
    assert_eq!(report.failures().count(), 0, "{report:?}");
    assert_eq!(report.repointed().collect::<Vec<_>>(), vec![("r-2", "r-1")]);

    // B is master and takes writes; C follows it through a partial resync.
    let rep = info(&b, "replication").await;
    assert_eq!(field(&rep, "role").as_deref(), Some("master"));
    wait_for("C linked to B", Duration::from_secs(10), || link_up(&c, &b)).await;
    let stats = info(&b, "stats").await;
    assert_eq!(field(&stats, "sync_full").as_deref(), Some("0"), "{stats}");
    let partial: i64 = field(&stats, "sync_partial_ok")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(partial >= 1, "{stats}");
    assert_eq!(missing_keys(&b, &acked).await, Vec::<String>::new());
    let after = write_with_wait_one(&b, "after", 20).await;
    assert_eq!(after.len(), 20);
    wait_for("C has the new writes", Duration::from_secs(10), || async {
        missing_keys(&c, &after).await.is_empty()
    })
    .await;
    assert_eq!(missing_keys(&c, &acked).await, Vec::<String>::new());

    // Planning again is a no-op.
    let pods = observe(&[&a, &b, &c]).await;
    let recorded = RecordedState {
        master: Some("r-1".into()),
        epoch: 2,
        failover_in_progress: None,
    };
    assert_eq!(
        plan(&pods, &recorded, &settings(Duration::ZERO)),
        Plan::Keep
    );

    // A comes back (empty, as a master); a client is connected to it. The next round
    // repoints it under B and disconnects that client.
    assert!(a.spawn(), "restart A: {}", a.log());
    let mut stale = client(&a).await;
    assert_eq!(
        stale.call(&["PING"]).await.expect("PING"),
        Value::Simple("PONG".into())
    );
    let pods = observe(&[&a, &b, &c]).await;
    let p = plan(&pods, &recorded, &settings(Duration::ZERO));
    assert_eq!(p, Plan::Repoint(vec![Repoint::new("r-0", "r-1")]));
    let demoted: Vec<String> = pods
        .iter()
        .filter(|o| o.role == ObservedRole::Master && o.name != "r-1")
        .map(|o| o.name.clone())
        .collect();
    let report = ex.execute(&p, &demoted).await.expect("execute");
    assert!(
        report.steps.iter().any(
            |s| matches!(s, Step::ClientsKilled { pod, killed } if pod == "r-0" && *killed >= 1)
        ),
        "{report:?}"
    );
    assert!(
        stale.call(&["PING"]).await.is_err(),
        "the client of the demoted master was disconnected"
    );
    wait_for("A linked to B", Duration::from_secs(10), || link_up(&a, &b)).await;
    wait_for("A has B's data", Duration::from_secs(10), || async {
        missing_keys(&a, &acked).await.is_empty()
    })
    .await;
}

/// Writes with `WAIT 1` (one replica is enough).
async fn write_with_wait_one(master: &Srv, prefix: &str, n: usize) -> Vec<String> {
    let mut c = client(master).await;
    let mut acked = Vec::new();
    for i in 0..n {
        let k = format!("{prefix}:{i}");
        if c.call(&["SET", &k, "x"]).await.ok() != Some(Value::Simple("OK".into())) {
            continue;
        }
        if let Ok(Value::Int(r)) = c.call(&["WAIT", "1", "1000"]).await {
            if r >= 1 {
                acked.push(k);
            }
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_under_write_load_keeps_every_acknowledged_write() {
    let a = Srv::start("switch", 0);
    let b = Srv::start("switch", 1);
    let c = Srv::start("switch", 2);
    for r in [&b, &c] {
        call(r, &["REPLICAOF", "127.0.0.1", &a.port.to_string()]).await;
    }
    wait_for("replicas linked to A", Duration::from_secs(10), || async {
        link_up(&b, &a).await && link_up(&c, &a).await
    })
    .await;

    // A writer acknowledged by A's "OK" (no WAIT: the switchover itself must not lose these).
    let addr = a.addr();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        let Ok(mut c) = Client::connect(&addr, Some(PW), Timeouts::default()).await else {
            return acked;
        };
        for i in 0..100_000 {
            if *stop_rx.borrow_and_update() {
                break;
            }
            let k = format!("load:{i}");
            match c.call(&["SET", &k, "x"]).await {
                Ok(Value::Simple(s)) if s == "OK" => acked.push(k),
                // Demoted (READONLY) or disconnected by the executor: stop.
                _ => break,
            }
        }
        acked
    });
    // Let some load through first.
    wait_for("some writes", Duration::from_secs(10), || async {
        let t = info(&a, "replication").await;
        field(&t, "master_repl_offset")
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|o| o > 2000)
    })
    .await;

    let ex = Executor::new(
        vec![a.target(), b.target(), c.target()],
        Some(PW.to_string()),
    );
    let report = ex
        .switchover(
            "r-0",
            "r-1",
            &[Repoint::new("r-2", "r-1")],
            4,
            Duration::from_secs(5),
        )
        .await
        .expect("switchover");
    let _ = stop_tx.send(true);
    let acked = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("writer stops")
        .expect("writer task");
    assert!(!acked.is_empty());
    assert_eq!(report.promoted.as_deref(), Some("r-1"));
    assert_eq!(report.epoch, Some(4));
    assert_eq!(report.failures().count(), 0, "{report:?}");
    assert!(report
        .steps
        .iter()
        .any(|s| matches!(s, Step::CaughtUp { pod, .. } if pod == "r-1")));

    assert_eq!(
        field(&info(&b, "replication").await, "role").as_deref(),
        Some("master")
    );
    assert_eq!(
        missing_keys(&b, &acked).await,
        Vec::<String>::new(),
        "acknowledged writes lost"
    );
    wait_for("A and C follow B", Duration::from_secs(10), || async {
        link_up(&a, &b).await && link_up(&c, &b).await
    })
    .await;
    // A no longer takes writes and is not left paused.
    let mut ca = client(&a).await;
    match ca.command(&["SET", "x", "1"]).await.expect("reply") {
        Value::Error(e) => assert!(e.starts_with("READONLY"), "{e}"),
        other => panic!("write accepted on the demoted master: {other:?}"),
    }
    // The new master serves writes, replicated to both.
    let after = write_with_wait(&b, "after", 10).await;
    assert_eq!(after.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_that_cannot_catch_up_leaves_the_master_in_place() {
    let a = Srv::start("nocatch", 0);
    let b = Srv::start("nocatch", 1);
    // b followed a, then lost it (points at a closed port): it can never catch up with what
    // a writes afterwards.
    call(&b, &["REPLICAOF", "127.0.0.1", &a.port.to_string()]).await;
    wait_for("b linked to a", Duration::from_secs(10), || link_up(&b, &a)).await;
    call(&b, &["REPLICAOF", "127.0.0.1", &free_port().to_string()]).await;
    call(&a, &["SET", "k", "v"]).await;
    let ex = Executor::new(vec![a.target(), b.target()], Some(PW.to_string()));
    let err = ex
        .switchover("r-0", "r-1", &[], 2, Duration::from_millis(300))
        .await
        .expect_err("must not promote");
    assert!(err.to_string().contains("did not catch up"), "{err}");
    assert_eq!(
        field(&info(&a, "replication").await, "role").as_deref(),
        Some("master")
    );
    // Unpaused: writes go through at once.
    let mut c = client(&a).await;
    assert_eq!(
        c.call(&["SET", "k2", "v"]).await.expect("SET"),
        Value::Simple("OK".into())
    );
}

/// With the fence server support (`tandem-fenced-start yes`), a restarted pod refuses writes
/// until the executor assigns its role; the roles plan repoints it under the current master.
/// Skipped (with a message) by a server build without that directive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_restart_refuses_writes_until_repointed_under_the_master() {
    let b = Srv::start("fenced", 1);
    let a = match Srv::try_start("fenced", 0, &["--tandem-fenced-start", "yes"]) {
        Ok(a) => a,
        Err(_) => {
            eprintln!("skipped: this tandem-server does not start with tandem-fenced-start");
            return;
        }
    };
    if field(&info(&a, "replication").await, "tandem_fenced").is_none() {
        eprintln!(
            "skipped: this tandem-server has no fenced start mode (no tandem_fenced in INFO)"
        );
        return;
    }
    let keys = {
        let mut c = client(&b).await;
        let mut keys = Vec::new();
        for i in 0..20 {
            let k = format!("k{i}");
            c.call(&["SET", &k, "v"]).await.expect("SET");
            keys.push(k);
        }
        keys
    };
    let pods = observe(&[&a, &b]).await;
    assert_eq!(pods[0].role, ObservedRole::Fenced, "{:?}", pods[0]);
    match client(&a)
        .await
        .command(&["SET", "x", "1"])
        .await
        .expect("reply")
    {
        Value::Error(e) => assert!(e.starts_with("FENCED"), "{e}"),
        other => panic!("a fenced pod accepted a write: {other:?}"),
    }
    let recorded = RecordedState {
        master: Some("r-1".into()),
        epoch: 2,
        failover_in_progress: None,
    };
    let p = plan(&pods, &recorded, &settings(Duration::ZERO));
    assert_eq!(p, Plan::Repoint(vec![Repoint::new("r-0", "r-1")]));
    let ex = Executor::new(vec![a.target(), b.target()], Some(PW.to_string()));
    let report = ex.execute(&p, &[]).await.expect("execute");
    assert_eq!(report.failures().count(), 0, "{report:?}");
    wait_for("A linked to B", Duration::from_secs(10), || link_up(&a, &b)).await;
    assert_eq!(
        field(&info(&a, "replication").await, "tandem_fenced").as_deref(),
        Some("0")
    );
    wait_for("A has B's data", Duration::from_secs(10), || async {
        missing_keys(&a, &keys).await.is_empty()
    })
    .await;
}
