//! Services: a loopback TCP proxy per port of every Service with a selector (not
//! headless), forwarding each new connection to a Ready pod (round robin), the
//! `endpoints.json` file, and core v1 Endpoints objects (also for headless Services).
//!
//! The proxies run on one thread of their own ([`ProxyThread`]); what they cost per request
//! is measured by `bench/service_path.py` (docs/benchmarks.md, "Local-mode Service path").

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use super::statefulset::pod_ready;
use super::Shared;

/// How long a proxied connection waits for one backend before trying the next.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// Whether `pod` carries every label of `selector` (an empty selector selects nothing).
pub fn selects(selector: &BTreeMap<String, String>, pod: &Value) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| pod.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(&json!(v)))
}

/// The pod port a Service port targets: a number, or a container port name.
pub fn target_port(svc_port: &Value, pod: &Value) -> Option<u16> {
    let port = svc_port.get("port").and_then(Value::as_u64);
    match svc_port.get("targetPort") {
        None | Some(Value::Null) => port.and_then(|p| u16::try_from(p).ok()),
        Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Some(Value::String(name)) => {
            if let Ok(n) = name.parse::<u16>() {
                return Some(n);
            }
            pod.pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|c| {
                    c.get("ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
                .find(|p| s(p, "/name") == name)
                .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
                .and_then(|p| u16::try_from(p).ok())
        }
        Some(_) => None,
    }
}

/// Addresses of the Ready pods a Service port forwards to, sorted.
pub fn backends(
    selector: &BTreeMap<String, String>,
    svc_port: &Value,
    pods: &[Value],
) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = pods
        .iter()
        .filter(|p| selects(selector, p) && pod_ready(p))
        .filter_map(|p| {
            let ip: Ipv4Addr = s(p, "/status/podIP").parse().ok()?;
            Some(SocketAddr::new(IpAddr::V4(ip), target_port(svc_port, p)?))
        })
        .collect();
    out.sort();
    out
}

/// endpoints.json keys of the ports of a Service: `<ns>/<svc>` for the first port, plus
/// `<ns>/<svc>:<port name>` for every named port of a multi-port Service.
pub fn endpoint_keys(ns: &str, svc: &str, ports: &[Value]) -> Vec<Vec<String>> {
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut keys = Vec::new();
            if i == 0 {
                keys.push(format!("{ns}/{svc}"));
            }
            let name = s(p, "/name");
            if ports.len() > 1 && !name.is_empty() {
                keys.push(format!("{ns}/{svc}:{name}"));
            }
            keys
        })
        .collect()
}

struct Proxy {
    addr: SocketAddr,
    keys: Vec<String>,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
}

/// The Service proxies, driven by the runtime's main loop.
pub(crate) struct Services {
    shared: Arc<Shared>,
    /// By (namespace, service, service port).
    proxies: HashMap<(String, String, u16), Proxy>,
    /// Addresses from a previous run's endpoints.json, reused when free.
    recorded: BTreeMap<String, SocketAddr>,
    /// Where the proxies run.
    thread: ProxyThread,
}

/// The thread every Service proxy runs on: one current-thread tokio runtime. A wake-up
/// serves every connection that became ready on the thread that polled them (no task
/// moves between the operator's workers), a proxy under load cannot delay the controller
/// or the API (nor they it), and the proxies' CPU shows as the `svc-proxy` thread's. The
/// CPU per forwarded request is the kernel's (two more TCP sockets per request, see
/// docs/benchmarks.md) and did not move measurably with this thread.
struct ProxyThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProxyThread {
    /// Starts the thread; on failure the proxies run on the caller's runtime instead.
    fn start() -> ProxyThread {
        let started = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|rt| {
                let handle = rt.handle().clone();
                let (tx, rx) = oneshot::channel::<()>();
                let thread =
                    std::thread::Builder::new()
                        .name("svc-proxy".into())
                        .spawn(move || {
                            // Returns when `stop` is sent or dropped; dropping the runtime then
                            // cancels the proxies still running on it.
                            rt.block_on(async {
                                let _ = rx.await;
                            });
                        })?;
                Ok((handle, tx, thread))
            });
        match started {
            Ok((handle, tx, thread)) => ProxyThread {
                handle,
                stop: Some(tx),
                thread: Some(thread),
            },
            Err(e) => {
                tracing::warn!(error = %e, "service proxy thread not started; proxying on the runtime");
                ProxyThread {
                    handle: Handle::current(),
                    stop: None,
                    thread: None,
                }
            }
        }
    }

    /// Stops the thread and waits for it (its runtime drops every task left on it).
    async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for ProxyThread {
    fn drop(&mut self) {
        // Without a `stop` the thread still ends: the receiver sees the sender dropped.
        self.stop.take();
    }
}

/// Accepts on `listener` and forwards each connection to one of `backends`, starting at
/// the next in round robin and trying the others when a connect fails.
async fn proxy_loop(listener: std::net::TcpListener, backends: Arc<Mutex<Vec<SocketAddr>>>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "service proxy: listener not registered");
            return;
        }
    };
    let mut rr: usize = 0;
    let mut conns = JoinSet::new();
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        let list = backends.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if list.is_empty() {
            continue;
        }
        conns.spawn(forward(inbound, list, rr));
        rr = rr.wrapping_add(1);
    }
}

/// One proxied connection: connect, then copy both ways until either side closes.
async fn forward(mut inbound: TcpStream, list: Vec<SocketAddr>, start: usize) {
    for k in 0..list.len() {
        let Some(&target) = list.get(start.wrapping_add(k) % list.len()) else {
            return;
        };
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await;
        if let Ok(Ok(mut out)) = conn {
            // Both legs: a request or reply of a few bytes goes out at once (no Nagle
            // delay waiting for the previous segment's ACK).
            let _ = inbound.set_nodelay(true);
            let _ = out.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
            return;
        }
    }
}

/// Binds the proxy's listener on 127.0.0.1, at the port of `preferred` when it is free.
/// A std listener: it is registered with the proxy thread's runtime by [`proxy_loop`].
fn bind(preferred: Option<SocketAddr>) -> std::io::Result<std::net::TcpListener> {
    let at = |port| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port));
    let l = match preferred.and_then(|a| at(a.port()).ok()) {
        Some(l) => l,
        None => at(0)?,
    };
    l.set_nonblocking(true)?;
    Ok(l)
}

impl Services {
    pub fn new(shared: Arc<Shared>) -> Services {
        let recorded = std::fs::read(shared.opts.state_dir.join("endpoints.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, String>>(&b).ok())
            .map(|m| {
                m.into_iter()
                    .filter_map(|(k, v)| v.parse().ok().map(|a| (k, a)))
                    .collect()
            })
            .unwrap_or_default();
        Services {
            shared,
            proxies: HashMap::new(),
            recorded,
            thread: ProxyThread::start(),
        }
    }

    pub async fn sync(&mut self) {
        let t = &self.shared.types;
        let services = self.shared.list(&t.services, None);
        let pods = self.shared.list(&t.pods, None);
        let mut live: Vec<(String, String, u16)> = Vec::new();
        for svc in &services {
            let ns = s(svc, "/metadata/namespace").to_string();
            let name = s(svc, "/metadata/name").to_string();
            let selector: BTreeMap<String, String> = svc
                .pointer("/spec/selector")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            if selector.is_empty() {
                continue;
            }
            let ports: Vec<Value> = svc
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ns_pods: Vec<Value> = pods
                .iter()
                .filter(|p| s(p, "/metadata/namespace") == ns)
                .cloned()
                .collect();
            self.sync_endpoints_object(svc, &ns, &name, &selector, &ports, &ns_pods);
            if s(svc, "/spec/clusterIP") == "None" {
                continue;
            }
            let keys = endpoint_keys(&ns, &name, &ports);
            for (p, keys) in ports.iter().zip(keys) {
                let Some(port) = p
                    .get("port")
                    .and_then(Value::as_u64)
                    .and_then(|x| u16::try_from(x).ok())
                else {
                    continue;
                };
                if !s(p, "/protocol").is_empty() && s(p, "/protocol") != "TCP" {
                    continue;
                }
                let id = (ns.clone(), name.clone(), port);
                live.push(id.clone());
                let b = backends(&selector, p, &ns_pods);
                if let Some(px) = self.proxies.get_mut(&id) {
                    *px.backends.lock().unwrap_or_else(|e| e.into_inner()) = b;
                    px.keys = keys;
                    continue;
                }
                let preferred = keys.first().and_then(|k| self.recorded.get(k)).copied();
                match bind(preferred) {
                    Ok(l) => {
                        let addr = l
                            .local_addr()
                            .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
                        let backends = Arc::new(Mutex::new(b));
                        let task = self.thread.handle.spawn(proxy_loop(l, backends.clone()));
                        self.proxies.insert(
                            id,
                            Proxy {
                                addr,
                                keys,
                                backends,
                                task,
                            },
                        );
                    }
                    Err(e) => tracing::warn!("service {ns}/{name} port {port}: proxy: {e}"),
                }
            }
        }
        self.proxies.retain(|id, px| {
            let keep = live.contains(id);
            if !keep {
                px.task.abort();
            }
            keep
        });
        let map: BTreeMap<String, SocketAddr> = self
            .proxies
            .values()
            .flat_map(|px| px.keys.iter().map(|k| (k.clone(), px.addr)))
            .collect();
        let mut cur = self
            .shared
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *cur != map || !self.shared.opts.state_dir.join("endpoints.json").exists() {
            self.shared.write_endpoints_file(&map);
            for (k, a) in &map {
                self.recorded.insert(k.clone(), *a);
            }
            *cur = map;
        }
    }

    fn sync_endpoints_object(
        &self,
        svc: &Value,
        ns: &str,
        name: &str,
        selector: &BTreeMap<String, String>,
        ports: &[Value],
        pods: &[Value],
    ) {
        let t = &self.shared.types;
        let selected: Vec<&Value> = pods
            .iter()
            .filter(|p| selects(selector, p) && !s(p, "/status/podIP").is_empty())
            .collect();
        let publish_not_ready = svc.pointer("/spec/publishNotReadyAddresses") == Some(&json!(true));
        let addr = |p: &Value| {
            let mut a = json!({
                "ip": s(p, "/status/podIP"),
                "nodeName": s(p, "/spec/nodeName"),
                "targetRef": {"kind": "Pod", "namespace": ns, "name": s(p, "/metadata/name"), "uid": s(p, "/metadata/uid")},
            });
            let h = s(p, "/spec/hostname");
            if !h.is_empty() {
                a["hostname"] = json!(h);
            }
            a
        };
        let ready: Vec<Value> = selected
            .iter()
            .filter(|p| publish_not_ready || pod_ready(p))
            .map(|p| addr(p))
            .collect();
        let not_ready: Vec<Value> = selected
            .iter()
            .filter(|p| !(publish_not_ready || pod_ready(p)))
            .map(|p| addr(p))
            .collect();
        let eports: Vec<Value> = ports
            .iter()
            .filter_map(|p| {
                let port = selected
                    .first()
                    .and_then(|pod| target_port(p, pod))
                    .or_else(|| target_port(p, &json!({})))?;
                let mut e = json!({"port": port, "protocol": p.get("protocol").cloned().unwrap_or(json!("TCP"))});
                if !s(p, "/name").is_empty() {
                    e["name"] = json!(s(p, "/name"));
                }
                Some(e)
            })
            .collect();
        let subsets = if ready.is_empty() && not_ready.is_empty() {
            json!([])
        } else {
            let mut sub = json!({"ports": eports});
            if !ready.is_empty() {
                sub["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                sub["notReadyAddresses"] = json!(not_ready);
            }
            json!([sub])
        };
        let labels = svc
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        match self.shared.store.get(&t.endpoints, ns, name) {
            Ok(mut cur) => {
                let cur_subsets = cur.get("subsets").cloned().unwrap_or(json!([]));
                if cur_subsets != subsets {
                    cur["subsets"] = subsets;
                    let _ = self
                        .shared
                        .store
                        .update(&t.endpoints, ns, name, cur, false, false);
                }
            }
            Err(_) => {
                let obj = json!({
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": ns, "labels": labels,
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                            "uid": s(svc, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true}]},
                    "subsets": subsets,
                });
                let _ = self.shared.store.create(&t.endpoints, ns, obj, false);
            }
        }
    }

    pub async fn shutdown(&mut self) {
        for (_, px) in self.proxies.drain() {
            px.task.abort();
            let _ = px.task.await;
        }
        self.thread.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, role: &str, ip: &str, ready: bool) -> Value {
        json!({
            "metadata": {"name": name, "labels": {"app": "r", "role": role}},
            "spec": {"containers": [{"name": "server", "ports": [{"name": "redis", "containerPort": 6379}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        })
    }

    #[test]
    fn selection_by_labels_and_readiness_with_named_target_port() {
        let pods = vec![
            pod("r-0", "master", "10.0.0.2", true),
            pod("r-1", "replica", "10.0.0.3", true),
            pod("r-2", "replica", "10.0.0.4", false),
        ];
        let sel = BTreeMap::from([
            ("app".to_string(), "r".to_string()),
            ("role".to_string(), "master".to_string()),
        ]);
        let port = json!({"port": 6379, "targetPort": "redis"});
        assert_eq!(
            backends(&sel, &port, &pods),
            vec!["10.0.0.2:6379".parse().unwrap()]
        );
        let sel_r = BTreeMap::from([("role".to_string(), "replica".to_string())]);
        assert_eq!(
            backends(&sel_r, &json!({"port": 7000, "targetPort": 6379}), &pods),
            vec!["10.0.0.3:6379".parse().unwrap()]
        );
        assert!(
            backends(&BTreeMap::new(), &port, &pods).is_empty(),
            "empty selector selects nothing"
        );
        assert_eq!(target_port(&json!({"port": 80}), &pods[0]), Some(80));
        assert_eq!(
            target_port(&json!({"port": 80, "targetPort": "nope"}), &pods[0]),
            None
        );
    }

    /// A backend that answers every read with `+OK\r\n` until the peer closes.
    async fn ok_server() -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while matches!(c.read(&mut buf).await, Ok(n) if n > 0) {
                        if c.write_all(b"+OK\r\n").await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn ask(addr: SocketAddr) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = TcpStream::connect(addr).await?;
        c.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    #[tokio::test]
    async fn proxy_thread_forwards_and_its_stop_closes_the_service_port() {
        let backend = ok_server().await;
        let mut thread = ProxyThread::start();
        assert!(thread.thread.is_some(), "the svc-proxy thread runs");
        let listener = bind(None).unwrap();
        let addr = listener.local_addr().unwrap();
        let backends = Arc::new(Mutex::new(Vec::new()));
        let task = thread.handle.spawn(proxy_loop(listener, backends.clone()));
        // No Ready endpoint: the connection is accepted and closed.
        assert!(ask(addr).await.is_err());
        *backends.lock().unwrap() = vec![backend];
        assert_eq!(ask(addr).await.unwrap(), "+OK\r\n");
        thread.stop().await;
        assert!(task.await.unwrap_err().is_cancelled());
        let refused = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await;
        assert!(matches!(refused, Ok(Err(_))), "port closed: {refused:?}");
    }

    #[test]
    fn multi_port_keys() {
        let ports = vec![
            json!({"name": "redis", "port": 6379}),
            json!({"name": "metrics", "port": 9121}),
        ];
        assert_eq!(
            endpoint_keys("default", "m", &ports),
            vec![
                vec!["default/m".to_string(), "default/m:redis".to_string()],
                vec!["default/m:metrics".to_string()],
            ]
        );
        assert_eq!(
            endpoint_keys("ns", "one", &ports[..1]),
            vec![vec!["ns/one".to_string()]]
        );
    }
}
