//! Process settings of `tandem-operator run` (flags or environment) and logging setup.

use std::net::SocketAddr;

/// Process settings (`tandem-operator run`), from flags or environment.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    /// Default tandem-server image for resources that do not set `spec.image`.
    #[arg(
        long,
        env = "TANDEM_SERVER_IMAGE",
        default_value = "tandem-server:0.1.0"
    )]
    pub server_image: String,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Cluster DNS domain used in pod DNS names.
    #[arg(long, env = "CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Address of the /metrics, /healthz and /readyz endpoint.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Timeout (ms) of the failover probes for connecting and for each reply; shortened to
    /// half of a set's `downAfterSeconds` when that is smaller.
    #[arg(long, env = "PROBE_TIMEOUT_MS", default_value_t = 1000)]
    pub probe_timeout_ms: u64,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Act only while holding a coordination.k8s.io Lease, so two operator replicas never act at once.
    #[arg(long, env = "LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,
    #[arg(long, env = "LEASE_NAME", default_value = "tandem-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace from POD_NAMESPACE, else "default").
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Identity in the Lease (default: the pod name).
    #[arg(long, env = "POD_NAME", default_value = "tandem-operator")]
    pub identity: String,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Sets up `tracing` output in the given format (filter from `RUST_LOG`, default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // try_init: a second call (tests) must not panic.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    #[test]
    fn flags_parse_with_defaults_and_values() {
        let c = Cli::try_parse_from(["x"]).unwrap().settings;
        assert_eq!(c.cluster_domain, "cluster.local");
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(c.namespace.is_none());
        let c = Cli::try_parse_from([
            "x",
            "--server-image",
            "img:1",
            "--namespace",
            "apps",
            "--cluster-domain",
            "corp",
            "--metrics-addr",
            "127.0.0.1:9",
            "--log-format",
            "json",
            "--leader-elect",
        ])
        .unwrap()
        .settings;
        assert_eq!(c.server_image, "img:1");
        assert_eq!(c.namespace.as_deref(), Some("apps"));
        assert_eq!(c.cluster_domain, "corp");
        assert_eq!(c.metrics_addr.port(), 9);
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(c.leader_elect);
        assert!(Cli::try_parse_from(["x", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn leader_election_env_from_the_chart_parses_as_bool() {
        // The chart passes LEADER_ELECT="true"/"false"; only this test touches that variable.
        std::env::set_var("LEADER_ELECT", "false");
        assert!(!Cli::try_parse_from(["x"]).unwrap().settings.leader_elect);
        std::env::set_var("LEADER_ELECT", "true");
        assert!(Cli::try_parse_from(["x"]).unwrap().settings.leader_elect);
        std::env::remove_var("LEADER_ELECT");
    }
}
