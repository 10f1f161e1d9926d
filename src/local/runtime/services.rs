//! Services: a loopback TCP proxy per port of every Service with a selector (not
//! headless), forwarding each new connection to a Ready pod (round robin), the
//! `endpoints.json` file, and core v1 Endpoints objects (also for headless Services).
//! Where the network can (Netns mode with `nft`, `sandbox::Network::forward`), the kernel
//! forwards the same addresses to the same pods and the proxies only see connections to
//! Services without Ready pods.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::statefulset::pod_ready;
use super::Shared;
use crate::local::sandbox;

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
    /// The kernel forwarding last applied (Netns mode with `nft`; see `sandbox::Network`).
    forwarded: Option<Vec<sandbox::Forward>>,
}

async fn proxy_loop(listener: TcpListener, backends: Arc<Mutex<Vec<SocketAddr>>>) {
    let rr = AtomicUsize::new(0);
    let mut conns = JoinSet::new();
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        let list = backends.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if list.is_empty() {
            continue;
        }
        let start = rr.fetch_add(1, Ordering::Relaxed);
        conns.spawn(async move {
            for k in 0..list.len() {
                let target = list[(start + k) % list.len()];
                let conn =
                    tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(target)).await;
                if let Ok(Ok(mut out)) = conn {
                    let _ = inbound.set_nodelay(true);
                    let _ = out.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    return;
                }
            }
        });
    }
}

async fn bind(preferred: Option<SocketAddr>) -> std::io::Result<TcpListener> {
    if let Some(a) = preferred {
        if let Ok(l) =
            TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), a.port())).await
        {
            return Ok(l);
        }
    }
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await
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
            forwarded: None,
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
                match bind(preferred).await {
                    Ok(l) => {
                        let addr = l
                            .local_addr()
                            .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
                        let backends = Arc::new(Mutex::new(b));
                        let task = tokio::spawn(proxy_loop(l, backends.clone()));
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
        self.sync_forwarding().await;
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

    /// Kernel forwarding of every proxied port to the same backends the proxy would pick,
    /// when the network has it: connections to the Service address then skip the proxy.
    async fn sync_forwarding(&mut self) {
        if !self.shared.network.forwards() {
            return;
        }
        let mut forwards: Vec<sandbox::Forward> = self
            .proxies
            .values()
            .map(|px| {
                let pods = px
                    .backends
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .filter_map(|a| match a {
                        SocketAddr::V4(v4) => Some(*v4),
                        SocketAddr::V6(_) => None,
                    })
                    .collect();
                (px.addr.port(), pods)
            })
            .collect();
        forwards.sort();
        if self.forwarded.as_ref() == Some(&forwards) {
            return;
        }
        let net = self.shared.network.clone();
        let apply = forwards.clone();
        match tokio::task::spawn_blocking(move || net.forward(&apply)).await {
            Ok(Ok(())) => self.forwarded = Some(forwards),
            Ok(Err(e)) => {
                // Rules that could not be replaced may point at old pods: drop them all
                // (the proxies carry the traffic), and try again at the next sync.
                tracing::warn!("service forwarding: {e}; the proxies carry the traffic");
                let net = self.shared.network.clone();
                let _ = tokio::task::spawn_blocking(move || net.forward(&[])).await;
                self.forwarded = None;
            }
            Err(e) => tracing::warn!("service forwarding: {e}"),
        }
    }

    pub async fn shutdown(&mut self) {
        for (_, px) in self.proxies.drain() {
            px.task.abort();
            let _ = px.task.await;
        }
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
