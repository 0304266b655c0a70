//! Prometheus metrics of the long-running services (`--metrics-addr`, off by default), with
//! the `prometheus-client` crate, and the HTTP endpoint that serves them: `GET /metrics`
//! (OpenMetrics text), `GET /healthz` (the process serves), `GET /readyz` (it has taken its
//! sockets and, for the daemon, loaded its eBPF programs). Anything else is 404; a request
//! that does not arrive within [`HEADER_TIMEOUT`] is dropped, and at most [`MAX_CONNECTIONS`]
//! are served at once, so a scraper or a stranger on the port cannot hold the service up.
//!
//! Labels are bounded: a syscall label is a name from auditor's tables (an unknown number is
//! `unknown`, never the number a workload chose), a policy one a file of the policy
//! directory, a decision one of five words, a handler one of auditor's. Series per container
//! (Kubernetes' node, namespace, pod and container, as the Security Profiles Operator labels
//! its `security_profiles_operator_seccomp_profile_audit_total`, so that its dashboards work)
//! are capped at [`MAX_CONTAINER_SERIES`] per family; beyond, they are counted under
//! `pod="_other"`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// How long a client may take to send its request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("--metrics-addr {addr}: cannot listen: {source} (is the port taken? use another, or 127.0.0.1:0 for any)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Series a per-container family keeps; beyond, counted under `pod="_other"`.
pub const MAX_CONTAINER_SERIES: usize = 4096;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub policy: String,
    pub syscall: String,
    pub decision: String,
    /// The notify rule's handler (`emulate-mknod`, …); empty when none decided.
    pub handler: String,
}

/// Who a container is, as metrics label it: Kubernetes' namespace, pod and container name
/// (from the CRI annotations); outside Kubernetes the namespace and pod are empty and the
/// container is the engine's name or the container's id.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Who {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

impl Who {
    /// From an observation's target (a container's; other targets are `None`).
    pub fn of_target(target: &crate::observe::model::Target) -> Option<Who> {
        let crate::observe::model::Target::Container {
            id,
            engine,
            name,
            image,
            labels,
            ..
        } = target
        else {
            return None;
        };
        let identity = crate::daemon::engine::Identity {
            engine: engine.clone(),
            name: name.clone(),
            image: image.clone(),
            labels: labels.clone(),
        };
        Some(Who::of(&identity, id))
    }

    /// From an engine's identity of the container (see
    /// [`crate::daemon::engine::identity_from_state`]), or its id.
    pub fn of(identity: &crate::daemon::engine::Identity, id: &str) -> Who {
        use crate::observe::model::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE};
        let l = |k: &str| identity.labels.get(k).cloned();
        Who {
            namespace: l(POD_NAMESPACE).unwrap_or_default(),
            pod: l(POD_NAME).unwrap_or_default(),
            container: l(CONTAINER_NAME)
                .or_else(|| identity.name.clone())
                .unwrap_or_else(|| id.chars().take(64).collect()),
        }
    }
}

/// SPO's per-container label set, with the syscall.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuditLabels {
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub syscall: String,
}

/// Per-container labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerLabels {
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// A counter family whose series are capped at [`MAX_CONTAINER_SERIES`].
#[derive(Debug)]
pub struct Capped<
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
> {
    pub family: Family<L, Counter>,
    series: std::sync::atomic::AtomicUsize,
}

impl<
        L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
    > Default for Capped<L>
{
    fn default() -> Self {
        Capped {
            family: Family::default(),
            series: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl<
        L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
    > Capped<L>
{
    /// Add `n` to `labels`' series, or to `other`'s once the family is full.
    pub fn inc_by(&self, labels: L, other: impl FnOnce(L) -> L, n: u64) {
        if let Some(c) = self.family.get(&labels) {
            c.inc_by(n);
            return;
        }
        let labels = if self.series.fetch_add(1, Ordering::Relaxed) < MAX_CONTAINER_SERIES {
            labels
        } else {
            self.series.fetch_sub(1, Ordering::Relaxed);
            other(labels)
        };
        self.family.get_or_create(&labels).inc_by(n);
    }
}

/// The node's name in metrics: `NODE_NAME` (a DaemonSet sets it from `spec.nodeName`) or the
/// host name.
pub fn node_name() -> String {
    // The same name observations record as `host.node`.
    crate::observe::build::host().node.unwrap_or_default()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub policy: String,
    pub syscall: String,
    /// `-EPERM`, `-EIO` (a helper that missed its deadline), …
    pub result: String,
}

/// `auditor agent`'s metrics.
#[derive(Debug)]
pub struct AgentMetrics {
    pub node: String,
    pub decisions: Family<DecisionLabels, Counter>,
    /// Calls a complain-mode policy would refuse (allowed and logged), per container and
    /// syscall: SPO's `security_profiles_operator_seccomp_profile_audit_total`.
    pub audit: Capped<AuditLabels>,
    /// Calls decided per container.
    pub container_decisions: Capped<ContainerLabels>,
    /// Emulations answered EIO because the helper missed its deadline.
    pub helper_timeouts: Counter,
    pub emulation_errors: Family<ErrorLabels, Counter>,
    pub latency: Histogram,
    pub containers: Gauge,
    pub containers_served: Counter,
}

impl AgentMetrics {
    pub fn register(registry: &mut Registry) -> Arc<AgentMetrics> {
        let m = AgentMetrics {
            node: node_name(),
            decisions: Family::default(),
            audit: Capped::default(),
            container_decisions: Capped::default(),
            helper_timeouts: Counter::default(),
            emulation_errors: Family::default(),
            // 1 µs … ~4 s.
            latency: Histogram::new(exponential_buckets(1e-6, 4.0, 12)),
            containers: Gauge::default(),
            containers_served: Counter::default(),
        };
        registry.register(
            "auditor_agent_decisions",
            "Notified syscalls decided, by policy, syscall, decision (allowed, denied, emulated, complain, gone) and handler",
            m.decisions.clone(),
        );
        registry.register(
            "security_profiles_operator_seccomp_profile_audit",
            "Calls a complain-mode policy would refuse, allowed and logged, by node, namespace, pod, container and syscall (the Security Profiles Operator's name and labels)",
            m.audit.family.clone(),
        );
        registry.register(
            "auditor_agent_container_decisions",
            "Notified syscalls decided, by node, namespace, pod and container",
            m.container_decisions.family.clone(),
        );
        registry.register(
            "auditor_agent_helper_timeouts",
            "Emulations answered EIO because the helper missed its deadline",
            m.helper_timeouts.clone(),
        );
        registry.register(
            "auditor_agent_emulation_errors",
            "Emulated calls that failed, by policy, syscall and the error returned (-EIO: the helper missed its deadline)",
            m.emulation_errors.clone(),
        );
        registry.register(
            "auditor_agent_notification_latency_seconds",
            "From receiving a notification to answering it",
            m.latency.clone(),
        );
        registry.register(
            "auditor_agent_containers",
            "Containers (seccomp listeners) being served now",
            m.containers.clone(),
        );
        registry.register(
            "auditor_agent_containers_served",
            "Containers (seccomp listeners) taken since the agent started",
            m.containers_served.clone(),
        );
        Arc::new(m)
    }

    /// Count one decision. `syscall` is a name from auditor's tables or `None`; `who` the
    /// container's identity, when known.
    #[allow(clippy::too_many_arguments)]
    pub fn decided(
        &self,
        policy: &str,
        syscall: Option<&str>,
        decision: &str,
        handler: &str,
        error: Option<String>,
        latency_us: u64,
        who: Option<&Who>,
    ) {
        let syscall = syscall.unwrap_or("unknown").to_owned();
        if let Some(who) = who {
            let other = |mut l: ContainerLabels| {
                l.pod = "_other".into();
                l.container = "_other".into();
                l
            };
            self.container_decisions.inc_by(
                ContainerLabels {
                    node: self.node.clone(),
                    namespace: who.namespace.clone(),
                    pod: who.pod.clone(),
                    container: who.container.clone(),
                },
                other,
                1,
            );
            if decision == "complain" {
                self.audit.inc_by(
                    AuditLabels {
                        node: self.node.clone(),
                        namespace: who.namespace.clone(),
                        pod: who.pod.clone(),
                        container: who.container.clone(),
                        syscall: syscall.clone(),
                    },
                    |mut l| {
                        l.pod = "_other".into();
                        l.container = "_other".into();
                        l
                    },
                    1,
                );
            }
        }
        if error.as_deref() == Some("-EIO") {
            self.helper_timeouts.inc();
        }
        if let Some(result) = error {
            self.emulation_errors
                .get_or_create(&ErrorLabels {
                    policy: policy.to_owned(),
                    syscall: syscall.clone(),
                    result,
                })
                .inc();
        }
        self.decisions
            .get_or_create(&DecisionLabels {
                policy: policy.to_owned(),
                syscall,
                decision: decision.to_owned(),
                handler: handler.to_owned(),
            })
            .inc();
        self.latency.observe(latency_us as f64 / 1e6);
    }

    /// A listener taken: the gauge goes down when the guard is dropped.
    pub fn serving(self: &Arc<Self>) -> Serving {
        self.containers.inc();
        self.containers_served.inc();
        Serving(self.clone())
    }
}

/// One container being served (see [`AgentMetrics::serving`]).
pub struct Serving(Arc<AgentMetrics>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.containers.dec();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

/// `auditor daemon`'s metrics.
#[derive(Debug)]
pub struct DaemonMetrics {
    pub node: String,
    /// Calls observed per container, counted when its observation is written.
    pub container_calls: Capped<ContainerLabels>,
    /// Distinct syscalls observed per container, when its observation is written.
    pub container_syscalls: Capped<ContainerLabels>,
    pub tracked: Gauge,
    pub registrations: Family<ResultLabels, Counter>,
    pub observations: Counter,
    pub observed_calls: Counter,
    pub lost: Counter,
}

impl DaemonMetrics {
    pub fn register(registry: &mut Registry) -> Arc<DaemonMetrics> {
        let m = DaemonMetrics {
            node: node_name(),
            container_calls: Capped::default(),
            container_syscalls: Capped::default(),
            tracked: Gauge::default(),
            registrations: Family::default(),
            observations: Counter::default(),
            observed_calls: Counter::default(),
            lost: Counter::default(),
        };
        registry.register(
            "auditor_daemon_containers_tracked",
            "Containers being learned now",
            m.tracked.clone(),
        );
        registry.register(
            "auditor_daemon_registrations",
            "Containers registered by auditor hook, by result (ok, refused)",
            m.registrations.clone(),
        );
        registry.register(
            "auditor_daemon_observations_written",
            "Observation files written",
            m.observations.clone(),
        );
        registry.register(
            "auditor_daemon_observed_calls",
            "Syscalls counted in the observations written",
            m.observed_calls.clone(),
        );
        registry.register(
            "auditor_daemon_lost_observations",
            "Observations lost (ring buffer full, map full, failed reads) in the files written",
            m.lost.clone(),
        );
        registry.register(
            "auditor_daemon_container_calls",
            "Syscalls observed per container (node, namespace, pod, container), counted when its observation is written",
            m.container_calls.family.clone(),
        );
        registry.register(
            "auditor_daemon_container_syscalls",
            "Distinct syscalls observed per container (node, namespace, pod, container), added when its observation is written",
            m.container_syscalls.family.clone(),
        );
        Arc::new(m)
    }

    /// Count a finished container's observation under its labels.
    pub fn observed(&self, who: &Who, calls: u64, syscalls: u64) {
        let labels = ContainerLabels {
            node: self.node.clone(),
            namespace: who.namespace.clone(),
            pod: who.pod.clone(),
            container: who.container.clone(),
        };
        let other = |mut l: ContainerLabels| {
            l.pod = "_other".into();
            l.container = "_other".into();
            l
        };
        self.container_calls.inc_by(labels.clone(), other, calls);
        self.container_syscalls.inc_by(labels, other, syscalls);
    }
}

/// The answer to one request.
pub fn respond(
    method: &str,
    path: &str,
    registry: &Registry,
    ready: bool,
) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != "GET" && method != "HEAD" {
        return (405, TEXT, "only GET\n".into());
    }
    match path {
        "/metrics" => {
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, registry) {
                Ok(()) => (
                    200,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Err(e) => (500, TEXT, format!("encoding the metrics failed: {e}\n")),
            }
        }
        "/healthz" => (200, TEXT, "ok\n".into()),
        "/readyz" if ready => (200, TEXT, "ready\n".into()),
        "/readyz" => (503, TEXT, "not ready\n".into()),
        _ => (404, TEXT, "not found: /metrics, /healthz, /readyz\n".into()),
    }
}

/// Bind `addr` (before the service says it is up, so a taken port fails the start).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, MetricsError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })
}

/// Serve the endpoint until `cancel`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (registry, ready, cancel) = (registry.clone(), ready.clone(), cancel.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (status, kind, body) = respond(
                        req.method().as_str(),
                        req.uri().path(),
                        &registry,
                        ready.load(Ordering::Relaxed),
                    );
                    let response = hyper::Response::builder()
                        .status(status)
                        .header("content-type", kind)
                        .body(Full::new(Bytes::from(body)));
                    async move {
                        Ok::<_, Infallible>(response.unwrap_or_else(|_| {
                            hyper::Response::new(Full::new(Bytes::from_static(b"")))
                        }))
                    }
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = cancel.cancelled() => {}
                // A slow reader of a large answer cannot hold a slot for ever either.
                _ = tokio::time::timeout(Duration::from_secs(30), conn) => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_container_series_are_capped() {
        let c: Capped<ContainerLabels> = Capped::default();
        let labels = |i: usize| ContainerLabels {
            node: "n".into(),
            namespace: "ns".into(),
            pod: format!("pod-{i}"),
            container: "c".into(),
        };
        let other = |mut l: ContainerLabels| {
            l.pod = "_other".into();
            l
        };
        for i in 0..MAX_CONTAINER_SERIES + 10 {
            c.inc_by(labels(i), other, 1);
        }
        // A known series still counts as itself.
        c.inc_by(labels(0), other, 1);
        assert_eq!(c.family.get(&labels(0)).map(|v| v.get()), Some(2));
        assert!(c.family.get(&labels(MAX_CONTAINER_SERIES + 5)).is_none());
        let mut o = labels(0);
        o.pod = "_other".into();
        assert_eq!(c.family.get(&o).map(|v| v.get()), Some(10));
    }

    #[test]
    fn endpoints_and_bounded_labels() {
        let mut registry = Registry::default();
        let agent = AgentMetrics::register(&mut registry);
        let who = Who {
            namespace: "shop".into(),
            pod: "web-1".into(),
            container: "nginx".into(),
        };
        agent.decided(
            "web",
            Some("mknodat"),
            "emulated",
            "emulate-mknod",
            None,
            120,
            Some(&who),
        );
        agent.decided(
            "web",
            Some("mknodat"),
            "emulated",
            "emulate-mknod",
            Some("-EIO".into()),
            5_000_000,
            Some(&who),
        );
        agent.decided("web", None, "denied", "", None, 10, None);
        agent.decided("web", Some("uname"), "complain", "", None, 10, Some(&who));
        let serving = agent.serving();
        let (status, kind, body) = respond("GET", "/metrics", &registry, true);
        assert_eq!(status, 200);
        assert!(kind.starts_with("application/openmetrics-text"));
        assert!(
            body.contains(r#"auditor_agent_decisions_total{policy="web",syscall="mknodat",decision="emulated",handler="emulate-mknod"} 2"#),
            "{body}"
        );
        assert!(
            body.contains(r#"syscall="unknown",decision="denied",handler=""} 1"#),
            "{body}"
        );
        assert!(body.contains(r#"auditor_agent_emulation_errors_total{policy="web",syscall="mknodat",result="-EIO"} 1"#), "{body}");
        assert!(body.contains("auditor_agent_containers 1"), "{body}");
        assert!(
            body.contains("auditor_agent_helper_timeouts_total 1"),
            "{body}"
        );
        assert!(body.contains(&format!(r#"security_profiles_operator_seccomp_profile_audit_total{{node="{}",namespace="shop",pod="web-1",container="nginx",syscall="uname"}} 1"#, agent.node)), "{body}");
        assert!(
            body.contains(r#"namespace="shop",pod="web-1",container="nginx"} 3"#),
            "{body}"
        );
        assert!(
            body.contains("auditor_agent_notification_latency_seconds_count 4"),
            "{body}"
        );
        drop(serving);
        let (_, _, body) = respond("GET", "/metrics", &registry, true);
        assert!(body.contains("auditor_agent_containers 0"), "{body}");
        assert!(
            body.contains("auditor_agent_containers_served_total 1"),
            "{body}"
        );
        assert_eq!(respond("GET", "/healthz", &registry, false).0, 200);
        assert_eq!(respond("GET", "/readyz", &registry, false).0, 503);
        assert_eq!(respond("GET", "/readyz", &registry, true).0, 200);
        assert_eq!(respond("GET", "/", &registry, true).0, 404);
        assert_eq!(respond("POST", "/metrics", &registry, true).0, 405);
    }
}
