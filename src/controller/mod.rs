//! The controller: a short reconcile driver over named steps
//! observe -> validate -> build (pure) -> apply -> failover -> rollout -> status, and the
//! process around it (watches, leader election, metrics endpoint).

pub mod apply;
pub mod observe;
pub mod rollout;
pub mod rotation;
pub mod secret_refs;
pub mod status;
pub mod tls_status;
pub mod validate;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource, ResourceExt};

use crate::build::{self, BuildError, Params};
use crate::crd::RedisReplication;
use crate::failover;
use crate::metrics::{Metrics, SetLabels, SetSnapshot};
use crate::settings::{init_logging, Settings};

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub params: Params,
    pub metrics: Arc<Metrics>,
    /// `None` in tests that do not care about Events.
    pub recorder: Option<Recorder>,
    /// The roles step's memory between reconciles (when each master last answered, since
    /// when it has not), shared with the heartbeat.
    pub roles: Arc<failover::RolesMemory>,
}

impl Context {
    /// What the failover step needs from this context.
    pub fn failover_context(&self) -> failover::StepContext<'_> {
        failover::StepContext {
            client: &self.client,
            recorder: self.recorder.as_ref(),
            metrics: &self.metrics,
            memory: &self.roles,
            cluster_domain: &self.params.cluster_domain,
            timeouts: self.roles.timeouts(),
        }
    }
}

/// Errors that fail a reconcile (and are retried); an invalid spec is not one of them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("observe: {0}")]
    Observe(#[from] observe::ObserveError),
    #[error("failed to build objects: {0}")]
    Build(#[from] BuildError),
    #[error("apply: {0}")]
    Apply(#[from] apply::ApplyError),
    #[error("roles: {0}")]
    Roles(#[from] failover::RolesError),
    #[error("status: {0}")]
    Status(#[from] status::StatusError),
    #[error("rollout: {0}")]
    Rollout(#[from] rollout::RolloutError),
}

impl Error {
    /// The `error` label of the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Observe(_) => "observe",
            Error::Build(_) => "build",
            Error::Apply(_) => "apply",
            Error::Roles(_) => "roles",
            Error::Status(_) => "status",
            Error::Rollout(_) => "rollout",
        }
    }
}

/// The RedisReplication a pod of a set belongs to (its instance label), for the Pod watch.
pub fn pod_owner(pod: Pod) -> Option<ObjectRef<RedisReplication>> {
    let instance = pod.labels().get("app.kubernetes.io/instance")?.clone();
    let ns = pod.namespace()?;
    Some(ObjectRef::new(&instance).within(&ns))
}

/// Requeue delay while a master is unreachable, a failover is unfinished or replicas are not
/// yet following.
pub const RECHECK_SOON: Duration = Duration::from_secs(1);
/// Requeue delay of a healthy set (a master that hangs without its pod changing is noticed by
/// the heartbeat, `failover::heartbeat`, within a second).
pub const RECHECK_PERIOD: Duration = Duration::from_secs(10);
/// Requeue delay while a rolling update has outdated pods left (pod changes also trigger one).
pub const ROLLOUT_RECHECK: Duration = Duration::from_secs(5);

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// The reconcile driver: observe -> validate -> build -> apply -> failover -> rollout ->
/// status. Each step is one call; the decisions live in the steps.
pub async fn reconcile(rr: Arc<RedisReplication>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    if rr.meta().deletion_timestamp.is_some() {
        if let Some(uid) = rr.uid() {
            ctx.roles.forget(&uid);
        }
        // Being deleted: garbage collection removes the owned children; re-applying them now
        // would only fight it.
        return Ok(Action::await_change());
    }
    let observed = observe::observe(&ctx.client, &rr).await?;
    // A bad new password Secret must not stop a running set: see `rotation::screen`.
    let (observed, bad_secret) = rotation::screen(&rr, observed);
    let model = match validate::validate(&rr, &observed) {
        Ok(model) => model,
        Err(invalid) => return report_invalid(&ctx, &rr, &observed, &invalid).await,
    };
    let password = rotation::generated_password(&observed);
    let set_password = password
        .clone()
        .or_else(|| failover::pods::password(&rr, &observed))
        .unwrap_or_default();
    let rotation = rotation::step(
        &rr,
        &observed,
        &set_password,
        bad_secret.as_ref(),
        &ctx.params.cluster_domain,
        ctx.roles.timeouts(),
    )
    .await;
    let desired = build::build(&rr, &ctx.params, password.as_deref())?;
    let desired = build::with_pod_credentials(desired, &rr, &rotation.creds)?;
    let desired = with_credentials(desired, &rr, &observed, &rotation.creds)?;
    // Applied in the order `build` lists them, StatefulSet last (see `apply`).
    apply::apply(&ctx.client, &model.namespace, &desired).await?;
    let cx = ctx.failover_context();
    let mut outcome = failover::step(&cx, &rr, &model, &observed).await?;
    let rollout = rolling_update(&cx, &rr, &model, &observed, &mut outcome).await?;
    let at = now();
    let mut st = status::compute(
        &rr,
        &observed,
        None,
        &outcome,
        Some(&rollout),
        &ctx.params,
        at.clone(),
    );
    failover::apply_outcome(&mut st, &outcome);
    tls_status::apply(&mut st, &rr, &observed, crate::tls::unix_now(), &at);
    if let Some(bad) = &bad_secret {
        rotation::mark_bad_secret(&rr, &mut st, bad, now());
    }
    rotation::record(ctx.recorder.as_ref(), &rr, &mut st, &rotation, now()).await;
    observe_set_metrics(&ctx, &rr, &st);
    status::write(&ctx.client, ctx.recorder.as_ref(), &rr, st).await?;
    tracing::info!(name = %model.name, namespace = %model.namespace, waiting = outcome.waiting.as_deref().unwrap_or(""), "reconciled");
    // Detection: while anything is in motion, look again within a second; otherwise the
    // periodic check (pod changes also trigger a reconcile through the Pod watch). A rolling
    // update in progress is looked at again within ROLLOUT_RECHECK.
    Ok(Action::requeue(if rotation.in_progress {
        RECHECK_SOON
    } else if outcome.recheck_soon {
        outcome
            .recheck_after
            .map_or(RECHECK_SOON, |d| d.min(RECHECK_SOON))
    } else if rollout.in_progress() {
        ROLLOUT_RECHECK
    } else {
        RECHECK_PERIOD
    }))
}

/// Adds the rendered ACL users: the internal user's password (kept in `<name>-credentials`)
/// and the users' passwords (the validate step has checked they are there).
fn with_credentials(
    desired: build::Desired,
    rr: &RedisReplication,
    observed: &observe::Observed,
    creds: &build::credentials::PodCredentials,
) -> Result<build::Desired, Error> {
    if !build::acl_users::enabled(rr) {
        return Ok(desired);
    }
    let internal_password = creds.internal.clone().unwrap_or_default().into_bytes();
    // Cannot fail: the validate step checked the same `observed`.
    let users = validate::user_passwords(rr, observed).unwrap_or_default();
    Ok(build::with_acl_users(
        desired,
        rr,
        &internal_password,
        &users,
        &creds.accepted,
    )?)
}

/// The per-set gauges, from the status this reconcile computed.
fn observe_set_metrics(
    ctx: &Context,
    rr: &RedisReplication,
    st: &crate::crd::RedisReplicationStatus,
) {
    let set = SetLabels::new(&rr.namespace().unwrap_or_default(), &rr.name_any());
    ctx.metrics.sets.observe(
        &set,
        rr.uid().as_deref(),
        &SetSnapshot::from_status(st),
        &status::PHASES,
    );
}

/// Removes the per-set series of deleted RedisReplications: on each deletion the watch
/// reports, and after each (re)list for the sets deleted while the watch was down. Runs until
/// the watch stream ends (it retries with backoff) or the task is aborted.
async fn forget_deleted_sets(rrs: Api<RedisReplication>, metrics: Arc<Metrics>) {
    use kube::runtime::watcher::Event;
    use kube::runtime::WatchStreamExt;
    let mut listed = std::collections::BTreeSet::new();
    let labels =
        |rr: &RedisReplication| SetLabels::new(&rr.namespace().unwrap_or_default(), &rr.name_any());
    let events = watcher(rrs, watcher::Config::default()).default_backoff();
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Delete(rr)) => {
                metrics
                    .sets
                    .forget(&labels(&rr), rr.uid().as_deref(), &status::PHASES)
            }
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(rr)) => {
                listed.insert(labels(&rr));
            }
            Ok(Event::InitDone) => metrics.sets.retain(&listed, &status::PHASES),
            Ok(Event::Apply(_)) => {}
            Err(e) => tracing::debug!(error = %e, "set metrics watch failed, retrying"),
        }
    }
}

/// An invalid resource: report it on the status and wait. Nothing is applied or deleted, so
/// what runs keeps running.
async fn report_invalid(
    ctx: &Context,
    rr: &RedisReplication,
    observed: &observe::Observed,
    invalid: &validate::Invalid,
) -> Result<Action, Error> {
    tracing::info!(name = %rr.name_any(), namespace = %rr.namespace().unwrap_or_default(), reason = invalid.reason(), message = %invalid, "resource invalid");
    let outcome = status::unprobed_outcome(rr);
    let st = status::compute(
        rr,
        observed,
        Some(invalid),
        &outcome,
        None,
        &ctx.params,
        now(),
    );
    observe_set_metrics(ctx, rr, &st);
    status::write(&ctx.client, ctx.recorder.as_ref(), rr, st).await?;
    // A referenced Secret's creation or change triggers a reconcile through the Secret watch
    // (`secret_refs`); the requeue is only the fallback should that watch be down.
    Ok(Action::requeue(Duration::from_secs(30)))
}

/// The rollout step; its planned switchover is carried out by the failover subsystem's
/// promotion routine and recorded like a failover (labels, master, epoch, lastFailover), and
/// `outcome` is updated so the status step does not write the old master back.
async fn rolling_update(
    cx: &failover::StepContext<'_>,
    rr: &RedisReplication,
    model: &crate::model::Validated,
    observed: &observe::Observed,
    outcome: &mut failover::RolesOutcome,
) -> Result<rollout::RolloutReport, Error> {
    // The switchover callback runs at most once per rollout step; the Mutex only carries its
    // result out of the callback (never held across an await).
    let switched = std::sync::Mutex::new(None);
    let report = {
        let (outcome_ref, switched_ref) = (&*outcome, &switched);
        rollout::run_with(
            cx.client,
            rr,
            observed,
            outcome_ref,
            |from, to| async move {
                let done =
                    failover::planned_switchover(cx, rr, model, observed, outcome_ref, &from, &to)
                        .await
                        .map_err(|e| rollout::SwitchoverError::Failed(e.to_string()))?;
                if let Ok(mut s) = switched_ref.lock() {
                    *s = Some(done);
                }
                Ok(())
            },
        )
        .await?
    };
    if let Some(done) = switched.into_inner().ok().flatten() {
        failover::record_switchover(outcome, &done);
        if let rollout::RolloutStep::Switchover { from, to } = &report.step {
            rollout::observe_switchover(outcome, from, to);
        }
    }
    Ok(report)
}

pub fn error_policy(rr: Arc<RedisReplication>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.metric_label());
    tracing::warn!(name = %rr.name_any(), error = %error, "reconcile failed");
    Action::requeue(Duration::from_secs(15))
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot connect to Kubernetes: {0}")]
    Client(#[source] kube::Error),
    #[error(
        "the RedisReplication CRD (redisreplications.tandem.dev) is not installed: \
         install it with `tandem-operator crd | kubectl apply -f -` or the Helm chart ({0})"
    )]
    CrdMissing(#[source] kube::Error),
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("leader election: {0}")]
    Leader(#[from] crate::leader::LeaderError),
}

/// An Api over one namespace when the watch is restricted, else over all namespaces.
fn scoped<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Resolves on SIGINT or SIGTERM (what the kubelet sends on pod deletion).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
}

/// The controller's inputs besides the sets: owned children (by the operator's label), pods
/// (by their instance label) and referenced Secrets (through the controller's cache of sets).
fn watched(
    controller: Controller<RedisReplication>,
    client: &Client,
    ns: Option<&str>,
) -> Controller<RedisReplication> {
    let owned =
        |_: ()| watcher::Config::default().labels("app.kubernetes.io/managed-by=tandem-operator");
    // The controller's own cache of sets: referenced (not owned) Secrets map back through it.
    let sets = controller.store();
    controller
        .owns(scoped::<StatefulSet>(client, ns), owned(()))
        .owns(scoped::<ConfigMap>(client, ns), owned(()))
        .owns(scoped::<Service>(client, ns), owned(()))
        .owns(scoped::<Secret>(client, ns), owned(()))
        .owns(scoped::<PodDisruptionBudget>(client, ns), owned(()))
        .owns(scoped::<NetworkPolicy>(client, ns), owned(()))
        // Pods belong to the StatefulSet, not to us: map them by their instance label, so a
        // pod that dies, restarts or changes readiness triggers the roles step at once.
        .watches(
            scoped::<Pod>(client, ns),
            watcher::Config::default().labels("app.kubernetes.io/name=tandem"),
            pod_owner,
        )
        // Secrets a set references but does not own (its password, its users' passwords):
        // created or changed after the set, they must not wait for the periodic requeue.
        .watches(
            scoped::<Secret>(client, ns),
            watcher::Config::default(),
            move |s| {
                let (ns, name) = (s.namespace().unwrap_or_default(), s.name_any());
                let cached = sets.state();
                secret_refs::referencing_sets(&ns, &name, cached.iter().map(|a| &**a))
            },
        )
}

/// `tandem-operator run`.
pub async fn run(settings: Settings) -> Result<(), RunError> {
    init_logging(settings.log_format);
    let client = Client::try_default().await.map_err(RunError::Client)?;
    run_with_client(settings, client, shutdown_signal()).await
}

/// How long in-flight reconciles get to finish once the operator is told to stop.
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the controller until it ends, or until SHUTDOWN_DRAIN after `stopping` turned true.
/// Graceful, with a deadline: under load the controller's stream was seen not to end at
/// all after the signal (kube's graceful shutdown waiting on its watchers), which kept the
/// Lease held until the process was killed; past the deadline it is dropped instead.
async fn drain_with_deadline(
    controller: impl std::future::Future<Output = ()>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let deadline = async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(SHUTDOWN_DRAIN).await;
    };
    tokio::select! {
        _ = controller => {}
        _ = deadline => tracing::warn!(
            drain_secs = SHUTDOWN_DRAIN.as_secs(),
            "reconciles did not drain in time after shutdown, stopping anyway"
        ),
    }
}

/// The process body over a given client; returns after `shutdown` resolves (or leadership is
/// lost) and the controller has drained (at most SHUTDOWN_DRAIN). Separate from `run` so
/// tests can drive it.
pub async fn run_with_client<S>(
    settings: Settings,
    client: Client,
    shutdown: S,
) -> Result<(), RunError>
where
    S: std::future::Future<Output = ()> + Send + Sync + 'static,
{
    let rrs: Api<RedisReplication> = match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // Fail fast with a clear message instead of a watcher retrying forever.
    rrs.list(&kube::api::ListParams::default().limit(1))
        .await
        .map_err(RunError::CrdMissing)?;

    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(settings.metrics_addr)
        .await
        .map_err(|source| RunError::Metrics {
            addr: settings.metrics_addr,
            source,
        })?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let http = tokio::spawn(crate::http::serve(
        listener,
        metrics.clone(),
        ready.clone(),
        stop_rx.clone(),
    ));

    // Ready means initialised (CRD present, endpoint up), also while standing by for the Lease:
    // a standby reported unready would stall rolling updates of the operator Deployment.
    ready.store(true, Ordering::SeqCst);
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));

    let leader = if settings.leader_elect {
        let l = crate::leader::Leader::new(
            client.clone(),
            &settings.lease_namespace,
            &settings.lease_name,
            &settings.identity,
        );
        tokio::select! {
            r = l.acquire() => r?,
            _ = shutdown.clone() => { let _ = stop_tx.send(true); let _ = http.await; return Ok(()); }
        }
        Some(l)
    } else {
        None
    };
    // Lost leadership ends the controller; the process exits and restarts as a candidate.
    let (renewer, lost) = match leader.clone() {
        Some(l) => {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            (Some(tokio::spawn(l.keep_renewed(tx))), Some(rx))
        }
        None => (None, None),
    };
    let set_metrics = tokio::spawn(forget_deleted_sets(rrs.clone(), metrics.clone()));
    let ctx = Arc::new(Context {
        client: client.clone(),
        params: Params {
            server_image: settings.server_image.clone(),
            cluster_domain: settings.cluster_domain.clone(),
        },
        metrics,
        recorder: Some(Recorder::new(
            client.clone(),
            Reporter {
                controller: "tandem-operator".into(),
                instance: Some(settings.identity.clone()),
            },
        )),
        roles: Arc::new(failover::RolesMemory::with_probe_timeout(
            std::time::Duration::from_millis(settings.probe_timeout_ms.max(1)),
        )),
    });
    // Pings every recorded master; a master that stops answering triggers a reconcile.
    let (beat_tx, beat_rx) = futures::channel::mpsc::channel::<()>(1);
    let heartbeat = tokio::spawn(failover::heartbeat::run(ctx.roles.clone(), beat_tx));
    let ns = settings.namespace.as_deref();
    // Set when the controller is told to stop, so its drain can be bounded (below).
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let stop = {
        let shutdown = shutdown.clone();
        async move {
            let lost = async {
                match lost {
                    Some(rx) => {
                        let _ = rx.await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = shutdown => {},
                _ = lost => tracing::warn!("leadership lost, stopping"),
            }
            let _ = stopping_tx.send(true);
        }
    };
    let controller = watched(
        Controller::new(rrs, watcher::Config::default()),
        &client,
        ns,
    )
    .reconcile_all_on(beat_rx)
    .graceful_shutdown_on(stop)
    .run(reconcile, error_policy, ctx)
    .for_each(|_| futures::future::ready(()));
    drain_with_deadline(controller, stopping_rx).await;

    ready.store(false, Ordering::SeqCst);
    set_metrics.abort();
    heartbeat.abort();
    if let Some(r) = renewer {
        r.abort();
    }
    if let Some(l) = leader {
        l.release().await;
    }
    let _ = stop_tx.send(true);
    let _ = http.await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_map_to_their_set_by_instance_label() {
        let mut p = Pod::default();
        p.metadata.name = Some("cache-1".into());
        p.metadata.namespace = Some("prod".into());
        assert_eq!(pod_owner(p.clone()), None);
        p.metadata.labels = Some(
            [(
                "app.kubernetes.io/instance".to_string(),
                "cache".to_string(),
            )]
            .into(),
        );
        let r = pod_owner(p).unwrap();
        assert_eq!(
            (r.name.as_str(), r.namespace.as_deref()),
            ("cache", Some("prod"))
        );
    }
}
