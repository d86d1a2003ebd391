//! Service-account token keys: the signing key
//! (--service-account-signing-key-file) and the verification keys
//! (--service-account-key-file), read from PEM files as upstream accepts
//! them: RSA (PKCS#1 or PKCS#8 private keys, PKIX or PKCS#1 public keys)
//! and ECDSA P-256/P-384 (PKCS#8 private keys, PKIX public keys), and
//! certificates (their public key). Private keys given for verification
//! contribute their public half.

use std::path::Path;

use anyhow::{bail, Context};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::signature::KeyPair;
use rustls_pemfile::Item;

const OID_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
const OID_EC: &[u64] = &[1, 2, 840, 10045, 2, 1];
const OID_P256: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
const OID_P384: &[u64] = &[1, 3, 132, 0, 34];

/// The key tokens are signed with.
pub struct SigningKey {
    pub alg: Algorithm,
    pub key: EncodingKey,
    /// `kid` header: base64url(SHA-256(PKIX DER of the public key)), as upstream.
    pub kid: String,
    pub public: VerifyKey,
}

/// A public key tokens are verified with.
#[derive(Clone)]
pub struct VerifyKey {
    pub alg: Algorithm,
    pub key: DecodingKey,
    pub kid: String,
}

/// base64url(SHA-256(der)) without padding: upstream's key id.
pub fn key_id(spki_der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, spki_der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

// --- minimal DER writing, for PKIX wrappers of derived public keys -------

fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        vec![n as u8]
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        let mut v = vec![0x80 | bytes.len() as u8];
        v.extend(bytes);
        v
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(der_len(content.len()));
    v.extend_from_slice(content);
    v
}

fn der_oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &a in &arcs[2..] {
        let mut chunk = vec![(a & 0x7f) as u8];
        let mut x = a >> 7;
        while x > 0 {
            chunk.push(0x80 | (x & 0x7f) as u8);
            x >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    der(0x06, &body)
}

/// SubjectPublicKeyInfo DER for an algorithm identifier and key bits.
fn spki(alg_oid: &[u64], param: Option<&[u64]>, key_bits: &[u8]) -> Vec<u8> {
    let mut alg = der_oid(alg_oid);
    match param {
        Some(p) => alg.extend(der_oid(p)),
        None => alg.extend([0x05, 0x00]),
    }
    let mut bits = vec![0u8];
    bits.extend_from_slice(key_bits);
    let mut body = der(0x30, &alg);
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

fn oid_is(oid: &x509_parser::der_parser::oid::Oid, arcs: &[u64]) -> bool {
    oid.iter()
        .map(|it| it.collect::<Vec<u64>>() == arcs)
        .unwrap_or(false)
}

/// A verification key from PKIX SubjectPublicKeyInfo DER.
fn from_spki(der_bytes: &[u8]) -> anyhow::Result<VerifyKey> {
    use x509_parser::prelude::FromDer;
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der_bytes)
        .map_err(|e| anyhow::anyhow!("parsing public key: {e}"))?;
    verify_key_from_info(&info, der_bytes)
}

fn verify_key_from_info(
    info: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
    der_bytes: &[u8],
) -> anyhow::Result<VerifyKey> {
    let bits: &[u8] = &info.subject_public_key.data;
    let kid = key_id(der_bytes);
    if oid_is(&info.algorithm.algorithm, OID_RSA) {
        return Ok(VerifyKey {
            alg: Algorithm::RS256,
            key: DecodingKey::from_rsa_der(bits),
            kid,
        });
    }
    if oid_is(&info.algorithm.algorithm, OID_EC) {
        let curve = info
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        let alg = match curve {
            Some(c) if oid_is(&c, OID_P256) => Algorithm::ES256,
            Some(c) if oid_is(&c, OID_P384) => Algorithm::ES384,
            _ => bail!("unsupported ECDSA curve (P-256 and P-384 are supported)"),
        };
        return Ok(VerifyKey {
            alg,
            key: DecodingKey::from_ec_der(bits),
            kid,
        });
    }
    bail!("unsupported public key algorithm (RSA and ECDSA are supported)")
}

/// A signing key from a private key's DER (PKCS#1 RSA, or PKCS#8 RSA/ECDSA).
fn signing_from_der(der_bytes: &[u8], pkcs8: bool) -> anyhow::Result<SigningKey> {
    let rsa = if pkcs8 {
        ring::rsa::KeyPair::from_pkcs8(der_bytes)
    } else {
        ring::rsa::KeyPair::from_der(der_bytes)
    };
    if let Ok(kp) = rsa {
        let pkcs1_public = kp.public_key().as_ref().to_vec();
        let spki_der = spki(OID_RSA, None, &pkcs1_public);
        let kid = key_id(&spki_der);
        // jsonwebtoken signs RSA with a PKCS#1 private key.
        let private_pkcs1 = if pkcs8 {
            pkcs8_inner_key(der_bytes).context("extracting the RSA key from PKCS#8")?
        } else {
            der_bytes.to_vec()
        };
        return Ok(SigningKey {
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_der(&private_pkcs1),
            kid: kid.clone(),
            public: VerifyKey {
                alg: Algorithm::RS256,
                key: DecodingKey::from_rsa_der(&pkcs1_public),
                kid,
            },
        });
    }
    if !pkcs8 {
        bail!("not a valid RSA private key");
    }
    let rng = ring::rand::SystemRandom::new();
    for (alg, ring_alg, curve) in [
        (
            Algorithm::ES256,
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            OID_P256,
        ),
        (
            Algorithm::ES384,
            &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            OID_P384,
        ),
    ] {
        if let Ok(kp) = ring::signature::EcdsaKeyPair::from_pkcs8(ring_alg, der_bytes, &rng) {
            let point = kp.public_key().as_ref().to_vec();
            let spki_der = spki(OID_EC, Some(curve), &point);
            let kid = key_id(&spki_der);
            return Ok(SigningKey {
                alg,
                key: EncodingKey::from_ec_der(der_bytes),
                kid: kid.clone(),
                public: VerifyKey {
                    alg,
                    key: DecodingKey::from_ec_der(&point),
                    kid,
                },
            });
        }
    }
    bail!("unsupported private key (RSA, or ECDSA P-256/P-384 in PKCS#8, are supported)")
}

/// The privateKey OCTET STRING of a PKCS#8 PrivateKeyInfo.
fn pkcs8_inner_key(der_bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (_, obj) = x509_parser::der_parser::parse_der(der_bytes)
        .map_err(|e| anyhow::anyhow!("parsing PKCS#8: {e}"))?;
    let BerObjectContent::Sequence(items) = &obj.content else {
        bail!("PKCS#8: not a sequence");
    };
    for it in items {
        if let BerObjectContent::OctetString(b) = &it.content {
            return Ok(b.to_vec());
        }
    }
    bail!("PKCS#8: no private key")
}

fn read_pem_items(path: &Path) -> anyhow::Result<Vec<Item>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rd = std::io::BufReader::new(&data[..]);
    let items: Vec<Item> = rustls_pemfile::read_all(&mut rd)
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing PEM in {}", path.display()))?;
    Ok(items)
}

/// Load the signing key from a PEM file (the first private key in it).
pub fn load_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    for item in read_pem_items(path)? {
        let r = match &item {
            Item::Pkcs1Key(k) => signing_from_der(k.secret_pkcs1_der(), false),
            Item::Pkcs8Key(k) => signing_from_der(k.secret_pkcs8_der(), true),
            Item::Sec1Key(_) => bail!(
                "{}: EC PRIVATE KEY (SEC1) is not supported; use a PKCS#8 key",
                path.display()
            ),
            _ => continue,
        };
        return r.with_context(|| format!("loading {}", path.display()));
    }
    bail!("{}: no private key found", path.display())
}

/// Load every key (public, private or certificate) in a PEM file for verification.
pub fn load_verify_keys(path: &Path) -> anyhow::Result<Vec<VerifyKey>> {
    let mut out = Vec::new();
    for item in read_pem_items(path)? {
        let k = match &item {
            Item::SubjectPublicKeyInfo(k) => from_spki(k.as_ref()),
            Item::Pkcs1Key(k) => signing_from_der(k.secret_pkcs1_der(), false).map(|s| s.public),
            Item::Pkcs8Key(k) => signing_from_der(k.secret_pkcs8_der(), true).map(|s| s.public),
            Item::X509Certificate(c) => {
                let (_, cert) = x509_parser::parse_x509_certificate(c.as_ref())
                    .map_err(|e| anyhow::anyhow!("parsing certificate: {e}"))?;
                let info = cert.public_key();
                verify_key_from_info(info, info.raw)
            }
            _ => continue,
        };
        out.push(k.with_context(|| format!("loading {}", path.display()))?);
    }
    if out.is_empty() {
        bail!("{}: no public or private keys found", path.display());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_oid_encodes_multibyte_arcs() {
        // 1.2.840.113549.1.1.1
        assert_eq!(
            der_oid(OID_RSA),
            vec![0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]
        );
        assert_eq!(der_len(300), vec![0x82, 0x01, 0x2c]);
    }

    #[test]
    fn generated_p256_pkcs8_ends_with_its_public_key() {
        // What ferrokube's pki.rs relies on to write sa.pub next to sa.key.
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let der = doc.as_ref();
        let kp = ring::signature::EcdsaKeyPair::from_pkcs8(alg, der, &rng).unwrap();
        assert_eq!(&der[der.len() - 65..], kp.public_key().as_ref());
        let s = signing_from_der(der, true).unwrap();
        assert_eq!(s.alg, Algorithm::ES256);
        let spki_der = spki(OID_EC, Some(OID_P256), kp.public_key().as_ref());
        assert_eq!(spki_der.len(), 91);
        assert_eq!(s.kid, key_id(&spki_der));
    }
}
