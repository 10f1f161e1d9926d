//! `tandem-operator`: `crd` prints the CustomResourceDefinition, `run` runs the controller,
//! `local` runs everything on this machine (src/local/cli.rs).

use clap::{Parser, Subcommand};

use tandem_operator::controller;
use tandem_operator::crd;
use tandem_operator::settings::Settings;

#[derive(Parser, Debug)]
#[command(
    name = "tandem-operator",
    version,
    about = "Kubernetes operator for Tandem"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the RedisReplication CRD as YAML; `--write` regenerates crds/ and the chart's copy
    /// (run from the repository root).
    Crd {
        #[arg(long)]
        write: bool,
    },
    /// Run the controller against the cluster from the ambient kubeconfig / in-cluster config.
    Run(Box<Settings>),
    /// Run everything on this machine without a cluster: an embedded Kubernetes API, pods
    /// as local tandem-server processes, and the controller (see README "Local cluster mode").
    Local(Box<tandem_operator::local::cli::LocalArgs>),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Our error texts already embed their causes: print once, no backtrace noise.
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crd { write: true } => {
            std::fs::write(crd::CRD_FILE, crd::crd_yaml()?)?;
            std::fs::write(crd::CHART_CRD_FILE, crd::chart_crd_template()?)?;
            eprintln!("wrote {} and {}", crd::CRD_FILE, crd::CHART_CRD_FILE);
            Ok(())
        }
        Command::Crd { write: false } => {
            let yaml = crd::crd_yaml()?;
            let mut out = std::io::stdout().lock();
            match std::io::Write::write_all(&mut out, yaml.as_bytes()) {
                // `tandem-operator crd | head` is fine.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other?),
            }
        }
        Command::Run(settings) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(controller::run(*settings))?;
            Ok(())
        }
        Command::Local(args) => tandem_operator::local::cli::main(*args),
    }
}
