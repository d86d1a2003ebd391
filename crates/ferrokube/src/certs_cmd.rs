//! `ferrokube certs ...`: the certificates, keys and kubeconfigs of a cluster
//! installed on machines with the systemd units of `hack/systemd/`, in
//! kubeadm's file layout.
//!
//! Every command reads the certificate authorities from `--dir` (default
//! `/etc/kubernetes`: `pki/ca.{crt,key}`, `pki/etcd/ca.{crt,key}`) and writes
//! what it makes under `--out` (default: `--dir`), with the same relative
//! paths, so `--out` is a directory to copy to a machine's `/etc/kubernetes`.
//! When `--out` differs from `--dir`, the CA certificates the new files are
//! checked against (never the CA keys) are copied along.
//!
//! | command | files (under `--out`) |
//! |---|---|
//! | `ca` | `pki/ca.{crt,key}`, `pki/etcd/ca.{crt,key}` (kept if present) |
//! | `sa` | `pki/sa.key`, `pki/sa.pub` (kept if present) |
//! | `apiserver` | `pki/apiserver.{crt,key}`, `pki/apiserver-kubelet-client.{crt,key}`, `pki/apiserver-etcd-client.{crt,key}` (+ `pki/sa.*` copied) |
//! | `etcd` | `pki/etcd/server.{crt,key}`, `pki/etcd/peer.{crt,key}`, `pki/etcd/healthcheck-client.{crt,key}` |
//! | `kubeconfig` | `admin.conf`, `controller-manager.conf`, `scheduler.conf`, `cloud-controller-manager.conf` or `kube-proxy.conf` |
//! | `node` | `kubelet.conf`, `pki/kubelet.{crt,key}` |
//!
//! Keys are ECDSA P-256; CAs are valid for 10 years, everything else for
//! one year. Private keys and kubeconfigs are written with mode 0600.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use component_base::certs;

use crate::pki;
use crate::state::Layout;

/// Where the CAs are read from and the results written to.
#[derive(Debug, Clone, Args)]
pub struct Dirs {
    /// the Kubernetes configuration directory holding pki/ca.{crt,key} and pki/etcd/ca.{crt,key}
    #[arg(long = "dir", default_value = "/etc/kubernetes")]
    pub dir: PathBuf,
    /// write the results here instead of --dir (same layout: a directory to copy to a machine's /etc/kubernetes)
    #[arg(long = "out")]
    pub out: Option<PathBuf>,
}

impl Dirs {
    fn out(&self) -> &Path {
        self.out.as_deref().unwrap_or(&self.dir)
    }
}

/// The components `certs kubeconfig` makes a kubeconfig for (kubeadm's
/// identities and file names).
pub const KUBECONFIG_COMPONENTS: [(&str, &str, &str, &[&str]); 5] = [
    ("admin", "admin.conf", pki::ADMIN_USER, &[pki::ADMIN_GROUP]),
    (
        "kube-controller-manager",
        "controller-manager.conf",
        pki::CONTROLLER_MANAGER_USER,
        &[],
    ),
    ("kube-scheduler", "scheduler.conf", pki::SCHEDULER_USER, &[]),
    (
        "cloud-controller-manager",
        "cloud-controller-manager.conf",
        pki::CLOUD_CONTROLLER_MANAGER_USER,
        &[],
    ),
    ("kube-proxy", "kube-proxy.conf", pki::KUBE_PROXY_USER, &[]),
];

/// The identity kube-apiserver presents to etcd (kubeadm's name).
pub const APISERVER_ETCD_CLIENT_USER: &str = "kube-apiserver-etcd-client";
/// The identity for `etcdctl` health checks (kubeadm's name).
pub const ETCD_HEALTHCHECK_CLIENT_USER: &str = "kube-etcd-healthcheck-client";
/// kubeadm's default Service CIDR.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Creates the cluster CA (pki/ca.{crt,key}) and the etcd CA
    /// (pki/etcd/ca.{crt,key}) in --dir; existing ones are kept
    Ca {
        /// the Kubernetes configuration directory
        #[arg(long = "dir", default_value = "/etc/kubernetes")]
        dir: PathBuf,
    },
    /// Creates the service-account token signing key pair (pki/sa.key,
    /// pki/sa.pub) in --dir; an existing pair is kept
    Sa {
        /// the Kubernetes configuration directory
        #[arg(long = "dir", default_value = "/etc/kubernetes")]
        dir: PathBuf,
    },
    /// Creates kube-apiserver's serving certificate and its client
    /// certificates towards the kubelets and etcd
    Apiserver {
        #[command(flatten)]
        dirs: Dirs,
        /// the address this apiserver advertises (--advertise-address of its unit)
        #[arg(long = "advertise-address")]
        advertise_address: IpAddr,
        /// extra names or addresses of the serving certificate (the shared
        /// address in front of the apiservers: VIP, DNS name), repeatable or comma-separated
        #[arg(long = "san", value_delimiter = ',')]
        san: Vec<String>,
        /// the Service CIDR (--service-cluster-ip-range); its first address is a SAN
        #[arg(long = "service-cidr", default_value = DEFAULT_SERVICE_CIDR)]
        service_cidr: String,
    },
    /// Creates one etcd member's serving and peer certificates and the
    /// etcdctl health-check client certificate
    Etcd {
        #[command(flatten)]
        dirs: Dirs,
        /// the member name (ETCD_NAME); also a DNS SAN
        #[arg(long = "name")]
        name: String,
        /// the member's addresses (client and peer URLs), repeatable or comma-separated
        #[arg(long = "address", value_delimiter = ',', required = true)]
        address: Vec<IpAddr>,
        /// extra names or addresses, repeatable or comma-separated
        #[arg(long = "san", value_delimiter = ',')]
        san: Vec<String>,
    },
    /// Creates a client certificate and kubeconfig for a component: admin,
    /// kube-controller-manager, kube-scheduler, cloud-controller-manager, kube-proxy
    Kubeconfig {
        #[command(flatten)]
        dirs: Dirs,
        /// admin, kube-controller-manager, kube-scheduler, cloud-controller-manager or kube-proxy
        #[arg(long = "component")]
        component: String,
        /// the apiserver URL written into the kubeconfig (e.g. https://10.0.0.10:6443)
        #[arg(long = "server")]
        server: String,
    },
    /// Creates a node's kubelet.conf (user system:node:<name>) and the
    /// kubelet's serving certificate pki/kubelet.{crt,key}
    Node {
        #[command(flatten)]
        dirs: Dirs,
        /// the node name (the kubelet's --hostname-override, or the host name)
        #[arg(long = "node-name")]
        node_name: String,
        /// the node's addresses (the kubelet's --node-ip), repeatable or comma-separated
        #[arg(long = "node-ip", value_delimiter = ',', required = true)]
        node_ip: Vec<IpAddr>,
        /// the apiserver URL written into kubelet.conf
        #[arg(long = "server")]
        server: String,
    },
}

/// Run a `certs` command; the files written are listed on `stdout`.
pub fn run(cmd: CertsCommand, stdout: &mut dyn Write) -> Result<()> {
    match cmd {
        CertsCommand::Ca { dir } => {
            ensure_ca(&dir, "pki/ca", "kubernetes", stdout)?;
            ensure_ca(&dir, "pki/etcd/ca", "etcd-ca", stdout)?;
        }
        CertsCommand::Sa { dir } => ensure_sa(&dir, stdout)?,
        CertsCommand::Apiserver {
            dirs,
            advertise_address,
            san,
            service_cidr,
        } => apiserver(&dirs, advertise_address, &san, &service_cidr, stdout)?,
        CertsCommand::Etcd {
            dirs,
            name,
            address,
            san,
        } => etcd(&dirs, &name, &address, &san, stdout)?,
        CertsCommand::Kubeconfig {
            dirs,
            component,
            server,
        } => kubeconfig(&dirs, &component, &server, stdout)?,
        CertsCommand::Node {
            dirs,
            node_name,
            node_ip,
            server,
        } => node(&dirs, &node_name, &node_ip, &server, stdout)?,
    }
    Ok(())
}

fn write_file(path: &Path, content: &str, mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    // Replace rather than rewrite in place, so the mode is always ours.
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(content.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| {
        format!(
            "reading {} (create the CAs first with `ferrokube certs ca`)",
            path.display()
        )
    })
}

/// A certificate authority read from `<dir>/<stem>.{crt,key}`.
struct Ca {
    cert: String,
    key: String,
}

impl Ca {
    fn load(dir: &Path, stem: &str) -> Result<Ca> {
        Ok(Ca {
            cert: read(&dir.join(format!("{stem}.crt")))?,
            key: read(&dir.join(format!("{stem}.key")))?,
        })
    }
}

/// Writes `<out>/<stem>.crt` and `<out>/<stem>.key` and lists them.
fn write_pair(out: &Path, stem: &str, cert: &str, key: &str, stdout: &mut dyn Write) -> Result<()> {
    let crt = out.join(format!("{stem}.crt"));
    let k = out.join(format!("{stem}.key"));
    write_file(&crt, cert, 0o644)?;
    write_file(&k, key, 0o600)?;
    writeln!(stdout, "wrote {}", crt.display())?;
    writeln!(stdout, "wrote {}", k.display())?;
    Ok(())
}

/// Copies `rel` from `dirs.dir` to `dirs.out` when they differ.
fn copy_along(dirs: &Dirs, rel: &str, mode: u32, stdout: &mut dyn Write) -> Result<()> {
    let from = dirs.dir.join(rel);
    let to = dirs.out().join(rel);
    if same_dir(&dirs.dir, dirs.out()) {
        return Ok(());
    }
    write_file(&to, &read(&from)?, mode)?;
    writeln!(stdout, "copied {}", to.display())?;
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn ensure_ca(dir: &Path, stem: &str, cn: &str, stdout: &mut dyn Write) -> Result<()> {
    let crt = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    match (crt.exists(), key.exists()) {
        (true, true) => {
            // Refuse a pair that cannot sign (e.g. a truncated file).
            let ca = Ca::load(dir, stem)?;
            certs::generate_client_cert(&ca.cert, &ca.key, "probe", &[]).with_context(|| {
                format!("{} and {} do not form a CA", crt.display(), key.display())
            })?;
            writeln!(stdout, "kept existing {}", crt.display())?;
        }
        (false, false) => {
            let (c, k) = certs::generate_ca(cn)?;
            write_pair(dir, stem, &c, &k, stdout)?;
        }
        _ => bail!(
            "only one of {} and {} exists: remove it or restore the other",
            crt.display(),
            key.display()
        ),
    }
    Ok(())
}

fn ensure_sa(dir: &Path, stdout: &mut dyn Write) -> Result<()> {
    let key = dir.join("pki/sa.key");
    let public = dir.join("pki/sa.pub");
    match (key.exists(), public.exists()) {
        (true, true) => writeln!(stdout, "kept existing {}", key.display())?,
        (false, false) => {
            fs::create_dir_all(dir.join("pki"))
                .with_context(|| format!("creating {}", dir.join("pki").display()))?;
            // pki.rs writes <layout.dir>/pki/sa.{key,pub}.
            let layout = Layout {
                name: String::new(),
                dir: dir.to_path_buf(),
            };
            pki::generate_service_account_keys(&layout)?;
            writeln!(stdout, "wrote {}", key.display())?;
            writeln!(stdout, "wrote {}", public.display())?;
        }
        _ => bail!(
            "only one of {} and {} exists: remove it or restore the other",
            key.display(),
            public.display()
        ),
    }
    Ok(())
}

/// The first address of a CIDR (the `kubernetes` Service's ClusterIP).
pub fn first_service_ip(cidr: &str) -> Result<IpAddr> {
    let (net, bits) = cidr
        .trim()
        .split_once('/')
        .with_context(|| format!("invalid Service CIDR {cidr:?}: want address/prefix"))?;
    let bits: u32 = bits
        .parse()
        .with_context(|| format!("invalid Service CIDR {cidr:?}"))?;
    let ip: IpAddr = net
        .parse()
        .with_context(|| format!("invalid Service CIDR {cidr:?}"))?;
    Ok(match ip {
        IpAddr::V4(v4) if bits <= 30 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            IpAddr::V4(std::net::Ipv4Addr::from((u32::from(v4) & mask) + 1))
        }
        IpAddr::V6(v6) if bits <= 126 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            IpAddr::V6(std::net::Ipv6Addr::from((u128::from(v6) & mask) + 1))
        }
        _ => bail!("invalid Service CIDR {cidr:?}: prefix too long"),
    })
}

/// Splits `--san` values into DNS names and addresses.
fn split_sans(sans: &[String]) -> Result<(Vec<String>, Vec<IpAddr>)> {
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    for s in sans.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match s.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => {
                if s.contains(['/', ':', ' ']) {
                    bail!("invalid --san {s:?}: want a DNS name or an IP address");
                }
                dns.push(s.to_string());
            }
        }
    }
    Ok((dns, ips))
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, items: impl IntoIterator<Item = T>) {
    for i in items {
        if !v.contains(&i) {
            v.push(i);
        }
    }
}

/// The apiserver serving certificate's names: the in-cluster names,
/// localhost, the first Service address, the advertise address and `extra`.
fn apiserver_sans(
    advertise: IpAddr,
    extra: &[String],
    service_cidr: &str,
) -> Result<(Vec<String>, Vec<IpAddr>)> {
    let (mut dns, mut ips) = pki::apiserver_sans(&[]);
    // pki::apiserver_sans has the local cluster's service IP; use ours.
    ips.retain(|ip| ip.to_string() != pki::KUBERNETES_SERVICE_IP);
    push_unique(&mut ips, [first_service_ip(service_cidr)?, advertise]);
    let (xdns, xips) = split_sans(extra)?;
    push_unique(&mut dns, xdns);
    push_unique(&mut ips, xips);
    Ok((dns, ips))
}

fn apiserver(
    dirs: &Dirs,
    advertise: IpAddr,
    san: &[String],
    service_cidr: &str,
    stdout: &mut dyn Write,
) -> Result<()> {
    let ca = Ca::load(&dirs.dir, "pki/ca")?;
    let etcd_ca = Ca::load(&dirs.dir, "pki/etcd/ca")?;
    let out = dirs.out();
    let (dns, ips) = apiserver_sans(advertise, san, service_cidr)?;
    let (c, k) = certs::generate_serving_cert(&ca.cert, &ca.key, "kube-apiserver", &dns, &ips)?;
    write_pair(out, "pki/apiserver", &c, &k, stdout)?;
    let (c, k) = certs::generate_client_cert(
        &ca.cert,
        &ca.key,
        pki::APISERVER_KUBELET_CLIENT_USER,
        &[pki::ADMIN_GROUP.to_string()],
    )?;
    write_pair(out, "pki/apiserver-kubelet-client", &c, &k, stdout)?;
    let (c, k) =
        certs::generate_client_cert(&etcd_ca.cert, &etcd_ca.key, APISERVER_ETCD_CLIENT_USER, &[])?;
    write_pair(out, "pki/apiserver-etcd-client", &c, &k, stdout)?;
    copy_along(dirs, "pki/ca.crt", 0o644, stdout)?;
    copy_along(dirs, "pki/etcd/ca.crt", 0o644, stdout)?;
    // Every apiserver signs and verifies tokens with the same pair.
    if dirs.dir.join("pki/sa.key").exists() {
        copy_along(dirs, "pki/sa.key", 0o600, stdout)?;
        copy_along(dirs, "pki/sa.pub", 0o644, stdout)?;
    } else {
        writeln!(
            stdout,
            "note: {} is missing: create it with `ferrokube certs sa` (every apiserver needs the same pair)",
            dirs.dir.join("pki/sa.key").display()
        )?;
    }
    Ok(())
}

/// A certificate for both TLS ends (etcd's serving and peer certificates:
/// etcd dials its peers, and itself, with them). Returns `(cert, key)` PEM.
fn generate_server_client_cert(
    ca: &Ca,
    cn: &str,
    dns: &[String],
    ips: &[IpAddr],
) -> Result<(String, String)> {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        SanType,
    };
    let ca_key = KeyPair::from_pem(&ca.key).context("parsing CA private key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key).context("parsing CA certificate")?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    for name in dns {
        let ia5 = name
            .clone()
            .try_into()
            .map_err(|e| anyhow::anyhow!("invalid DNS name {name:?}: {e}"))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params
        .subject_alt_names
        .extend(ips.iter().copied().map(SanType::IpAddress));
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365);
    let key = KeyPair::generate().context("generating key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn etcd(
    dirs: &Dirs,
    name: &str,
    addresses: &[IpAddr],
    san: &[String],
    stdout: &mut dyn Write,
) -> Result<()> {
    if name.is_empty() || name.contains(['/', ',', '=', ' ']) {
        bail!("invalid etcd member name {name:?}");
    }
    let ca = Ca::load(&dirs.dir, "pki/etcd/ca")?;
    let out = dirs.out();
    let mut dns = vec![name.to_string(), "localhost".to_string()];
    let mut ips: Vec<IpAddr> = addresses.to_vec();
    push_unique(
        &mut ips,
        ["127.0.0.1", "::1"].iter().filter_map(|s| s.parse().ok()),
    );
    let (xdns, xips) = split_sans(san)?;
    push_unique(&mut dns, xdns);
    push_unique(&mut ips, xips);
    let (c, k) = generate_server_client_cert(&ca, name, &dns, &ips)?;
    write_pair(out, "pki/etcd/server", &c, &k, stdout)?;
    let (c, k) = generate_server_client_cert(&ca, name, &dns, &ips)?;
    write_pair(out, "pki/etcd/peer", &c, &k, stdout)?;
    let (c, k) = certs::generate_client_cert(&ca.cert, &ca.key, ETCD_HEALTHCHECK_CLIENT_USER, &[])?;
    write_pair(out, "pki/etcd/healthcheck-client", &c, &k, stdout)?;
    copy_along(dirs, "pki/etcd/ca.crt", 0o644, stdout)?;
    Ok(())
}

fn check_server(server: &str) -> Result<()> {
    if !server.starts_with("https://") || server.len() <= "https://".len() {
        bail!("invalid --server {server:?}: want https://host:port");
    }
    Ok(())
}

fn write_kubeconfig(
    out: &Path,
    file: &str,
    server: &str,
    ca: &Ca,
    user: &str,
    (cert, key): (&str, &str),
    stdout: &mut dyn Write,
) -> Result<()> {
    let v = crate::kubeconfig::build_named(
        "kubernetes",
        user,
        &format!("{user}@kubernetes"),
        server,
        &ca.cert,
        cert,
        key,
    );
    let path = out.join(file);
    write_file(&path, &crate::kubeconfig::to_yaml(&v)?, 0o600)?;
    writeln!(stdout, "wrote {}", path.display())?;
    Ok(())
}

fn kubeconfig(dirs: &Dirs, component: &str, server: &str, stdout: &mut dyn Write) -> Result<()> {
    check_server(server)?;
    let Some((_, file, user, groups)) =
        KUBECONFIG_COMPONENTS.iter().find(|(c, ..)| *c == component)
    else {
        let names: Vec<&str> = KUBECONFIG_COMPONENTS.iter().map(|c| c.0).collect();
        bail!(
            "unknown component {component:?}: want one of {} (kubelets: `ferrokube certs node`)",
            names.join(", ")
        );
    };
    let ca = Ca::load(&dirs.dir, "pki/ca")?;
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let (c, k) = certs::generate_client_cert(&ca.cert, &ca.key, user, &groups)?;
    write_kubeconfig(dirs.out(), file, server, &ca, user, (&c, &k), stdout)
}

fn node(
    dirs: &Dirs,
    name: &str,
    ips: &[IpAddr],
    server: &str,
    stdout: &mut dyn Write,
) -> Result<()> {
    check_server(server)?;
    if name.is_empty() || name != name.to_lowercase() || name.contains(['/', ' ', ',']) {
        bail!("invalid node name {name:?}: want a lowercase DNS name");
    }
    let ca = Ca::load(&dirs.dir, "pki/ca")?;
    let out = dirs.out();
    let user = pki::node_user(name);
    let (c, k) =
        certs::generate_client_cert(&ca.cert, &ca.key, &user, &[pki::NODES_GROUP.to_string()])?;
    write_kubeconfig(out, "kubelet.conf", server, &ca, &user, (&c, &k), stdout)?;
    let (c, k) = certs::generate_serving_cert(&ca.cert, &ca.key, name, &[name.to_string()], ips)?;
    write_pair(out, "pki/kubelet", &c, &k, stdout)?;
    copy_along(dirs, "pki/ca.crt", 0o644, stdout)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use component_base::tls;
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::prelude::*;

    fn run_ok(cmd: CertsCommand) -> String {
        let mut out = Vec::new();
        run(cmd, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn dirs(dir: &Path, out: Option<&Path>) -> Dirs {
        Dirs {
            dir: dir.to_path_buf(),
            out: out.map(Path::to_path_buf),
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn parsed(path: &Path) -> (Vec<String>, bool, bool) {
        let der = tls::load_certs(path).unwrap();
        let (_, c) = X509Certificate::from_der(der[0].as_ref()).unwrap();
        let sans = c
            .subject_alternative_name()
            .unwrap()
            .map(|s| {
                s.value
                    .general_names
                    .iter()
                    .map(|g| match g {
                        GeneralName::DNSName(d) => d.to_string(),
                        GeneralName::IPAddress(b) if b.len() == 4 => {
                            IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string()
                        }
                        GeneralName::IPAddress(b) if b.len() == 16 => {
                            IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string()
                        }
                        other => format!("{other:?}"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        (sans, eku.server_auth, eku.client_auth)
    }

    #[test]
    fn first_service_ips() {
        assert_eq!(
            first_service_ip("10.96.0.0/12").unwrap().to_string(),
            "10.96.0.1"
        );
        assert_eq!(
            first_service_ip("10.100.7.9/16").unwrap().to_string(),
            "10.100.0.1"
        );
        assert_eq!(
            first_service_ip("fd00::/108").unwrap().to_string(),
            "fd00::1"
        );
        assert!(first_service_ip("10.96.0.0").is_err());
        assert!(first_service_ip("10.96.0.0/32").is_err());
        assert!(first_service_ip("x/12").is_err());
    }

    #[test]
    fn full_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("k");
        let out = run_ok(CertsCommand::Ca { dir: d.clone() });
        assert!(
            out.contains("pki/ca.crt") && out.contains("pki/etcd/ca.key"),
            "{out}"
        );
        let ca_before = fs::read_to_string(d.join("pki/ca.crt")).unwrap();
        // Idempotent: the CAs are kept.
        let out = run_ok(CertsCommand::Ca { dir: d.clone() });
        assert!(out.contains("kept existing"), "{out}");
        assert_eq!(fs::read_to_string(d.join("pki/ca.crt")).unwrap(), ca_before);
        assert_eq!(mode(&d.join("pki/ca.key")), 0o600);
        run_ok(CertsCommand::Sa { dir: d.clone() });
        let sa = fs::read_to_string(d.join("pki/sa.key")).unwrap();
        run_ok(CertsCommand::Sa { dir: d.clone() });
        assert_eq!(fs::read_to_string(d.join("pki/sa.key")).unwrap(), sa);

        // A control-plane machine's directory.
        let cp = tmp.path().join("cp1");
        run_ok(CertsCommand::Apiserver {
            dirs: dirs(&d, Some(&cp)),
            advertise_address: "192.0.2.11".parse().unwrap(),
            san: vec!["192.0.2.10".into(), "k8s.example.lan".into()],
            service_cidr: DEFAULT_SERVICE_CIDR.into(),
        });
        for f in [
            "pki/apiserver.crt",
            "pki/apiserver-kubelet-client.key",
            "pki/apiserver-etcd-client.crt",
            "pki/ca.crt",
            "pki/etcd/ca.crt",
            "pki/sa.key",
            "pki/sa.pub",
        ] {
            assert!(cp.join(f).is_file(), "{f}");
        }
        assert!(!cp.join("pki/ca.key").exists());
        assert!(!cp.join("pki/etcd/ca.key").exists());
        assert_eq!(mode(&cp.join("pki/sa.key")), 0o600);
        let (sans, server, client) = parsed(&cp.join("pki/apiserver.crt"));
        for s in [
            "kubernetes.default.svc.cluster.local",
            "localhost",
            "127.0.0.1",
            "10.96.0.1",
            "192.0.2.11",
            "192.0.2.10",
            "k8s.example.lan",
        ] {
            assert!(sans.contains(&s.to_string()), "{s} in {sans:?}");
        }
        assert!(server && !client);
        tls::server_config(
            cp.join("pki/apiserver.crt"),
            cp.join("pki/apiserver.key"),
            Some(&cp.join("pki/ca.crt")),
        )
        .unwrap();
        let etcd_client = tls::load_certs(cp.join("pki/apiserver-etcd-client.crt")).unwrap();
        assert_eq!(
            tls::peer_identity(&etcd_client[0]).unwrap().0,
            APISERVER_ETCD_CLIENT_USER
        );

        // etcd members: server and peer certificates serve and dial.
        let e = tmp.path().join("etcd-1");
        run_ok(CertsCommand::Etcd {
            dirs: dirs(&d, Some(&e)),
            name: "etcd-1".into(),
            address: vec!["192.0.2.21".parse().unwrap()],
            san: vec![],
        });
        for f in ["server", "peer"] {
            let (sans, server, client) = parsed(&e.join(format!("pki/etcd/{f}.crt")));
            assert!(server && client, "{f}");
            for s in ["etcd-1", "localhost", "192.0.2.21", "127.0.0.1", "::1"] {
                assert!(sans.contains(&s.to_string()), "{s} in {sans:?}");
            }
        }
        assert!(e.join("pki/etcd/healthcheck-client.key").is_file());
        assert!(e.join("pki/etcd/ca.crt").is_file());
        assert!(!e.join("pki/ca.crt").exists());

        // Kubeconfigs.
        for (component, file, user, groups) in KUBECONFIG_COMPONENTS {
            run_ok(CertsCommand::Kubeconfig {
                dirs: dirs(&d, Some(&cp)),
                component: component.into(),
                server: "https://192.0.2.10:6443".into(),
            });
            let path = cp.join(file);
            assert_eq!(mode(&path), 0o600);
            let kc: serde_yaml::Value =
                serde_yaml::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(
                kc["clusters"][0]["cluster"]["server"].as_str(),
                Some("https://192.0.2.10:6443")
            );
            assert_eq!(kc["users"][0]["name"].as_str(), Some(user));
            assert_eq!(
                kc["current-context"].as_str(),
                Some(format!("{user}@kubernetes").as_str())
            );
            use base64::Engine as _;
            let pem = base64::engine::general_purpose::STANDARD
                .decode(
                    kc["users"][0]["user"]["client-certificate-data"]
                        .as_str()
                        .unwrap(),
                )
                .unwrap();
            let cert = tls::parse_certs(&pem).unwrap();
            assert_eq!(
                tls::peer_identity(&cert[0]).unwrap(),
                (
                    user.to_string(),
                    groups.iter().map(|g| g.to_string()).collect::<Vec<_>>()
                )
            );
        }
        let mut sink = Vec::new();
        let err = run(
            CertsCommand::Kubeconfig {
                dirs: dirs(&d, None),
                component: "kubelet".into(),
                server: "https://a:6443".into(),
            },
            &mut sink,
        )
        .unwrap_err();
        assert!(err.to_string().contains("certs node"), "{err}");
        assert!(run(
            CertsCommand::Kubeconfig {
                dirs: dirs(&d, None),
                component: "admin".into(),
                server: "http://a:6443".into(),
            },
            &mut sink,
        )
        .is_err());

        // A worker.
        let w = tmp.path().join("worker-1");
        run_ok(CertsCommand::Node {
            dirs: dirs(&d, Some(&w)),
            node_name: "worker-1".into(),
            node_ip: vec!["192.0.2.31".parse().unwrap()],
            server: "https://192.0.2.10:6443".into(),
        });
        let kc: serde_yaml::Value =
            serde_yaml::from_str(&fs::read_to_string(w.join("kubelet.conf")).unwrap()).unwrap();
        assert_eq!(
            kc["users"][0]["name"].as_str(),
            Some("system:node:worker-1")
        );
        let (sans, server, _) = parsed(&w.join("pki/kubelet.crt"));
        assert!(server);
        assert!(sans.contains(&"worker-1".to_string()) && sans.contains(&"192.0.2.31".to_string()));
        assert!(w.join("pki/ca.crt").is_file());
    }

    #[test]
    fn errors() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let mut sink = Vec::new();
        // No CA yet.
        let err = run(
            CertsCommand::Apiserver {
                dirs: dirs(d, None),
                advertise_address: "192.0.2.1".parse().unwrap(),
                san: vec![],
                service_cidr: DEFAULT_SERVICE_CIDR.into(),
            },
            &mut sink,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("certs ca"), "{err:#}");
        // Half a CA.
        fs::create_dir_all(d.join("pki")).unwrap();
        fs::write(d.join("pki/ca.crt"), "x").unwrap();
        assert!(run(
            CertsCommand::Ca {
                dir: d.to_path_buf()
            },
            &mut sink
        )
        .is_err());
        assert!(split_sans(&["a b".into()]).is_err());
        assert!(run(
            CertsCommand::Etcd {
                dirs: dirs(d, None),
                name: "a=b".into(),
                address: vec!["127.0.0.1".parse().unwrap()],
                san: vec![],
            },
            &mut sink
        )
        .is_err());
    }
}
