//! Kernel forwarding of Services (Netns mode, `nft` installed): nftables rules in a table of
//! this instance's own rewrite the Service's loopback address and port to a Ready pod's
//! address (DNAT), so a client's packets go to the pod directly, with no hop through a
//! user-space proxy. New connections are spread over the pods round robin (`numgen inc`);
//! an established connection keeps its pod (conntrack), as with kube-proxy. On the way out
//! the loopback source is rewritten to the bridge's address (masquerade) so the pod can
//! answer; that needs `route_localnet` on this instance's bridge, and only there.
//!
//! The user-space proxy (`runtime/services.rs`) stays bound to the same address: a port
//! whose Service has no Ready pod has no rule here, so its connections reach the proxy,
//! which closes them; and without `nft` (or when the table cannot be made) the proxy
//! carries all traffic.

use std::net::SocketAddrV4;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::SandboxError;

/// The nftables table of an instance (`instance` is `[a-z0-9]{1,6}`, checked by the caller).
pub(super) fn table_name(instance: &str) -> String {
    format!("tandem_{instance}")
}

/// One forwarded port: the Service's port on 127.0.0.1 and the pod addresses behind it.
pub type Forward = (u16, Vec<SocketAddrV4>);

/// Runs `nft` with `script` on stdin (`-f -`, one atomic transaction).
fn nft(bin: &str, script: &str) -> Result<(), SandboxError> {
    use std::io::Write;
    let failed = |status: String, stderr: String| SandboxError::Command {
        cmd: format!("{bin} -f -"),
        status,
        stderr,
    };
    let mut child = Command::new(bin)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed("not started".into(), e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| failed("stdin".into(), e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed("wait".into(), e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(
            out.status.to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// The script that (re)creates the table: an output NAT chain for the Service rules and the
/// masquerade of loopback sources leaving through `bridge`.
fn table_script(table: &str, bridge: &str) -> String {
    format!(
        "table ip {table} {{\n\
         \tchain services {{ type nat hook output priority -100; policy accept; }}\n\
         \tchain loopback_out {{ type nat hook postrouting priority 100; policy accept; \
         ip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade; }}\n\
         }}\n"
    )
}

/// The script that replaces every Service rule at once. Ports without pods get no rule.
fn rules_script(table: &str, forwards: &[Forward]) -> String {
    let mut s = format!("flush chain ip {table} services\n");
    for (port, pods) in forwards {
        let target = match pods.as_slice() {
            [] => continue,
            [one] => format!("{}:{}", one.ip(), one.port()),
            many => {
                let entries: Vec<String> = many
                    .iter()
                    .enumerate()
                    .map(|(i, a)| format!("{i} : {} . {}", a.ip(), a.port()))
                    .collect();
                format!(
                    "numgen inc mod {} map {{ {} }}",
                    many.len(),
                    entries.join(", ")
                )
            }
        };
        s.push_str(&format!(
            "add rule ip {table} services ip daddr 127.0.0.1 tcp dport {port} dnat ip to {target}\n"
        ));
    }
    s
}

/// The Service forwarding of one instance.
#[derive(Debug)]
pub(super) struct Nat {
    bin: String,
    table: String,
    /// The last rule script applied, so an unchanged set of Services costs no `nft` run.
    applied: Mutex<Option<String>>,
}

impl Nat {
    /// Creates the instance's table (replacing a leftover one) and allows loopback sources
    /// to be routed out of `bridge`. Fails when `nft` is missing or refuses.
    pub(super) fn create(instance: &str, bridge: &str) -> Result<Nat, SandboxError> {
        let bin = super::host::find_bin("nft").ok_or_else(|| SandboxError::Command {
            cmd: "nft".into(),
            status: "not found".into(),
            stderr: String::new(),
        })?;
        let table = table_name(instance);
        remove_table(&bin, &table);
        let sysctl = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
        std::fs::write(&sysctl, "1").map_err(|source| SandboxError::Io {
            what: format!("write {sysctl}"),
            source,
        })?;
        nft(&bin, &table_script(&table, bridge))?;
        Ok(Nat {
            bin,
            table,
            applied: Mutex::new(None),
        })
    }

    /// Makes the rules say `forwards` (one transaction; nothing runs when unchanged).
    pub(super) fn apply(&self, forwards: &[Forward]) -> Result<(), SandboxError> {
        let script = rules_script(&self.table, forwards);
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        if applied.as_deref() == Some(script.as_str()) {
            return Ok(());
        }
        let result = nft(&self.bin, &script);
        *applied = result.is_ok().then_some(script);
        result
    }

    pub(super) fn remove(&self) {
        remove_table(&self.bin, &self.table);
    }
}

/// Deletes a table if it exists (errors ignored: best effort, as the sweep is).
fn remove_table(bin: &str, table: &str) {
    let _ = Command::new(bin)
        .args(["delete", "table", "ip", table])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Removes an instance's table, if `nft` exists (the sweep of a dead instance).
pub(super) fn sweep(instance: &str) {
    if let Some(bin) = super::host::find_bin("nft") {
        remove_table(&bin, &table_name(instance));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_replace_the_chain_and_spread_over_pods() {
        let a: SocketAddrV4 = "10.1.2.3:6379".parse().expect("addr");
        let b: SocketAddrV4 = "10.1.2.4:6379".parse().expect("addr");
        let s = rules_script(
            "tandem_ab1",
            &[(40001, vec![a]), (40002, vec![]), (40003, vec![a, b])],
        );
        assert_eq!(
            s,
            "flush chain ip tandem_ab1 services\n\
             add rule ip tandem_ab1 services ip daddr 127.0.0.1 tcp dport 40001 dnat ip to 10.1.2.3:6379\n\
             add rule ip tandem_ab1 services ip daddr 127.0.0.1 tcp dport 40003 dnat ip to \
             numgen inc mod 2 map { 0 : 10.1.2.3 . 6379, 1 : 10.1.2.4 . 6379 }\n"
        );
        let t = table_script("tandem_ab1", "tndab1br");
        assert!(t.contains("oifname \"tndab1br\" masquerade"), "{t}");
        assert!(t.contains("hook output"), "{t}");
        // nft itself accepts both scripts (check mode: nothing is applied), where it runs.
        if let (Some(bin), Some(0)) = (
            super::super::host::find_bin("nft"),
            super::super::host::effective_uid(),
        ) {
            let both = format!("{t}{s}");
            let out = Command::new(&bin)
                .args(["-c", "-f", "-"])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    if let Some(mut i) = c.stdin.take() {
                        i.write_all(both.as_bytes())?;
                    }
                    c.wait_with_output()
                })
                .expect("nft -c");
            assert!(
                out.status.success(),
                "{}\n{both}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
