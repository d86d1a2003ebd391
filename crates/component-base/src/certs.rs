//! Certificate generation for a local cluster: a self-signed CA, serving
//! certificates and client certificates carrying a Kubernetes identity
//! (CommonName = user, one Organization per group).
//!
//! Everything is PEM in, PEM out. Keys are ECDSA P-256. The CA is valid for
//! 10 years, leaf certificates for 1 year; all start one hour in the past to
//! tolerate clock skew.

use std::net::IpAddr;

use anyhow::{anyhow, bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SigningKey,
};
use time::{Duration, OffsetDateTime};

const CA_VALIDITY_DAYS: i64 = 3650;
const LEAF_VALIDITY_DAYS: i64 = 365;

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

/// Generate a self-signed CA. Returns `(cert_pem, key_pem)`.
pub fn generate_ca(common_name: &str) -> Result<(String, String)> {
    let key = KeyPair::generate().context("generating CA key")?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    validity(&mut params, CA_VALIDITY_DAYS);
    let cert = params.self_signed(&key).context("self-signing CA")?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn load_issuer(ca_cert_pem: &str, ca_key_pem: &str) -> Result<Issuer<'static, KeyPair>> {
    let key = KeyPair::from_pem(ca_key_pem).context("parsing CA private key")?;
    Issuer::from_ca_cert_pem(ca_cert_pem, key).context("parsing CA certificate")
}

fn leaf_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    validity(&mut params, LEAF_VALIDITY_DAYS);
    params
}

/// Generate a serving certificate signed by the CA, valid for the given DNS
/// names and IP addresses. Returns `(cert_pem, key_pem)`.
pub fn generate_serving_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    cn: &str,
    dns_names: &[String],
    ips: &[IpAddr],
) -> Result<(String, String)> {
    let issuer = load_issuer(ca_cert_pem, ca_key_pem)?;
    let mut params = leaf_params(cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    for name in dns_names {
        let ia5 = name
            .clone()
            .try_into()
            .map_err(|e| anyhow!("invalid DNS name {name:?}: {e}"))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params
        .subject_alt_names
        .extend(ips.iter().copied().map(SanType::IpAddress));
    let key = KeyPair::generate().context("generating serving key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing serving certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Generate a client certificate (client-auth EKU) signed by the CA, with
/// `cn` as user name and every entry of `groups` as an Organization.
/// Returns `(cert_pem, key_pem)`.
pub fn generate_client_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    cn: &str,
    groups: &[String],
) -> Result<(String, String)> {
    let issuer = load_issuer(ca_cert_pem, ca_key_pem)?;
    let mut params = leaf_params(cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().context("generating client key")?;
    match groups {
        [] => {}
        [one] => {
            // rcgen writes the attributes in insertion order; put O before CN
            // like kubeadm does.
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(DnType::OrganizationName, one.as_str());
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        _ => {
            // rcgen's DistinguishedName holds one value per attribute type, so
            // a subject with several Organizations is spliced in afterwards and
            // the certificate re-signed with the CA key.
            let cert = params
                .signed_by(&key, &issuer)
                .context("signing client certificate")?;
            let subject = der::subject_with_orgs(cn, groups);
            let der = der::replace_subject(cert.der().as_ref(), &subject, issuer.key())?;
            return Ok((der::to_pem("CERTIFICATE", &der), key.serialize_pem()));
        }
    }
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing client certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Just enough DER to rewrite a certificate's subject.
mod der {
    use super::*;
    use base64::Engine as _;

    const TAG_SEQUENCE: u8 = 0x30;
    const TAG_SET: u8 = 0x31;
    const TAG_OID: u8 = 0x06;
    const TAG_UTF8: u8 = 0x0c;
    const TAG_BIT_STRING: u8 = 0x03;
    const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
    const OID_O: &[u8] = &[0x55, 0x04, 0x0a];

    pub(super) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    /// Split one TLV off the front of `buf`: `(tag, header_len, total_len)`.
    pub(super) fn read_tlv(buf: &[u8]) -> Result<(u8, usize, usize)> {
        let (&tag, rest) = buf.split_first().ok_or_else(|| anyhow!("truncated DER"))?;
        let (&first, rest) = rest.split_first().ok_or_else(|| anyhow!("truncated DER"))?;
        let (len, hdr) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                bail!("unsupported DER length");
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + n)
        };
        let total = hdr
            .checked_add(len)
            .ok_or_else(|| anyhow!("DER length overflow"))?;
        if total > buf.len() {
            bail!("truncated DER");
        }
        Ok((tag, hdr, total))
    }

    fn attribute(oid: &[u8], value: &str) -> Vec<u8> {
        let mut atv = tlv(TAG_OID, oid);
        atv.extend(tlv(TAG_UTF8, value.as_bytes()));
        tlv(TAG_SET, &tlv(TAG_SEQUENCE, &atv))
    }

    /// `O=g1, O=g2, ..., CN=cn` as a DER Name (one RDN per attribute).
    pub(super) fn subject_with_orgs(cn: &str, orgs: &[String]) -> Vec<u8> {
        let mut rdns = Vec::new();
        for o in orgs {
            rdns.extend(attribute(OID_O, o));
        }
        rdns.extend(attribute(OID_CN, cn));
        tlv(TAG_SEQUENCE, &rdns)
    }

    /// Replace the subject of `cert` with `subject` and re-sign the TBS
    /// certificate with `signer` (the same key that signed `cert`).
    pub(super) fn replace_subject(
        cert: &[u8],
        subject: &[u8],
        signer: &impl SigningKey,
    ) -> Result<Vec<u8>> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert)
            .map_err(|e| anyhow!("re-parsing generated certificate: {e}"))?;
        let base = cert.as_ptr() as usize;
        let subj = parsed.tbs_certificate.subject.as_raw();
        let subj_start = (subj.as_ptr() as usize)
            .checked_sub(base)
            .ok_or_else(|| anyhow!("subject outside certificate"))?;
        let subj_end = subj_start + subj.len();

        let (tag, outer_hdr, outer_total) = read_tlv(cert)?;
        if tag != TAG_SEQUENCE || outer_total != cert.len() {
            bail!("certificate is not a DER SEQUENCE");
        }
        let body = &cert[outer_hdr..];
        let (_, tbs_hdr, tbs_total) = read_tlv(body)?;
        let tbs_start = outer_hdr;
        let tbs_content_start = tbs_start + tbs_hdr;
        let tbs_end = tbs_start + tbs_total;
        if !(tbs_content_start <= subj_start && subj_end <= tbs_end) {
            bail!("subject not inside TBS certificate");
        }
        let (_, _, alg_total) = read_tlv(&cert[tbs_end..])?;
        let alg = &cert[tbs_end..tbs_end + alg_total];

        let mut tbs_content = Vec::with_capacity(tbs_total + subject.len());
        tbs_content.extend_from_slice(&cert[tbs_content_start..subj_start]);
        tbs_content.extend_from_slice(subject);
        tbs_content.extend_from_slice(&cert[subj_end..tbs_end]);
        let tbs = tlv(TAG_SEQUENCE, &tbs_content);

        let sig = signer.sign(&tbs).context("re-signing certificate")?;
        let mut bits = Vec::with_capacity(sig.len() + 1);
        bits.push(0);
        bits.extend(sig);

        let mut out = tbs;
        out.extend_from_slice(alg);
        out.extend(tlv(TAG_BIT_STRING, &bits));
        Ok(tlv(TAG_SEQUENCE, &out))
    }

    pub(super) fn to_pem(label: &str, der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut out = format!("-----BEGIN {label}-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls;
    use std::sync::Arc;
    use x509_parser::prelude::*;

    fn handshake(
        server: rustls::ServerConfig,
        client: rustls::ClientConfig,
        name: &str,
    ) -> std::result::Result<Option<Vec<rustls::pki_types::CertificateDer<'static>>>, rustls::Error>
    {
        let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(client), server_name).unwrap();
        let mut s = rustls::ServerConnection::new(Arc::new(server)).unwrap();
        for _ in 0..20 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                s.read_tls(&mut buf.as_slice()).unwrap();
                s.process_new_packets()?;
            }
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                c.read_tls(&mut buf.as_slice()).unwrap();
                c.process_new_packets()?;
            }
            if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() {
                return Ok(s.peer_certificates().map(|p| p.to_vec()));
            }
        }
        panic!("handshake did not finish");
    }

    fn pki() -> (String, String, rustls::ServerConfig) {
        let (ca, ca_key) = generate_ca("ferrokube-ca").unwrap();
        let (crt, key) = generate_serving_cert(
            &ca,
            &ca_key,
            "kube-apiserver",
            &["localhost".into(), "kubernetes.default.svc".into()],
            &["127.0.0.1".parse().unwrap(), "10.96.0.1".parse().unwrap()],
        )
        .unwrap();
        let server = tls::server_config_from(
            tls::parse_certs(crt.as_bytes()).unwrap(),
            tls::parse_key(key.as_bytes()).unwrap(),
            Some(tls::parse_certs(ca.as_bytes()).unwrap()),
        )
        .unwrap();
        (ca, ca_key, server)
    }

    fn client_cfg(ca: &str, cert: Option<(&str, &str)>) -> rustls::ClientConfig {
        tls::client_config_from(
            &tls::parse_certs(ca.as_bytes()).unwrap(),
            cert.map(|(c, k)| {
                (
                    tls::parse_certs(c.as_bytes()).unwrap(),
                    tls::parse_key(k.as_bytes()).unwrap(),
                )
            }),
        )
        .unwrap()
    }

    #[test]
    fn ca_is_a_ca() {
        let (ca, _) = generate_ca("my-ca").unwrap();
        let der = tls::parse_certs(ca.as_bytes()).unwrap();
        let (_, c) = X509Certificate::from_der(der[0].as_ref()).unwrap();
        assert!(c.is_ca());
        assert_eq!(
            c.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "my-ca"
        );
        let days =
            (c.validity().not_after.timestamp() - c.validity().not_before.timestamp()) / 86400;
        assert!((3649..=3651).contains(&days), "{days}");
    }

    #[test]
    fn serving_cert_has_sans() {
        let (ca, ca_key) = generate_ca("ca").unwrap();
        let (crt, _) = generate_serving_cert(
            &ca,
            &ca_key,
            "srv",
            &["kubernetes".into()],
            &["10.96.0.1".parse().unwrap()],
        )
        .unwrap();
        let der = tls::parse_certs(crt.as_bytes()).unwrap();
        let (_, c) = X509Certificate::from_der(der[0].as_ref()).unwrap();
        let san = c.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|g| format!("{g}"))
            .collect();
        assert!(names.iter().any(|n| n.contains("kubernetes")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("0a:60:00:01")), "{names:?}");
        assert!(!c.is_ca());
        assert!(
            generate_serving_cert(&ca, &ca_key, "x", &["bad name\u{7f}é".into()], &[]).is_err()
        );
    }

    #[test]
    fn bad_ca_input_is_an_error() {
        assert!(generate_client_cert("nope", "nope", "u", &[]).is_err());
        let (ca, _) = generate_ca("ca").unwrap();
        assert!(generate_client_cert(&ca, "nope", "u", &[]).is_err());
    }

    #[test]
    fn client_cert_identity_round_trips() {
        let (ca, ca_key) = generate_ca("ca").unwrap();
        for groups in [
            vec![],
            vec!["system:masters".to_string()],
            vec![
                "system:nodes".to_string(),
                "a".to_string(),
                "b c".to_string(),
            ],
        ] {
            let (crt, _) = generate_client_cert(&ca, &ca_key, "kubernetes-admin", &groups).unwrap();
            let der = tls::parse_certs(crt.as_bytes()).unwrap();
            let (user, got) = tls::peer_identity(&der[0]).unwrap();
            assert_eq!(user, "kubernetes-admin");
            assert_eq!(got, groups);
            let (_, c) = X509Certificate::from_der(der[0].as_ref()).unwrap();
            let eku = c.extended_key_usage().unwrap().unwrap();
            assert!(eku.value.client_auth && !eku.value.server_auth);
            let days =
                (c.validity().not_after.timestamp() - c.validity().not_before.timestamp()) / 86400;
            assert_eq!(days, 365);
        }
    }

    #[test]
    fn server_accepts_client_cert_signed_by_ca() {
        let (ca, ca_key, server) = pki();
        for groups in [
            vec!["system:masters".to_string()],
            vec!["g1".into(), "g2".into(), "g3".into()],
        ] {
            let (crt, key) =
                generate_client_cert(&ca, &ca_key, "kubernetes-admin", &groups).unwrap();
            let peers = handshake(
                server.clone(),
                client_cfg(&ca, Some((&crt, &key))),
                "localhost",
            )
            .expect("handshake with client cert")
            .expect("client presented a certificate");
            let (user, got) = tls::peer_identity(&peers[0]).unwrap();
            assert_eq!(user, "kubernetes-admin");
            assert_eq!(got, groups);
        }
        // Client certificates are optional.
        let peers = handshake(server.clone(), client_cfg(&ca, None), "127.0.0.1").unwrap();
        assert!(peers.is_none());
        // SANs are checked.
        assert!(handshake(server.clone(), client_cfg(&ca, None), "10.96.0.1").is_ok());
    }

    #[test]
    fn server_rejects_client_cert_from_another_ca() {
        let (ca, _ca_key, server) = pki();
        let (other_ca, other_key) = generate_ca("other").unwrap();
        let (crt, key) = generate_client_cert(&other_ca, &other_key, "mallory", &[]).unwrap();
        assert!(handshake(server, client_cfg(&ca, Some((&crt, &key))), "localhost").is_err());
    }

    #[test]
    fn der_length_encoding() {
        assert_eq!(der::tlv(0x04, &[0; 3])[..2], [0x04, 3]);
        assert_eq!(der::tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der::tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
        let t = der::tlv(0x30, &[0; 300]);
        assert_eq!(der::read_tlv(&t).unwrap(), (0x30, 4, 304));
        assert!(der::read_tlv(&t[..10]).is_err());
        assert!(der::read_tlv(&[]).is_err());
        assert!(der::read_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_err());
    }
}
