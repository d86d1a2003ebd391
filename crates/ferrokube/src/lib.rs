//! ferrokube: a kind-like CLI that runs a local cluster of ferrokube
//! daemons as detached processes on this machine: etcd and kube-apiserver,
//! an image registry, and nodes (containerd + kubelet, each node in its own
//! network namespace).
//!
//! `main.rs` only calls [`main_with_args`]; everything else lives here so
//! tests can drive it.

pub mod addons;
pub mod apiclient;
pub mod certs_cmd;
pub mod cluster;
pub mod config;
pub mod forward;
pub mod images;
pub mod kubeconfig;
pub mod net;
pub mod node;
pub mod pki;
pub mod ports;
pub mod process;
pub mod state;
pub mod teardown;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// kind-style status output on stderr.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub quiet: bool,
}

impl Output {
    pub fn status(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }
    /// Start a step: ` • msg ...` (completed by [`end`](Self::end)).
    pub fn begin(&self, msg: &str) {
        if !self.quiet {
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprint!(" • {msg} ...");
                let _ = std::io::stderr().flush();
            }
            STEP.with(|s| *s.borrow_mut() = msg.to_string());
        }
    }
    /// Finish the current step: ` ✓ msg` or ` ✗ msg`.
    pub fn end(&self, ok: bool) {
        if !self.quiet {
            let msg = STEP.with(|s| std::mem::take(&mut *s.borrow_mut()));
            let mark = if ok { "✓" } else { "✗" };
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!("\r {mark} {msg}    ");
            } else {
                eprintln!(" {mark} {msg}");
            }
        }
    }
    /// Run `f` as a step.
    pub fn step<T>(&self, msg: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        self.begin(msg);
        let r = f();
        self.end(r.is_ok());
        r
    }
}

thread_local! {
    static STEP: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

#[derive(Debug, Parser)]
#[command(
    name = "ferrokube",
    about = "ferrokube creates and manages local Kubernetes clusters made of ferrokube daemons",
    version = env!("CARGO_PKG_VERSION"),
    disable_version_flag = true
)]
pub struct Cli {
    /// info log verbosity, higher value produces more output
    #[arg(short = 'v', long = "verbosity", global = true, default_value_t = 0)]
    pub verbosity: u8,
    /// silence all stderr output
    #[arg(short = 'q', long = "quiet", global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Creates one of [cluster]
    #[command(subcommand)]
    Create(CreateCommand),
    /// Deletes one of [cluster, clusters]
    #[command(subcommand)]
    Delete(DeleteCommand),
    /// Gets one of [clusters, nodes, kubeconfig]
    #[command(subcommand)]
    Get(GetCommand),
    /// Exports one of [kubeconfig]
    #[command(subcommand)]
    Export(ExportCommand),
    /// Loads images into nodes
    #[command(subcommand)]
    Load(LoadCommand),
    /// Restarts a node daemon: [kubelet]
    #[command(subcommand)]
    Restart(RestartCommand),
    /// Creates certificates and kubeconfigs for a cluster of machines (kubeadm's layout)
    #[command(subcommand)]
    Certs(certs_cmd::CertsCommand),
    /// Relays a host port to a node (a cluster's extraPortMappings)
    #[command(name = "forward-port", hide = true)]
    ForwardPort {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        to: std::net::SocketAddr,
    },
    /// Prints the ferrokube CLI version
    Version,
}

pub const DEFAULT_CLUSTER_NAME: &str = "ferrokube";

#[derive(Debug, Args)]
pub struct NameArg {
    /// the cluster name
    #[arg(
        short = 'n',
        long = "name",
        default_value = DEFAULT_CLUSTER_NAME,
        env = "FERROKUBE_CLUSTER_NAME"
    )]
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Creates a local Kubernetes cluster
    Cluster {
        #[command(flatten)]
        name: NameArg,
        /// wait for the control plane to be ready (e.g. 60s, 5m; 0 = do not wait)
        #[arg(long = "wait", default_value = "2m", value_parser = parse_wait)]
        wait: Duration,
        /// sets kubeconfig path instead of $KUBECONFIG or $HOME/.kube/config
        #[arg(long = "kubeconfig")]
        kubeconfig: Option<PathBuf>,
        /// retain the cluster's state and processes for debugging if creation fails
        #[arg(long = "retain")]
        retain: bool,
        /// start no nodes: only etcd, kube-apiserver and the registry (for tests)
        #[arg(long = "control-plane-only", hide = true)]
        control_plane_only: bool,
        /// path to a kind cluster config file (kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4)
        #[arg(long = "config", conflicts_with = "nodes")]
        config: Option<PathBuf>,
        /// number of nodes: one control-plane node and N-1 workers
        #[arg(long = "nodes")]
        nodes: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LoadCommand {
    /// Loads an image archive (OCI or docker-archive tarball) into every node
    #[command(name = "image-archive")]
    ImageArchive {
        #[command(flatten)]
        name: NameArg,
        /// the image archive
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeleteCommand {
    /// Deletes a cluster
    Cluster {
        #[command(flatten)]
        name: NameArg,
        /// sets kubeconfig path instead of $KUBECONFIG or $HOME/.kube/config
        #[arg(long = "kubeconfig")]
        kubeconfig: Option<PathBuf>,
    },
    /// Deletes one or more clusters
    Clusters {
        /// delete all clusters
        #[arg(short = 'A', long = "all")]
        all: bool,
        /// sets kubeconfig path instead of $KUBECONFIG or $HOME/.kube/config
        #[arg(long = "kubeconfig")]
        kubeconfig: Option<PathBuf>,
        /// cluster names
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RestartCommand {
    /// Restarts the kubelet of every node (or of --node), as
    /// `systemctl restart kubelet` would on a real machine
    Kubelet {
        #[command(flatten)]
        name: NameArg,
        /// only this node
        #[arg(long)]
        node: Option<String>,
    },
    /// Restarts the kube-proxy of every node (or of --node)
    #[command(name = "kube-proxy")]
    KubeProxy {
        #[command(flatten)]
        name: NameArg,
        /// only this node
        #[arg(long)]
        node: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// Lists existing ferrokube clusters by their name
    Clusters,
    /// Lists existing ferrokube nodes by their name
    Nodes {
        #[command(flatten)]
        name: NameArg,
    },
    /// Prints cluster kubeconfig
    Kubeconfig {
        #[command(flatten)]
        name: NameArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Exports the cluster's kubeconfig into $KUBECONFIG (or --kubeconfig)
    Kubeconfig {
        #[command(flatten)]
        name: NameArg,
        /// sets kubeconfig path instead of $KUBECONFIG or $HOME/.kube/config
        #[arg(long = "kubeconfig")]
        kubeconfig: Option<PathBuf>,
    },
}

/// `--wait`: a Go duration (`90s`, `5m`, `1h30m`, `1.5m`, `250ms`, `0`), as
/// kind's flag takes it; a negative one is refused.
fn parse_wait(s: &str) -> Result<Duration, String> {
    use component_base::duration::{parse, ParseError};
    parse(s).map_err(|e| match e {
        ParseError::Negative(_) => format!("invalid duration {s:?}: must not be negative"),
        _ => format!("invalid duration {s:?} (examples: 30s, 5m, 1h30m)"),
    })
}

/// `ferrokube version` output.
pub fn version_string() -> String {
    format!(
        "ferrokube v{} rust {}/{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    )
}

/// Run a parsed command; `stdout` receives command output (names, YAML).
pub fn run(cli: Cli, stdout: &mut dyn Write) -> anyhow::Result<()> {
    let out = Output { quiet: cli.quiet };
    match cli.command {
        Command::Version => {
            writeln!(stdout, "{}", version_string())?;
        }
        Command::Certs(c) => certs_cmd::run(c, stdout)?,
        Command::ForwardPort { listen, to } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(forward::run(listen, to))?;
        }
        Command::Create(CreateCommand::Cluster {
            name,
            wait,
            kubeconfig,
            retain,
            control_plane_only,
            config,
            nodes,
        }) => {
            let cfg = match (&config, nodes) {
                (Some(path), _) => config::ClusterConfig::load(path)?,
                (None, Some(n)) => config::ClusterConfig::with_nodes(n)?,
                (None, None) => config::ClusterConfig::with_nodes(1)?,
            };
            for w in &cfg.warnings {
                out.status(&format!(" • WARNING: {w}"));
            }
            // As kind: --name wins over the config's name, which wins over
            // the default.
            let name = match &cfg.name {
                Some(n) if name.name == DEFAULT_CLUSTER_NAME => n.clone(),
                _ => name.name,
            };
            let opts = cluster::CreateOptions {
                name,
                wait,
                kubeconfig,
                retain,
                control_plane_only,
                nodes: cfg.nodes,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(cluster::create(&opts, &out))
                .map_err(|e| e.context("failed to create cluster"))?;
        }
        Command::Delete(DeleteCommand::Cluster { name, kubeconfig }) => {
            cluster::delete(&name.name, kubeconfig.as_deref(), &out)
                .map_err(|e| e.context("failed to delete cluster"))?;
        }
        Command::Delete(DeleteCommand::Clusters {
            all,
            kubeconfig,
            names,
        }) => {
            let names = if all { cluster::list()? } else { names };
            if names.is_empty() && !all {
                anyhow::bail!("no cluster names given (use --all to delete every cluster)");
            }
            for n in &names {
                cluster::delete(n, kubeconfig.as_deref(), &out)
                    .map_err(|e| e.context(format!("failed to delete cluster \"{n}\"")))?;
            }
            out.status(&format!("Deleted clusters: {names:?}"));
        }
        Command::Get(GetCommand::Clusters) => {
            let names = cluster::list()?;
            if names.is_empty() {
                out.status("No ferrokube clusters found.");
            }
            for n in names {
                writeln!(stdout, "{n}")?;
            }
        }
        Command::Get(GetCommand::Nodes { name }) => {
            let nodes = cluster::get_nodes(&name.name)?;
            if nodes.is_empty() {
                out.status(&format!(
                    "No ferrokube nodes found for cluster \"{}\".",
                    name.name
                ));
            }
            for n in nodes {
                writeln!(stdout, "{n}")?;
            }
        }
        Command::Load(LoadCommand::ImageArchive { name, file }) => {
            cluster::load_image_archive(&name.name, &file, &out)?;
        }
        Command::Restart(RestartCommand::Kubelet { name, node }) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(cluster::restart_kubelet(&name.name, node.as_deref(), &out))
                .map_err(|e| e.context("failed to restart kubelet"))?;
        }
        Command::Restart(RestartCommand::KubeProxy { name, node }) => {
            cluster::restart_kube_proxy(&name.name, node.as_deref(), &out)
                .map_err(|e| e.context("failed to restart kube-proxy"))?;
        }
        Command::Get(GetCommand::Kubeconfig { name }) => {
            let text = cluster::get_kubeconfig(&name.name)?;
            write!(stdout, "{text}")?;
        }
        Command::Export(ExportCommand::Kubeconfig { name, kubeconfig }) => {
            cluster::export_kubeconfig(&name.name, kubeconfig.as_deref(), &out)?;
        }
    }
    stdout.flush()?;
    Ok(())
}

/// Entry point for `main`: parse arguments, run, print errors kind-style.
/// Returns the process exit code.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    component_base::logging::init(cli.verbosity);
    let mut stdout = std::io::stdout().lock();
    match run(cli, &mut stdout) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ferrokube").chain(args.iter().copied()))
    }

    #[test]
    fn cli_parsing() {
        let c = parse(&["create", "cluster"]).unwrap();
        match c.command {
            Command::Create(CreateCommand::Cluster {
                name,
                wait,
                kubeconfig,
                retain,
                control_plane_only,
                config,
                nodes,
            }) => {
                assert!(!control_plane_only);
                assert!(config.is_none() && nodes.is_none());
                assert_eq!(name.name, "ferrokube");
                assert_eq!(wait, Duration::from_secs(120));
                assert!(kubeconfig.is_none());
                assert!(!retain);
            }
            other => panic!("{other:?}"),
        }
        let c = parse(&[
            "create",
            "cluster",
            "--name",
            "x",
            "--wait",
            "60s",
            "--kubeconfig",
            "/k",
        ])
        .unwrap();
        match c.command {
            Command::Create(CreateCommand::Cluster {
                name,
                wait,
                kubeconfig,
                ..
            }) => {
                assert_eq!(name.name, "x");
                assert_eq!(wait, Duration::from_secs(60));
                assert_eq!(kubeconfig, Some(PathBuf::from("/k")));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["create", "cluster", "--wait", "soon"]).is_err());
        assert_eq!(parse_wait("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_wait("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_wait("5"),
            Err(r#"invalid duration "5" (examples: 30s, 5m, 1h30m)"#.into())
        );
        assert_eq!(
            parse_wait("-1s"),
            Err(r#"invalid duration "-1s": must not be negative"#.into())
        );
        assert!(matches!(
            parse(&["-v", "3", "get", "clusters"]).unwrap().verbosity,
            3
        ));
        assert!(matches!(
            parse(&["get", "kubeconfig", "-n", "y"]).unwrap().command,
            Command::Get(GetCommand::Kubeconfig { .. })
        ));
        assert!(matches!(
            parse(&["version"]).unwrap().command,
            Command::Version
        ));
        assert!(parse(&["delete", "cluster", "--name", "z"]).is_ok());
        match parse(&["load", "image-archive", "/x.tar", "--name", "c"])
            .unwrap()
            .command
        {
            Command::Load(LoadCommand::ImageArchive { name, file }) => {
                assert_eq!(name.name, "c");
                assert_eq!(file, PathBuf::from("/x.tar"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["load", "image-archive"]).is_err());
        assert!(matches!(
            parse(&["get", "nodes", "-n", "c"]).unwrap().command,
            Command::Get(GetCommand::Nodes { .. })
        ));
        assert!(parse(&["frobnicate"]).is_err());
    }

    #[test]
    fn version_output() {
        let mut buf = Vec::new();
        run(parse(&["version"]).unwrap(), &mut buf).unwrap();
        let s = String::from_utf8(buf).unwrap();
        assert!(s.starts_with("ferrokube v0."), "{s}");
        assert_eq!(main_with_args(["ferrokube", "version"]), 0);
        assert_eq!(main_with_args(["ferrokube", "bogus"]), 1);
    }
}
