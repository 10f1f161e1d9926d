//! Container probes: tcpSocket and httpGet (plain HTTP/1.1), with the Kubernetes timing
//! fields. exec and gRPC probes are not supported in local mode: such a probe always fails
//! with a message saying so (reported in the pod's Ready condition).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Liveness => "Liveness",
        }
    }
}

/// What a probe does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeAction {
    Tcp {
        port: u16,
    },
    Http {
        port: u16,
        path: String,
        host: Option<String>,
        headers: Vec<(String, String)>,
    },
    /// Cannot run in local mode (exec, gRPC, https, unresolvable port): always fails.
    Unsupported(String),
}

/// A parsed probe with Kubernetes defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    pub action: ProbeAction,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn secs(v: Option<i32>, default: i32, min: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(min) as u64)
}

fn resolve_port(p: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => {
            u16::try_from(*n).map_err(|_| format!("probe port {n} is out of range"))
        }
        IntOrString::String(s) => {
            if let Ok(n) = s.parse::<u16>() {
                return Ok(n);
            }
            ports
                .iter()
                .find(|cp| cp.name.as_deref() == Some(s.as_str()))
                .and_then(|cp| u16::try_from(cp.container_port).ok())
                .ok_or_else(|| format!("probe port name {s:?} is not a port of the container"))
        }
    }
}

/// Parse a Kubernetes probe of a container with these ports.
pub fn parse_probe(p: &Probe, ports: &[ContainerPort]) -> ProbeSpec {
    let action = if let Some(t) = &p.tcp_socket {
        match resolve_port(&t.port, ports) {
            Ok(port) => ProbeAction::Tcp { port },
            Err(e) => ProbeAction::Unsupported(e),
        }
    } else if let Some(h) = &p.http_get {
        if h.scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"))
        {
            ProbeAction::Unsupported("https probes are not supported in local mode".into())
        } else {
            match resolve_port(&h.port, ports) {
                Ok(port) => ProbeAction::Http {
                    port,
                    path: h
                        .path
                        .clone()
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| "/".into()),
                    host: h.host.clone().filter(|h| !h.is_empty()),
                    headers: h
                        .http_headers
                        .iter()
                        .flatten()
                        .map(|x| (x.name.clone(), x.value.clone()))
                        .collect(),
                },
                Err(e) => ProbeAction::Unsupported(e),
            }
        }
    } else if p.exec.is_some() {
        ProbeAction::Unsupported("exec probes are not supported in local mode".into())
    } else if p.grpc.is_some() {
        ProbeAction::Unsupported("gRPC probes are not supported in local mode".into())
    } else {
        ProbeAction::Unsupported("probe has no handler".into())
    };
    ProbeSpec {
        action,
        initial_delay: secs(p.initial_delay_seconds, 0, 0),
        period: secs(p.period_seconds, 10, 1),
        timeout: secs(p.timeout_seconds, 1, 1),
        success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
        failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
    }
}

/// Status code of an HTTP/1.x status line.
pub fn parse_status_line(line: &str) -> Option<u16> {
    let mut it = line.split_whitespace();
    let version = it.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    it.next()?.parse().ok()
}

/// Run one probe against `ip`. Ok(()) on success, Err(message) on failure.
pub async fn run_once(spec: &ProbeSpec, ip: IpAddr) -> Result<(), String> {
    match tokio::time::timeout(spec.timeout, attempt(&spec.action, ip)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timeout after {}s", spec.timeout.as_secs())),
    }
}

async fn attempt(action: &ProbeAction, ip: IpAddr) -> Result<(), String> {
    match action {
        ProbeAction::Unsupported(m) => Err(m.clone()),
        ProbeAction::Tcp { port } => TcpStream::connect(SocketAddr::new(ip, *port))
            .await
            .map(|_| ())
            .map_err(|e| format!("dial tcp {ip}:{port}: {e}")),
        ProbeAction::Http {
            port,
            path,
            host,
            headers,
        } => {
            let addr = SocketAddr::new(ip, *port);
            let mut s = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("Get \"http://{addr}{path}\": {e}"))?;
            let host = host.clone().unwrap_or_else(|| addr.to_string());
            let mut req = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
            );
            for (k, v) in headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("\r\n");
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("write: {e}"))?;
            let mut buf = Vec::with_capacity(256);
            let mut chunk = [0u8; 256];
            while !buf.contains(&b'\n') && buf.len() < 8192 {
                let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let line = String::from_utf8_lossy(&buf);
            let first = line.lines().next().unwrap_or_default();
            match parse_status_line(first) {
                Some(code) if (200..400).contains(&code) => Ok(()),
                Some(code) => Err(format!("HTTP probe failed with statuscode: {code}")),
                None => Err("malformed HTTP response".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, TCPSocketAction};

    fn ports() -> Vec<ContainerPort> {
        vec![ContainerPort {
            name: Some("redis".into()),
            container_port: 6379,
            ..ContainerPort::default()
        }]
    }

    #[test]
    fn tcp_named_port_and_defaults() {
        let p = Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("redis".into()),
                ..TCPSocketAction::default()
            }),
            ..Probe::default()
        };
        let s = parse_probe(&p, &ports());
        assert_eq!(s.action, ProbeAction::Tcp { port: 6379 });
        assert_eq!(s.period, Duration::from_secs(10));
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!((s.success_threshold, s.failure_threshold), (1, 3));
        assert_eq!(s.initial_delay, Duration::ZERO);
    }

    #[test]
    fn http_fields_and_unknown_port_name() {
        let p = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(8080),
                path: Some("/healthz".into()),
                ..HTTPGetAction::default()
            }),
            initial_delay_seconds: Some(3),
            period_seconds: Some(2),
            failure_threshold: Some(5),
            ..Probe::default()
        };
        let s = parse_probe(&p, &ports());
        assert!(
            matches!(&s.action, ProbeAction::Http { port: 8080, path, .. } if path == "/healthz")
        );
        assert_eq!(s.initial_delay, Duration::from_secs(3));
        assert_eq!(s.period, Duration::from_secs(2));
        assert_eq!(s.failure_threshold, 5);
        let bad = Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("nope".into()),
                ..TCPSocketAction::default()
            }),
            ..Probe::default()
        };
        assert!(matches!(
            parse_probe(&bad, &ports()).action,
            ProbeAction::Unsupported(_)
        ));
    }

    #[test]
    fn exec_is_unsupported() {
        let p = Probe {
            exec: Some(ExecAction {
                command: Some(vec!["true".into()]),
            }),
            ..Probe::default()
        };
        match parse_probe(&p, &[]).action {
            ProbeAction::Unsupported(m) => assert!(m.contains("exec probes")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status_line("HTTP/1.0 503 Busy"), Some(503));
        assert_eq!(parse_status_line("SSH-2.0"), None);
    }

    #[tokio::test]
    async fn http_probe_against_a_tiny_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            for code in [200u16, 500] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut b = [0u8; 512];
                let _ = s.read(&mut b).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let spec = ProbeSpec {
            action: ProbeAction::Http {
                port,
                path: "/".into(),
                host: None,
                headers: vec![],
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            success_threshold: 1,
            failure_threshold: 1,
        };
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(run_once(&spec, ip).await, Ok(()));
        assert!(run_once(&spec, ip).await.unwrap_err().contains("500"));
    }
}
