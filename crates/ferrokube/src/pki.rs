//! Cluster certificates and the static token file.

use std::fs;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use component_base::certs;

use crate::state::{Layout, NodeLayout};

/// The first address of the service CIDR (the `kubernetes` Service).
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";
pub const ADMIN_USER: &str = "kubernetes-admin";
pub const ADMIN_GROUP: &str = "system:masters";
/// The identity kube-apiserver presents to kubelets (kubeadm's name).
pub const APISERVER_KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
pub const NODES_GROUP: &str = "system:nodes";

/// The user name of a node's kubelet.
pub fn node_user(node: &str) -> String {
    format!("system:node:{node}")
}

/// What create needs in memory after generating the PKI.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    pub admin_token: String,
    /// The CA key, for signing node certificates later.
    pub ca_key_pem: String,
}

fn write_private(path: &Path, content: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

fn write_public(path: &Path, content: &str) -> Result<()> {
    fs::write(path, content).with_context(|| format!("writing {}", path.display()))
}

/// A random 128-bit token, hex encoded.
pub fn random_token() -> Result<String> {
    let mut buf = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The apiserver's serving certificate names; `extra_ips` are added to
/// 127.0.0.1 and the `kubernetes` Service IP (e.g. the advertise address).
pub fn apiserver_sans(extra_ips: &[IpAddr]) -> (Vec<String>, Vec<IpAddr>) {
    let dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut ips: Vec<IpAddr> = ["127.0.0.1", KUBERNETES_SERVICE_IP]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    for ip in extra_ips {
        if !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    (dns, ips)
}

/// One line of a kube-apiserver `--token-auth-file`:
/// `token,user,uid,"group1,group2"`.
pub fn token_line(token: &str, user: &str, uid: &str, groups: &[&str]) -> String {
    format!("{token},{user},{uid},\"{}\"\n", groups.join(","))
}

/// Generate `pki/` and `tokens.csv` under the cluster directory. The
/// apiserver serving certificate also covers `extra_ips`.
pub fn generate(layout: &Layout, extra_ips: &[IpAddr]) -> Result<Pki> {
    let dir = layout.pki();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let (ca, ca_key) = certs::generate_ca("ferrokube-ca")?;
    write_public(&layout.pki_file("ca.crt"), &ca)?;
    write_private(&layout.pki_file("ca.key"), &ca_key)?;

    let (dns, ips) = apiserver_sans(extra_ips);
    let (crt, key) = certs::generate_serving_cert(&ca, &ca_key, "kube-apiserver", &dns, &ips)?;
    write_public(&layout.pki_file("apiserver.crt"), &crt)?;
    write_private(&layout.pki_file("apiserver.key"), &key)?;

    let (admin_crt, admin_key) =
        certs::generate_client_cert(&ca, &ca_key, ADMIN_USER, &[ADMIN_GROUP.to_string()])?;
    write_public(&layout.pki_file("admin.crt"), &admin_crt)?;
    write_private(&layout.pki_file("admin.key"), &admin_key)?;

    // kube-apiserver's client certificate towards the kubelets.
    let (kc_crt, kc_key) = certs::generate_client_cert(
        &ca,
        &ca_key,
        APISERVER_KUBELET_CLIENT_USER,
        &[ADMIN_GROUP.to_string()],
    )?;
    write_public(&layout.pki_file("apiserver-kubelet-client.crt"), &kc_crt)?;
    write_private(&layout.pki_file("apiserver-kubelet-client.key"), &kc_key)?;

    generate_service_account_keys(layout)?;

    let token = random_token()?;
    write_private(
        &layout.tokens(),
        &token_line(&token, ADMIN_USER, ADMIN_USER, &[ADMIN_GROUP]),
    )?;

    Ok(Pki {
        ca_pem: ca,
        admin_cert_pem: admin_crt,
        admin_key_pem: admin_key,
        admin_token: token,
        ca_key_pem: ca_key,
    })
}

/// kube-apiserver's service-account issuer (kubeadm's default:
/// `https://kubernetes.default.svc.<cluster domain>`).
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// PKIX SubjectPublicKeyInfo header of an uncompressed P-256 public key
/// (id-ecPublicKey, prime256v1, BIT STRING of 66 bytes).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn pem_body(pem: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .context("decoding PEM")
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The PKIX public key of a P-256 PKCS#8 private key that carries its
/// public key (as the keys generated here do): the key's last 65 bytes.
fn p256_public_key_pem(private_pem: &str) -> Result<String> {
    let der = pem_body(private_pem)?;
    let point = der
        .len()
        .checked_sub(65)
        .map(|i| &der[i..])
        .filter(|p| {
            p[0] == 0x04
                && der.len() > 70
                && der[der.len() - 68..der.len() - 65] == [0x03, 0x42, 0x00]
        })
        .context("not a P-256 PKCS#8 key with its public key")?;
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(point);
    Ok(pem_encode("PUBLIC KEY", &spki))
}

/// The service-account token signing key pair, kubeadm's file names:
/// `pki/sa.key` (private, 0600; an ECDSA P-256 key in PKCS#8, signing ES256
/// tokens: the RSA keys kubeadm makes cannot be generated with the crypto
/// backend here, and kube-apiserver accepts both) and `pki/sa.pub` (its
/// PKIX public key). kube-apiserver gets
/// `--service-account-issuer=`[`SERVICE_ACCOUNT_ISSUER`],
/// `--service-account-key-file=pki/sa.pub` and
/// `--service-account-signing-key-file=pki/sa.key`.
pub fn generate_service_account_keys(layout: &Layout) -> Result<()> {
    // A fresh key pair; the self-signed certificate made with it is not used.
    let (_, key) = certs::generate_ca("service-accounts")?;
    let public = p256_public_key_pem(&key)?;
    write_private(&layout.pki_file("sa.key"), &key)?;
    write_public(&layout.pki_file("sa.pub"), &public)?;
    Ok(())
}

/// The identities kubeadm gives the control-plane daemons (user, file stem
/// of `pki/<stem>.{crt,key}` and of the `<stem>.conf` kubeconfig).
pub const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";
pub const SCHEDULER_USER: &str = "system:kube-scheduler";
pub const CLOUD_CONTROLLER_MANAGER_USER: &str = "system:cloud-controller-manager";
pub const KUBE_PROXY_USER: &str = "system:kube-proxy";

/// A client certificate for a control-plane daemon, written to
/// `pki/<stem>.{crt,key}`; returns (cert, key) PEM.
pub fn generate_component(
    pki: &Pki,
    layout: &Layout,
    user: &str,
    stem: &str,
) -> Result<(String, String)> {
    let (crt, key) = certs::generate_client_cert(&pki.ca_pem, &pki.ca_key_pem, user, &[])?;
    write_public(&layout.pki_file(&format!("{stem}.crt")), &crt)?;
    write_private(&layout.pki_file(&format!("{stem}.key")), &key)?;
    Ok((crt, key))
}

/// A node's kubelet credentials, PEM.
#[derive(Debug, Clone)]
pub struct NodePki {
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

/// Generate a node's `pki/`: `kubelet-client.{crt,key}` (user
/// `system:node:<node>`, group `system:nodes`), `kubelet.{crt,key}`
/// (serving, for the node name and address) and a copy of `ca.crt`.
pub fn generate_node(pki: &Pki, node: &NodeLayout, node_ip: IpAddr) -> Result<NodePki> {
    let dir = node.pki();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_public(&node.pki_file("ca.crt"), &pki.ca_pem)?;
    let (crt, key) = certs::generate_client_cert(
        &pki.ca_pem,
        &pki.ca_key_pem,
        &node_user(&node.name),
        &[NODES_GROUP.to_string()],
    )?;
    write_public(&node.pki_file("kubelet-client.crt"), &crt)?;
    write_private(&node.pki_file("kubelet-client.key"), &key)?;
    let (scrt, skey) = certs::generate_serving_cert(
        &pki.ca_pem,
        &pki.ca_key_pem,
        &node.name,
        std::slice::from_ref(&node.name),
        &[node_ip],
    )?;
    write_public(&node.pki_file("kubelet.crt"), &scrt)?;
    write_private(&node.pki_file("kubelet.key"), &skey)?;
    Ok(NodePki {
        client_cert_pem: crt,
        client_key_pem: key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use component_base::tls;

    #[test]
    fn generates_files() {
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path(), "p");
        let pki = generate(&layout, &["10.200.0.1".parse().unwrap()]).unwrap();
        for f in [
            "ca.crt",
            "ca.key",
            "apiserver.crt",
            "apiserver.key",
            "admin.crt",
            "admin.key",
            "apiserver-kubelet-client.crt",
            "apiserver-kubelet-client.key",
            "sa.key",
            "sa.pub",
        ] {
            assert!(layout.pki_file(f).is_file(), "{f}");
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(layout.pki_file("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let admin = tls::load_certs(layout.pki_file("admin.crt")).unwrap();
        assert_eq!(
            tls::peer_identity(&admin[0]).unwrap(),
            (ADMIN_USER.to_string(), vec![ADMIN_GROUP.to_string()])
        );
        // The serving cert matches its key and chains to the CA.
        tls::server_config(
            layout.pki_file("apiserver.crt"),
            layout.pki_file("apiserver.key"),
            Some(&layout.pki_file("ca.crt")),
        )
        .unwrap();
        let tokens = fs::read_to_string(layout.tokens()).unwrap();
        assert_eq!(
            tokens,
            format!(
                "{},kubernetes-admin,kubernetes-admin,\"system:masters\"\n",
                pki.admin_token
            )
        );
        assert_eq!(pki.admin_token.len(), 32);
        let kc = tls::load_certs(layout.pki_file("apiserver-kubelet-client.crt")).unwrap();
        assert_eq!(
            tls::peer_identity(&kc[0]).unwrap(),
            (
                APISERVER_KUBELET_CLIENT_USER.to_string(),
                vec![ADMIN_GROUP.to_string()]
            )
        );
        let (_, ips) = apiserver_sans(&["10.200.0.1".parse().unwrap()]);
        assert_eq!(
            ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            ["127.0.0.1", "10.96.0.1", "10.200.0.1"]
        );

        let node = layout.node("p-control-plane");
        let np = generate_node(&pki, &node, "10.200.0.10".parse().unwrap()).unwrap();
        let client = tls::parse_certs(np.client_cert_pem.as_bytes()).unwrap();
        assert_eq!(
            tls::peer_identity(&client[0]).unwrap(),
            (
                "system:node:p-control-plane".to_string(),
                vec!["system:nodes".to_string()]
            )
        );
        tls::server_config(
            node.pki_file("kubelet.crt"),
            node.pki_file("kubelet.key"),
            Some(&node.pki_file("ca.crt")),
        )
        .unwrap();
        assert_ne!(random_token().unwrap(), random_token().unwrap());
    }

    #[test]
    fn service_account_public_key_matches_the_private_key() {
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path(), "p");
        fs::create_dir_all(layout.pki()).unwrap();
        generate_service_account_keys(&layout).unwrap();
        let key = fs::read_to_string(layout.pki_file("sa.key")).unwrap();
        let public = fs::read_to_string(layout.pki_file("sa.pub")).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        assert!(
            public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{public}"
        );
        let spki = pem_body(&public).unwrap();
        assert_eq!(spki.len(), 91);
        assert_eq!(spki[..26], P256_SPKI_PREFIX);
        assert_eq!(
            spki[26..],
            pem_body(&key).unwrap()[pem_body(&key).unwrap().len() - 65..]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(layout.pki_file("sa.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(p256_public_key_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
    }

    #[test]
    fn token_lines() {
        assert_eq!(token_line("t", "u", "1", &["a", "b"]), "t,u,1,\"a,b\"\n");
        assert_eq!(token_line("t", "u", "1", &[]), "t,u,1,\"\"\n");
    }
}
