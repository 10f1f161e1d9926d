//! Carries a [`Plan`] out over RESP: `REPLICAOF NO ONE` on the pod to promote (also how a
//! fenced pod is unfenced as master), `REPLICAOF <host> <port>` on every pod to repoint (which
//! unfences a fenced pod as a replica), and `CLIENT KILL TYPE normal` on a demoted master so
//! its clients reconnect through the master Service. [`Executor::switchover`] is the planned
//! variant that loses no acknowledged write: writes paused on the old master until the
//! target has caught up.
//!
//! Each pod is known by two addresses: where the operator connects (`connect`, the pod IP in a
//! cluster) and what other pods are told to follow (`advertise_host`/`advertise_port`, the
//! stable pod DNS name). Tests run every pod on 127.0.0.1 with distinct ports.
//!
//! Every command is idempotent (`REPLICAOF NO ONE` on a master and `REPLICAOF` to the current
//! upstream are no-ops), so a plan interrupted half-way can simply be executed again.

use std::time::{Duration, Instant};

use super::credentials::Credentials;
use super::planner::Plan;
use super::probe::{parse_replication, Client, ProbeError, Timeouts, Value};
use super::topology::Repoint;

/// How to reach one pod and how the others should name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTarget {
    pub name: String,
    pub ordinal: u32,
    /// `host:port` the operator connects to.
    pub connect: String,
    /// Host put in `REPLICAOF` commands that make another pod follow this one.
    pub advertise_host: String,
    pub advertise_port: u16,
}

/// One thing the executor did (or failed to do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Promoted {
        pod: String,
        took: Duration,
    },
    Repointed {
        pod: String,
        upstream: String,
        took: Duration,
    },
    ClientsKilled {
        pod: String,
        killed: i64,
    },
    WritesPaused {
        pod: String,
    },
    CaughtUp {
        pod: String,
        offset: i64,
        took: Duration,
    },
    WritesUnpaused {
        pod: String,
    },
    /// A non-fatal failure (a repoint of a pod that just went away): the next round retries.
    Failed {
        pod: String,
        action: String,
        error: String,
    },
}

/// What [`Executor::execute`] / [`Executor::switchover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub steps: Vec<Step>,
    /// The pod promoted (also when it already was master).
    pub promoted: Option<String>,
    /// The epoch to record when a pod was promoted.
    pub epoch: Option<u64>,
    pub duration: Duration,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Failed { .. }))
    }

    pub fn repointed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.steps.iter().filter_map(|s| match s {
            Step::Repointed { pod, upstream, .. } => Some((pod.as_str(), upstream.as_str())),
            _ => None,
        })
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ExecError {
    #[error("pod {0:?} has no known address")]
    UnknownPod(String),
    #[error("promoting {pod}: {source}")]
    Promote {
        pod: String,
        #[source]
        source: ProbeError,
    },
    /// A command on a pod failed (connect, auth, or its reply was an error).
    #[error(transparent)]
    Command(#[from] ProbeError),
    #[error("unexpected reply {0}")]
    UnexpectedReply(String),
    #[error("switchover from {from} to {to}: {reason}")]
    Switchover {
        from: String,
        to: String,
        reason: String,
    },
}

/// Carries plans out against a fixed set of pods.
#[derive(Debug, Clone)]
pub struct Executor {
    pub targets: Vec<PodTarget>,
    pub credentials: Credentials,
    /// Set when the pods are reached over TLS.
    pub tls: Option<crate::tls::client::TlsClient>,
    pub timeouts: Timeouts,
}

impl Executor {
    pub fn new(targets: Vec<PodTarget>, password: Option<String>) -> Self {
        Executor {
            targets,
            credentials: Credentials::password(password),
            tls: None,
            timeouts: Timeouts::default(),
        }
    }

    fn target(&self, pod: &str) -> Result<&PodTarget, ExecError> {
        self.targets
            .iter()
            .find(|t| t.name == pod)
            .ok_or_else(|| ExecError::UnknownPod(pod.to_string()))
    }

    async fn client(&self, pod: &PodTarget) -> Result<Client, ProbeError> {
        super::probe::connect_as(
            &pod.connect,
            &self.credentials,
            self.timeouts,
            self.tls.as_ref(),
        )
        .await
    }

    /// `REPLICAOF NO ONE` on `pod`.
    pub async fn promote(&self, pod: &str) -> Result<Duration, ExecError> {
        let t = self.target(pod)?;
        let start = Instant::now();
        let run = async {
            let mut c = self.client(t).await?;
            c.call(&["REPLICAOF", "NO", "ONE"]).await
        };
        run.await.map_err(|source| ExecError::Promote {
            pod: pod.to_string(),
            source,
        })?;
        Ok(start.elapsed())
    }

    /// `REPLICAOF <upstream host> <port>` on `pod`.
    pub async fn repoint(&self, pod: &str, upstream: &str) -> Result<Duration, ExecError> {
        let t = self.target(pod)?;
        let u = self.target(upstream)?;
        let start = Instant::now();
        let port = u.advertise_port.to_string();
        let mut c = self.client(t).await?;
        c.call(&["REPLICAOF", u.advertise_host.as_str(), port.as_str()])
            .await?;
        Ok(start.elapsed())
    }

    /// `CLIENT KILL TYPE normal` on `pod` (the executor's own connection is skipped).
    pub async fn kill_clients(&self, pod: &str) -> Result<i64, ExecError> {
        let t = self.target(pod)?;
        let mut c = self.client(t).await?;
        match c.call(&["CLIENT", "KILL", "TYPE", "normal"]).await? {
            Value::Int(n) => Ok(n),
            other => Err(ExecError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    async fn repoint_all(&self, moves: &[Repoint], demoted: &[String], report: &mut Report) {
        for m in moves {
            match self.repoint(&m.pod, &m.upstream).await {
                Ok(took) => {
                    report.steps.push(Step::Repointed {
                        pod: m.pod.clone(),
                        upstream: m.upstream.clone(),
                        took,
                    });
                    if demoted.contains(&m.pod) {
                        self.kill_step(&m.pod, report).await;
                    }
                }
                Err(error) => report.steps.push(Step::Failed {
                    pod: m.pod.clone(),
                    action: format!("REPLICAOF {}", m.upstream),
                    error: error.to_string(),
                }),
            }
        }
    }

    async fn kill_step(&self, pod: &str, report: &mut Report) {
        match self.kill_clients(pod).await {
            Ok(killed) => report.steps.push(Step::ClientsKilled {
                pod: pod.to_string(),
                killed,
            }),
            Err(error) => report.steps.push(Step::Failed {
                pod: pod.to_string(),
                action: "CLIENT KILL TYPE normal".to_string(),
                error: error.to_string(),
            }),
        }
    }

    /// Carries `plan` out. `demoted` names the pods that were serving as master (the recorded
    /// master, other claimants): once repointed, their normal clients are disconnected so they
    /// reconnect through the master Service. A failed promotion is an error (nothing else is
    /// done); failed repoints are listed in the report and retried by the next round.
    pub async fn execute(&self, plan: &Plan, demoted: &[String]) -> Result<Report, ExecError> {
        let start = Instant::now();
        let mut report = Report::default();
        match plan {
            Plan::Keep | Plan::Wait { .. } => {}
            Plan::Repoint(moves) => self.repoint_all(moves, demoted, &mut report).await,
            Plan::Promote {
                pod,
                epoch,
                repoint,
                ..
            } => {
                let took = self.promote(pod).await?;
                report.steps.push(Step::Promoted {
                    pod: pod.clone(),
                    took,
                });
                report.promoted = Some(pod.clone());
                report.epoch = Some(*epoch);
                let demoted: Vec<String> = demoted.iter().filter(|d| *d != pod).cloned().collect();
                self.repoint_all(repoint, &demoted, &mut report).await;
            }
        }
        report.duration = start.elapsed();
        Ok(report)
    }

    async fn offset_of(&self, pod: &PodTarget) -> Result<i64, ProbeError> {
        let mut c = self.client(pod).await?;
        Ok(parse_replication(&c.info("replication").await?).master_repl_offset)
    }

    /// Planned move of the master role from `from` to `to`, losing no acknowledged write:
    /// `CLIENT PAUSE <pause> WRITE` on `from`; wait (at most `catch_up`) until `to` has
    /// processed `from`'s whole stream; promote `to`; repoint `from` (killing its normal
    /// clients) and then `others` (e.g. the remaining replicas, from
    /// [`super::topology::minimal_repoints`]); `CLIENT UNPAUSE` on `from`. If `to` does not
    /// catch up in time, `from` is unpaused and stays master. `epoch` is the one to record
    /// (the previous epoch + 1).
    pub async fn switchover(
        &self,
        from: &str,
        to: &str,
        others: &[Repoint],
        epoch: u64,
        catch_up: Duration,
    ) -> Result<Report, ExecError> {
        let start = Instant::now();
        let fail = |reason: String| ExecError::Switchover {
            from: from.to_string(),
            to: to.to_string(),
            reason,
        };
        let f = self.target(from)?;
        let t = self.target(to)?;
        let mut report = Report::default();
        // The pause outlives a crashed operator by at most this much.
        let pause_ms = (catch_up + Duration::from_secs(10)).as_millis().to_string();
        let mut fc = self
            .client(f)
            .await
            .map_err(|e| fail(format!("connect to {from}: {e}")))?;
        fc.call(&["CLIENT", "PAUSE", pause_ms.as_str(), "WRITE"])
            .await
            .map_err(|e| fail(e.to_string()))?;
        report.steps.push(Step::WritesPaused {
            pod: from.to_string(),
        });

        let result = async {
            let caught = Instant::now();
            let mut poll = Duration::from_millis(5);
            loop {
                let want = parse_replication(&fc.info("replication").await?).master_repl_offset;
                let have = self.offset_of(t).await?;
                if have >= want {
                    report.steps.push(Step::CaughtUp {
                        pod: to.to_string(),
                        offset: have,
                        took: caught.elapsed(),
                    });
                    return Ok(true);
                }
                if caught.elapsed() >= catch_up {
                    return Ok::<bool, ProbeError>(false);
                }
                tokio::time::sleep(poll).await;
                poll = (poll * 2).min(Duration::from_millis(100));
            }
        }
        .await;
        let caught_up = match result {
            Ok(c) => c,
            Err(e) => {
                let _ = fc.call(&["CLIENT", "UNPAUSE"]).await;
                return Err(fail(format!("waiting for {to} to catch up: {e}")));
            }
        };
        if !caught_up {
            let _ = fc.call(&["CLIENT", "UNPAUSE"]).await;
            return Err(fail(format!(
                "{to} did not catch up within {}ms",
                catch_up.as_millis()
            )));
        }

        if let Err(e) = self.promote(to).await {
            let _ = fc.call(&["CLIENT", "UNPAUSE"]).await;
            return Err(e);
        }
        report.steps.push(Step::Promoted {
            pod: to.to_string(),
            took: start.elapsed(),
        });
        report.promoted = Some(to.to_string());
        report.epoch = Some(epoch);

        let mut moves = vec![Repoint::new(from, to)];
        moves.extend(
            others
                .iter()
                .filter(|m| m.pod != from && m.pod != to)
                .cloned(),
        );
        self.repoint_all(&moves, &[from.to_string()], &mut report)
            .await;
        // The demotion made `from` refuse writes by itself; lift the pause (a new connection:
        // CLIENT KILL may have closed nothing of ours, but the old one may have timed out).
        let unpaused = match fc.call(&["CLIENT", "UNPAUSE"]).await {
            Ok(_) => Ok(()),
            Err(_) => match self.client(f).await {
                Ok(mut c) => c.call(&["CLIENT", "UNPAUSE"]).await.map(|_| ()),
                Err(e) => Err(e),
            },
        };
        match unpaused {
            Ok(()) => report.steps.push(Step::WritesUnpaused {
                pod: from.to_string(),
            }),
            Err(e) => report.steps.push(Step::Failed {
                pod: from.to_string(),
                action: "CLIENT UNPAUSE".to_string(),
                error: e.to_string(),
            }),
        }
        report.duration = start.elapsed();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_pods_and_unreachable_targets_are_errors() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = l.local_addr().unwrap().to_string();
        drop(l);
        let ex = Executor::new(
            vec![PodTarget {
                name: "r-0".into(),
                ordinal: 0,
                connect: closed,
                advertise_host: "127.0.0.1".into(),
                advertise_port: 1,
            }],
            None,
        );
        let plan = Plan::Promote {
            pod: "r-9".into(),
            reason: crate::failover::PromoteReason::NoRecordedMaster,
            epoch: 1,
            repoint: vec![],
        };
        assert_eq!(
            ex.execute(&plan, &[]).await,
            Err(ExecError::UnknownPod("r-9".into()))
        );
        let plan = Plan::Promote {
            pod: "r-0".into(),
            reason: crate::failover::PromoteReason::NoRecordedMaster,
            epoch: 1,
            repoint: vec![],
        };
        assert!(matches!(
            ex.execute(&plan, &[]).await,
            Err(ExecError::Promote { .. })
        ));
        // A repoint that cannot be carried out is reported, not fatal.
        let r = ex
            .execute(&Plan::Repoint(vec![Repoint::new("r-0", "r-0")]), &[])
            .await
            .unwrap();
        assert_eq!(r.failures().count(), 1);
        assert_eq!(
            ex.execute(&Plan::Keep, &[]).await.unwrap().steps,
            Vec::<Step>::new()
        );
    }
}
