//! An in-process apiserver on a real etcd, for tests and benchmarks: CA,
//! serving and admin certificates in a temp dir, a kubeconfig, and restart.
//!
//! Service-account tokens are on (issuer [`SA_ISSUER`], an ECDSA `sa.key` /
//! `sa.pub` pair). The ServiceAccount admission plugin is off, as in
//! upstream's integration tests (no serviceaccount controller creates the
//! `default` accounts), unless the extra flags name admission plugins.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use clap::Parser;
use storage::testing::EtcdProcess;

use crate::{Options, Running};

/// The --service-account-issuer of test servers.
pub const SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Certificates and a kubeconfig for one test cluster.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    pub admin_token: String,
}

impl Pki {
    pub fn generate() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (ca, ca_key) = component_base::certs::generate_ca("ferrokube-ca")?;
        let (cert, key) = component_base::certs::generate_serving_cert(
            &ca,
            &ca_key,
            "kube-apiserver",
            &[
                "localhost".into(),
                "kubernetes".into(),
                "kubernetes.default".into(),
            ],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )?;
        let (admin, admin_key) = component_base::certs::generate_client_cert(
            &ca,
            &ca_key,
            "kubernetes-admin",
            &["system:masters".into()],
        )?;
        std::fs::write(dir.path().join("ca.crt"), &ca)?;
        std::fs::write(dir.path().join("apiserver.crt"), &cert)?;
        std::fs::write(dir.path().join("apiserver.key"), &key)?;
        let sa = rcgen::KeyPair::generate()?;
        std::fs::write(dir.path().join("sa.key"), sa.serialize_pem())?;
        std::fs::write(dir.path().join("sa.pub"), sa.public_key_pem())?;
        let token = uuid::Uuid::new_v4().simple().to_string();
        std::fs::write(
            dir.path().join("tokens.csv"),
            format!("{token},token-admin,1,\"system:masters\"\n"),
        )?;
        Ok(Pki {
            dir,
            ca_pem: ca,
            admin_cert_pem: admin,
            admin_key_pem: admin_key,
            admin_token: token,
        })
    }

    pub fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    /// A kubeconfig for the admin user against `server`.
    pub fn kubeconfig(&self, server: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: admin\ncurrent-context: test\n",
            b(&self.ca_pem),
            b(&self.admin_cert_pem),
            b(&self.admin_key_pem)
        )
    }
}

/// etcd + apiserver, in-process.
pub struct TestServer {
    pub etcd: Vec<EtcdProcess>,
    pub pki: Pki,
    pub running: Option<Running>,
    pub port: u16,
    pub extra_args: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl TestServer {
    /// Start one etcd and an apiserver on it.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(1, Vec::new()).await
    }

    /// Start `members` etcd members and an apiserver with extra flags.
    pub async fn start_with(members: usize, extra_args: Vec<String>) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let etcd = if members == 1 {
            vec![EtcdProcess::try_start()?]
        } else {
            EtcdProcess::try_start_cluster(members)?
        };
        let pki = Pki::generate()?;
        let mut s = TestServer {
            etcd,
            pki,
            running: None,
            port: free_port(),
            extra_args,
        };
        s.boot().await?;
        Ok(s)
    }

    pub fn options(&self) -> Options {
        let endpoints: Vec<String> = self.etcd.iter().map(|e| e.endpoint()).collect();
        let mut args = vec![
            "kube-apiserver".to_string(),
            format!("--etcd-servers={}", endpoints.join(",")),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", self.port),
            format!(
                "--tls-cert-file={}",
                self.pki.path("apiserver.crt").display()
            ),
            format!(
                "--tls-private-key-file={}",
                self.pki.path("apiserver.key").display()
            ),
            format!("--client-ca-file={}", self.pki.path("ca.crt").display()),
            format!(
                "--token-auth-file={}",
                self.pki.path("tokens.csv").display()
            ),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            format!("--service-account-issuer={SA_ISSUER}"),
            format!(
                "--service-account-key-file={}",
                self.pki.path("sa.pub").display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                self.pki.path("sa.key").display()
            ),
        ];
        if !self
            .extra_args
            .iter()
            .any(|a| a.contains("-admission-plugins"))
        {
            args.push("--disable-admission-plugins=ServiceAccount".into());
        }
        args.extend(self.extra_args.iter().cloned());
        Options::parse_from(args)
    }

    async fn boot(&mut self) -> anyhow::Result<()> {
        let running = crate::start(self.options()).await?;
        self.running = Some(running);
        self.wait_ready().await
    }

    /// Wait for /readyz through the bootstrap.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let state = self.running.as_ref().context("not running")?.state.clone();
        for _ in 0..300 {
            if state.bootstrapped.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        anyhow::bail!("apiserver did not become ready")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Stop the apiserver (graceful) and start a new one on the same port and etcd.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(r) = self.running.take() {
            r.shutdown().await?;
        }
        self.boot().await
    }

    pub fn kubeconfig(&self) -> String {
        self.pki.kubeconfig(&self.url())
    }

    /// A kube-rs client as the admin.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig())?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        Ok(kube::Client::try_from(cfg)?)
    }

    /// Write the kubeconfig to a file (for kubectl).
    pub fn kubeconfig_file(&self) -> anyhow::Result<PathBuf> {
        let p = self.pki.path("kubeconfig");
        std::fs::write(&p, self.kubeconfig())?;
        Ok(p)
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(r) = self.running.take() {
            r.shutdown().await?;
        }
        Ok(())
    }
}
