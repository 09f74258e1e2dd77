//! sprig's key and certificate generators (ESO `runtime/template/v2/sprig/crypto.go`):
//! `genPrivateKey`, `buildCustomCert`, `genCA`, `genCAWithKey`, `genSelfSignedCert`,
//! `genSelfSignedCertWithKey`, `genSignedCert` and `genSignedCertWithKey`.
//!
//! A certificate is what sprig's `certificate` struct holds, a dict of `Cert` and `Key` PEM
//! strings: `$ca.Cert` and `toJson` read as in Go, and a dict goes wherever sprig takes a
//! `certificate`. Certificates are built as Go 1.26's `x509.CreateCertificate` builds sprig's
//! template: v3, a random serial below 2^128, subject CN only, valid from now for
//! `daysValid` × 24h, key usage (critical) digital signature and key encipherment (and
//! certificate signing for a CA), extended key usage server and client auth, basic
//! constraints (critical), a subject key id for a CA (truncated SHA-256), an authority key id
//! when signed by another subject, SANs (DNS names, then IPs), signed SHA256-with-RSA,
//! ECDSA with the curve's hash, or Ed25519. Keys come out as sprig writes them: `RSA PRIVATE
//! KEY` (PKCS#1), `EC PRIVATE KEY` (SEC 1), `PRIVATE KEY` (PKCS#8) for Ed25519.
//!
//! Where sprig makes RSA keys of 4096 bits (`genPrivateKey "rsa"`), keys here have 2048, the
//! size sprig uses for every certificate: a 4096-bit key takes half a second to several
//! seconds, past a render's time budget. RSA generation checks the render's deadline between
//! prime candidates, so it stops at the time limit rather than past it. DSA, which Go can
//! generate but never sign a certificate with, is refused.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use crypto_primes::hazmat::SmallFactorsSieve;
use crypto_primes::{Flavor, is_prime};
use ed25519_dalek::Signer as _;
use gotmpl::Value;
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{BoxedUint, Pkcs1v15Sign, PrivateKey};
use sha2::{Digest as _, Sha256};
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use super::keys::{
    Curve, EC_OID, ED25519_OID, Key, RSA_OID, der, marshal_pkcs8, parse_ec, parse_pkcs1,
    parse_pkcs8, pem, uint,
};
use super::text::{pem_decode, std_base64_decode};
use super::{Args, R, s};
use crate::{budget, go};

/// sprig's size for every RSA key here (see the module docs for `genPrivateKey "rsa"`).
const RSA_BITS: u32 = 2048;

/// A private key as sprig's `parsePrivateKeyPEM` returns it: one Go can sign with, or a DSA key
/// (which Go parses but cannot use in a certificate).
enum PrivKey {
    Known(Key),
    Dsa,
}

fn random(buf: &mut [u8]) -> Result<(), String> {
    getrandom::fill(buf).map_err(|_| "no randomness available".to_owned())
}

/// An odd prime of `bits` bits (a multiple of 8) with its top two bits set, as rsa's
/// generator finds them, stopping at the render's deadline.
fn rsa_prime(bits: u32) -> Result<BoxedUint, String> {
    let width = NonZeroU32::new(bits).ok_or_else(|| "invalid prime size".to_owned())?;
    loop {
        budget::check_time()?;
        let mut bytes = vec![0u8; bits as usize / 8];
        random(&mut bytes)?;
        bytes[0] |= 0xc0;
        if let Some(last) = bytes.last_mut() {
            *last |= 1;
        }
        let start = BoxedUint::from_be_slice(&bytes, bits)
            .map_err(|_| "failed to generate private key: invalid prime size".to_owned())?;
        let sieve = SmallFactorsSieve::new(start, width, false)
            .map_err(|_| "failed to generate private key: invalid prime size".to_owned())?;
        for candidate in sieve {
            budget::check_time()?;
            if is_prime(Flavor::Any, &candidate) {
                return Ok(candidate);
            }
        }
    }
}

/// `rsa.GenerateKey(rand.Reader, bits)`, e = 65537.
fn generate_rsa(bits: u32) -> Result<Key, String> {
    loop {
        let p = rsa_prime(bits / 2)?;
        let q = rsa_prime(bits / 2)?;
        if p == q {
            continue;
        }
        // from_p_q fails when e divides p-1 or q-1: draw again, as rsa's generator does.
        if let Ok(key) = PrivateKey::from_p_q(p, q, BoxedUint::from(65537u64))
            && key.n().bit_width() == bits
        {
            return Ok(Key::Rsa(Box::new(key)));
        }
    }
}

/// `ecdsa.GenerateKey(elliptic.P256(), rand.Reader)`.
fn generate_p256() -> Result<Key, String> {
    loop {
        let mut d = vec![0u8; 32];
        random(&mut d)?;
        if let Some(point) = Curve::P256.public_point(&d) {
            return Ok(Key::Ec {
                curve: Curve::P256,
                d,
                point,
            });
        }
    }
}

/// `ed25519.GenerateKey(rand.Reader)`: the seed.
fn generate_ed25519() -> Result<Key, String> {
    let mut seed = vec![0u8; 32];
    random(&mut seed)?;
    Ok(Key::Ed25519(seed))
}

/// `x509.MarshalECPrivateKey`: SEC 1 with the curve named.
fn marshal_ec(curve: Curve, d: &[u8], point: &[u8]) -> Vec<u8> {
    der::seq(&[
        &der::int(1),
        &der::octets(d),
        &der::tlv(0xa0, &der::oid(curve.oid())),
        &der::tlv(0xa1, &der::bits(point)),
    ])
}

/// sprig's `pemBlockForKey`.
fn key_pem(key: &Key) -> Result<String, String> {
    Ok(match key {
        Key::Rsa(k) => pem(
            "RSA PRIVATE KEY",
            k.to_pkcs1_der()
                .map_err(|_| "x509: failed to marshal RSA private key".to_owned())?
                .as_bytes()
                .to_vec(),
        ),
        Key::Ec { curve, d, point } => pem("EC PRIVATE KEY", marshal_ec(*curve, d, point)),
        other => pem("PRIVATE KEY", marshal_pkcs8(other)?),
    })
}

/// sprig's `genPrivateKey(type)`: `rsa` (or ""), `ecdsa` (P-256), `ed25519`. An unknown type
/// gives `Unknown type <type>` as the value, as in sprig.
pub(crate) fn gen_private_key(a: &Args) -> R {
    a.exactly(1)?;
    let key = match a.str(0)? {
        "" | "rsa" => generate_rsa(RSA_BITS)?,
        "ecdsa" => generate_p256()?,
        "ed25519" => generate_ed25519()?,
        "dsa" => {
            return Err(
                "dsa keys are not supported (Go cannot sign certificates with them); use rsa, ecdsa or ed25519"
                    .to_owned(),
            );
        }
        other => return s(format!("Unknown type {other}")),
    };
    s(key_pem(&key)?)
}

/// sprig's `parsePrivateKeyPEM`: the first PEM block, PKCS#8 (`PRIVATE KEY`) or by its type.
fn parse_private_key_pem(text: &[u8]) -> Result<PrivKey, String> {
    let (Some(block), _) = pem_decode(text) else {
        return Err("no PEM data in input".to_owned());
    };
    if block.kind == "PRIVATE KEY" {
        return parse_pkcs8(&block.bytes)
            .map(PrivKey::Known)
            .map_err(|e| format!("decoding PEM as PKCS#8: {e}"));
    }
    // Go names the block's type in both messages; it comes from data, so it is left out.
    let Some(kind) = block.kind.strip_suffix(" PRIVATE KEY") else {
        return Err("no private key data in PEM block".to_owned());
    };
    match kind {
        "RSA" => parse_pkcs1(&block.bytes)
            .map(PrivKey::Known)
            .map_err(|e| format!("parsing RSA private key from PEM: {e}")),
        "EC" => parse_ec(None, &block.bytes)
            .map(PrivKey::Known)
            .map_err(|e| format!("parsing EC private key from PEM: {e}")),
        "DSA" => Ok(PrivKey::Dsa),
        _ => Err("invalid private key type".to_owned()),
    }
}

/// A public key as `x509.marshalPublicKey` writes it: the algorithm identifier and the bit
/// string's bytes.
struct PublicKey {
    algorithm: Vec<u8>,
    bits: Vec<u8>,
}

impl PublicKey {
    fn of(key: &PrivKey) -> Result<Self, String> {
        let PrivKey::Known(key) = key else {
            return Err("x509: unsupported public key type: *dsa.PublicKey".to_owned());
        };
        Ok(match key {
            Key::Rsa(k) => Self {
                algorithm: der::seq(&[&der::oid(RSA_OID), der::NULL]),
                bits: der::seq(&[&uint(&k.n_bytes()), &uint(&k.e_bytes())]),
            },
            Key::Ec { curve, point, .. } => Self {
                algorithm: der::seq(&[&der::oid(EC_OID), &der::oid(curve.oid())]),
                bits: point.clone(),
            },
            Key::Ed25519(seed) => Self {
                algorithm: der::seq(&[&der::oid(ED25519_OID)]),
                bits: ed25519_signing_key(seed)?
                    .verifying_key()
                    .to_bytes()
                    .to_vec(),
            },
            Key::X25519(_) => {
                return Err("x509: unsupported public key type: *ecdh.PublicKey".to_owned());
            }
        })
    }

    /// `SubjectPublicKeyInfo`.
    fn spki(&self) -> Vec<u8> {
        der::seq(&[&self.algorithm, &der::bits(&self.bits)])
    }
}

fn ed25519_signing_key(seed: &[u8]) -> Result<ed25519_dalek::SigningKey, String> {
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| "ed25519: bad private key length".to_owned())?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

// Signature algorithm identifiers (`signingParamsForKey`'s defaults).
const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const ECDSA_WITH_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const ECDSA_WITH_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
/// DigestInfo's prefix for a SHA-256 digest (PKCS #1 v1.5 signatures).
const SHA256_DIGEST_INFO: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// The signing key's algorithm identifier (`signingParamsForKey`).
fn signature_algorithm(key: &PrivKey) -> Result<Vec<u8>, String> {
    let not_signer = || "x509: certificate private key does not implement crypto.Signer".to_owned();
    let PrivKey::Known(key) = key else {
        return Err(not_signer());
    };
    Ok(match key {
        Key::Rsa(_) => der::seq(&[&der::oid(SHA256_WITH_RSA), der::NULL]),
        Key::Ec { curve, .. } => der::seq(&[&der::oid(match curve {
            Curve::P256 => ECDSA_WITH_SHA256,
            Curve::P384 => ECDSA_WITH_SHA384,
            Curve::P521 => ECDSA_WITH_SHA512,
        })]),
        Key::Ed25519(_) => der::seq(&[&der::oid(ED25519_OID)]),
        Key::X25519(_) => return Err(not_signer()),
    })
}

/// An ECDSA signature's `r ‖ s` as the DER `SEQUENCE { r, s }` Go writes.
fn ecdsa_der(fixed: &[u8]) -> Vec<u8> {
    let (r, s) = fixed.split_at(fixed.len() / 2);
    der::seq(&[&uint(r), &uint(s)])
}

/// `signTBS`.
fn sign(key: &PrivKey, tbs: &[u8]) -> Result<Vec<u8>, String> {
    let PrivKey::Known(key) = key else {
        return Err("x509: certificate private key does not implement crypto.Signer".to_owned());
    };
    let failed = |_| "x509: signing failed".to_owned();
    Ok(match key {
        Key::Rsa(k) => {
            let mut digest_info = SHA256_DIGEST_INFO.to_vec();
            digest_info.extend_from_slice(&Sha256::digest(tbs));
            k.sign(Pkcs1v15Sign::new_unprefixed(), &digest_info)
                .map_err(|_| "x509: signing failed".to_owned())?
        }
        Key::Ec { curve, d, .. } => match curve {
            Curve::P256 => {
                let k = p256::ecdsa::SigningKey::from_slice(d).map_err(failed)?;
                let sig: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(&k, tbs);
                ecdsa_der(&sig.to_bytes())
            }
            Curve::P384 => {
                let k = p384::ecdsa::SigningKey::from_slice(d).map_err(failed)?;
                let sig: p384::ecdsa::Signature = p384::ecdsa::signature::Signer::sign(&k, tbs);
                ecdsa_der(&sig.to_bytes())
            }
            Curve::P521 => {
                let k = p521::ecdsa::SigningKey::from_slice(d).map_err(failed)?;
                let sig: p521::ecdsa::Signature = p521::ecdsa::signature::Signer::sign(&k, tbs);
                ecdsa_der(&sig.to_bytes())
            }
        },
        Key::Ed25519(seed) => ed25519_signing_key(seed)?.sign(tbs).to_bytes().to_vec(),
        Key::X25519(_) => {
            return Err(
                "x509: certificate private key does not implement crypto.Signer".to_owned(),
            );
        }
    })
}

// Object identifiers of the name attribute and the extensions sprig's template sets.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
const AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// encoding/asn1's string choice: PrintableString when every byte allows it (no `*`, no `&`),
/// else UTF8String.
fn asn1_string(text: &str) -> Vec<u8> {
    let printable = text.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(b, b'\''..=b')' | b'+'..=b'/' | b' ' | b':' | b'=' | b'?')
    });
    der::tlv(if printable { 0x13 } else { 0x0c }, text.as_bytes())
}

/// `pkix.Name{CommonName: cn}` as an RDN sequence (empty without a name).
fn subject(cn: &str) -> Vec<u8> {
    if cn.is_empty() {
        return der::seq(&[]);
    }
    let attribute = der::seq(&[&der::oid(COMMON_NAME), &asn1_string(cn)]);
    der::seq(&[&der::tlv(0x31, &attribute)])
}

fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let flag: &[u8] = if critical { &[0x01, 0x01, 0xff] } else { &[] };
    der::seq(&[&der::oid(oid), flag, &der::octets(value)])
}

/// A time as encoding/asn1 writes it: UTCTime from 1950 to 2049, else GeneralizedTime.
fn asn1_time(ts: Timestamp) -> Result<Vec<u8>, String> {
    let t = ts.to_zoned(TimeZone::UTC);
    let year = i32::from(t.year());
    let clock = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    Ok(if (1950..2050).contains(&year) {
        der::tlv(0x17, format!("{:02}{clock}", year % 100).as_bytes())
    } else if (0..=9999).contains(&year) {
        der::tlv(0x18, format!("{year:04}{clock}").as_bytes())
    } else {
        return Err("asn1: structure error: cannot represent time as GeneralizedTime".to_owned());
    })
}

/// The parts of sprig's `getBaseCertTemplate` that vary.
struct Template {
    cn: String,
    ips: Vec<Vec<u8>>,
    dns: Vec<String>,
    days: i64,
    is_ca: bool,
}

/// What `x509.CreateCertificate` reads of a parent other than the template itself.
struct Parent {
    raw_subject: Vec<u8>,
    subject_key_id: Option<Vec<u8>>,
    spki: Vec<u8>,
}

/// `getNetIPs`: each a string `net.ParseIP` reads; IPv4 (and IPv4-mapped) as 4 bytes.
fn net_ips(items: &[Value]) -> Result<Vec<Vec<u8>>, String> {
    items
        .iter()
        .map(|item| {
            let Value::String(text) = item else {
                return Err("error parsing ip: not a string".to_owned());
            };
            match text.parse::<IpAddr>() {
                Ok(IpAddr::V4(v4)) => Ok(v4.octets().to_vec()),
                Ok(IpAddr::V6(v6)) => Ok(match v6.to_ipv4_mapped() {
                    Some(v4) => v4.octets().to_vec(),
                    None => v6.octets().to_vec(),
                }),
                Err(_) => Err("error parsing ip: not an IP address".to_owned()),
            }
        })
        .collect()
}

/// `getAlternateDNSStrs`.
fn dns_names(items: &[Value]) -> Result<Vec<String>, String> {
    items
        .iter()
        .map(|item| match item {
            Value::String(text) => Ok(text.to_string()),
            _ => Err("error processing alternate dns name: not a string".to_owned()),
        })
        .collect()
}

/// A `[]interface{}` parameter; nil is empty.
fn list_arg<'a>(a: &'a Args, i: usize) -> Result<&'a [Value], String> {
    match a.any(i) {
        Value::Nil => Ok(&[]),
        Value::List(items) => Ok(items),
        other => Err(format!(
            "wrong type for value; expected []interface {{}}; got {}",
            go::type_name(other)
        )),
    }
}

/// `x509.CreateCertificate(rand, template, parent, signee's public key, signer)` for sprig's
/// template; `parent` is `None` when the certificate signs itself.
fn create_certificate(
    t: &Template,
    signee: &PrivKey,
    parent: Option<&Parent>,
    signer: &PrivKey,
) -> Result<Vec<u8>, String> {
    let algorithm = signature_algorithm(signer)?;
    let public = PublicKey::of(signee)?;
    let subject = subject(&t.cn);
    let issuer = parent.map_or_else(|| subject.clone(), |p| p.raw_subject.clone());
    let authority_key_id = match parent {
        Some(p) if issuer != subject => p.subject_key_id.clone().filter(|id| !id.is_empty()),
        _ => None,
    };
    // Go 1.25 on: the leftmost 160 bits of the SHA-256 of the key (RFC 7093).
    let subject_key_id = t.is_ca.then(|| Sha256::digest(&public.bits)[..20].to_vec());
    if let Some(p) = parent
        && PublicKey::of(signer)?.spki() != p.spki
    {
        return Err("x509: provided PrivateKey doesn't match parent's PublicKey".to_owned());
    }

    let mut extensions = Vec::new();
    // KeyUsage: digitalSignature (bit 0), keyEncipherment (2), keyCertSign (5) for a CA.
    let key_usage: &[u8] = if t.is_ca {
        &[0x03, 0x02, 0x02, 0xa4]
    } else {
        &[0x03, 0x02, 0x05, 0xa0]
    };
    extensions.push(extension(KEY_USAGE, true, key_usage));
    extensions.push(extension(
        EXT_KEY_USAGE,
        false,
        &der::seq(&[&der::oid(SERVER_AUTH), &der::oid(CLIENT_AUTH)]),
    ));
    let basic: &[u8] = if t.is_ca {
        &[0x30, 0x03, 0x01, 0x01, 0xff]
    } else {
        &[0x30, 0x00]
    };
    extensions.push(extension(BASIC_CONSTRAINTS, true, basic));
    if let Some(id) = &subject_key_id {
        extensions.push(extension(SUBJECT_KEY_ID, false, &der::octets(id)));
    }
    if let Some(id) = &authority_key_id {
        extensions.push(extension(
            AUTHORITY_KEY_ID,
            false,
            &der::seq(&[&der::tlv(0x80, id)]),
        ));
    }
    if !t.dns.is_empty() || !t.ips.is_empty() {
        let mut names = Vec::new();
        for name in &t.dns {
            if !name.is_ascii() {
                return Err("x509: a DNS name cannot be encoded as an IA5String".to_owned());
            }
            names.extend(der::tlv(0x82, name.as_bytes()));
        }
        for ip in &t.ips {
            names.extend(der::tlv(0x87, ip));
        }
        let empty_subject = subject == der::seq(&[]);
        extensions.push(extension(
            SUBJECT_ALT_NAME,
            empty_subject,
            &der::tlv(0x30, &names),
        ));
    }

    let mut serial = [0u8; 16];
    random(&mut serial)?;
    let now = Timestamp::now();
    // time.Hour * 24 * time.Duration(daysValid) wraps as Go's int64 does.
    let valid_for = 86_400_000_000_000_i64.wrapping_mul(t.days);
    let not_after = now
        .checked_add(SignedDuration::from_nanos(valid_for))
        .map_err(|_| "asn1: structure error: cannot represent time as UTCTime".to_owned())?;
    let validity = der::seq(&[&asn1_time(now)?, &asn1_time(not_after)?]);
    let tbs = der::seq(&[
        &der::tlv(0xa0, &der::int(2)),
        &uint(&serial),
        &algorithm,
        &issuer,
        &validity,
        &subject,
        &public.spki(),
        &der::tlv(
            0xa3,
            &der::seq(&extensions.iter().map(Vec::as_slice).collect::<Vec<_>>()),
        ),
    ]);
    let signature = sign(signer, &tbs)?;
    Ok(der::seq(&[&tbs, &algorithm, &der::bits(&signature)]))
}

/// sprig's `getCertAndKey`: the certificate and the signee's key, PEM.
fn cert_and_key(t: &Template, signee: &PrivKey, parent: Option<&Parent>, signer: &PrivKey) -> R {
    let cert = create_certificate(t, signee, parent, signer)
        .map_err(|e| format!("error creating certificate: {e}"))?;
    let PrivKey::Known(key) = signee else {
        return Err("error pem-encoding key: DSA keys are not supported".to_owned());
    };
    let key = key_pem(key).map_err(|e| format!("error pem-encoding key: {e}"))?;
    Ok(certificate(pem("CERTIFICATE", cert), key))
}

/// sprig's `certificate{Cert, Key}`.
fn certificate(cert: String, key: String) -> Value {
    let map = [("Cert", cert), ("Key", key)]
        .into_iter()
        .map(|(k, v)| (Arc::from(k), Value::from(v)))
        .collect();
    Value::Map(Arc::new(map))
}

/// A `certificate` parameter: a dict's `Cert` and `Key` strings ("" when absent).
fn certificate_arg(a: &Args, i: usize) -> Result<(String, String), String> {
    let Value::Map(m) = a.any(i) else {
        return Err(format!(
            "wrong type for value; expected sprig.certificate; got {}",
            go::type_name(a.any(i))
        ));
    };
    let field = |name: &str| match m.get(name) {
        Some(Value::String(v)) => v.to_string(),
        _ => String::new(),
    };
    Ok((field("Cert"), field("Key")))
}

fn pem_key_arg(a: &Args, i: usize) -> Result<PrivKey, String> {
    parse_private_key_pem(&a.bytes(i)?).map_err(|e| format!("parsing private key: {e}"))
}

fn generated_rsa() -> Result<PrivKey, String> {
    generate_rsa(RSA_BITS).map(PrivKey::Known)
}

/// `getBaseCertTemplate(cn, ips, dns, days)`: IPs, then DNS names are checked.
fn base_template(
    a: &Args,
    ips: usize,
    dns: usize,
    days: usize,
    is_ca: bool,
) -> Result<Template, String> {
    let cn = a.str(0)?.to_owned();
    let (ips, dns) = if is_ca {
        (Vec::new(), Vec::new())
    } else {
        (net_ips(list_arg(a, ips)?)?, dns_names(list_arg(a, dns)?)?)
    };
    Ok(Template {
        cn,
        ips,
        dns,
        days: a.int(days)?,
        is_ca,
    })
}

/// sprig's `genCA(cn, daysValid)`: a self-signed CA with a new 2048-bit RSA key.
pub(crate) fn gen_ca(a: &Args) -> R {
    a.exactly(2)?;
    let t = base_template(a, 0, 0, 1, true)?;
    let key = generated_rsa().map_err(|e| format!("error generating rsa key: {e}"))?;
    cert_and_key(&t, &key, None, &key)
}

/// sprig's `genCAWithKey(cn, daysValid, keyPEM)`.
pub(crate) fn gen_ca_with_key(a: &Args) -> R {
    a.exactly(3)?;
    let key = pem_key_arg(a, 2)?;
    let t = base_template(a, 0, 0, 1, true)?;
    cert_and_key(&t, &key, None, &key)
}

/// sprig's `genSelfSignedCert(cn, ips, dnsNames, daysValid)`.
pub(crate) fn gen_self_signed_cert(a: &Args) -> R {
    a.exactly(4)?;
    let t = base_template(a, 1, 2, 3, false)?;
    let key = generated_rsa().map_err(|e| format!("error generating rsa key: {e}"))?;
    cert_and_key(&t, &key, None, &key)
}

/// sprig's `genSelfSignedCertWithKey(cn, ips, dnsNames, daysValid, keyPEM)`.
pub(crate) fn gen_self_signed_cert_with_key(a: &Args) -> R {
    a.exactly(5)?;
    let key = pem_key_arg(a, 4)?;
    let t = base_template(a, 1, 2, 3, false)?;
    cert_and_key(&t, &key, None, &key)
}

/// The CA of `genSignedCert`: its certificate as a parent, its key as the signer.
fn signer_arg(a: &Args, i: usize) -> Result<(Parent, PrivKey), String> {
    let (cert, key) = certificate_arg(a, i)?;
    let (Some(block), _) = pem_decode(cert.as_bytes()) else {
        return Err("unable to decode certificate".to_owned());
    };
    let parent = parse_parent(&block.bytes)
        .map_err(|e| format!("error parsing certificate: decodedSignerCert.Bytes: {e}"))?;
    let key = parse_private_key_pem(key.as_bytes())
        .map_err(|e| format!("error parsing private key: {e}"))?;
    Ok((parent, key))
}

/// sprig's `genSignedCert(cn, ips, dnsNames, daysValid, ca)`: a new 2048-bit RSA key.
pub(crate) fn gen_signed_cert(a: &Args) -> R {
    a.exactly(5)?;
    let t = base_template(a, 1, 2, 3, false)?;
    let (parent, signer) = signer_arg(a, 4)?;
    let key = generated_rsa().map_err(|e| format!("error generating rsa key: {e}"))?;
    cert_and_key(&t, &key, Some(&parent), &signer)
}

/// sprig's `genSignedCertWithKey(cn, ips, dnsNames, daysValid, ca, keyPEM)`.
pub(crate) fn gen_signed_cert_with_key(a: &Args) -> R {
    a.exactly(6)?;
    let key = pem_key_arg(a, 5)?;
    let (parent, signer) = signer_arg(a, 4)?;
    let t = base_template(a, 1, 2, 3, false)?;
    cert_and_key(&t, &key, Some(&parent), &signer)
}

/// sprig's `buildCustomCert(base64Cert, base64Key)`: the decoded PEM strings, once the first
/// block parses as a certificate and the key as sprig reads keys.
pub(crate) fn build_custom_cert(a: &Args) -> R {
    a.exactly(2)?;
    let cert = std_base64_decode(a.str(0)?)
        .map_err(|_| "unable to decode base64 certificate".to_owned())?;
    let key = std_base64_decode(a.str(1)?)
        .map_err(|_| "unable to decode base64 private key".to_owned())?;
    let (Some(block), _) = pem_decode(&cert) else {
        return Err("unable to decode certificate".to_owned());
    };
    x509_cert::Certificate::from_der(&block.bytes).map_err(|_| {
        "error parsing certificate: decodedCert.Bytes: x509: malformed certificate".to_owned()
    })?;
    parse_private_key_pem(&key).map_err(|e| format!("error parsing private key: {e}"))?;
    Ok(certificate(
        crate::bytes::encode(&cert),
        crate::bytes::encode(&key),
    ))
}

/// The raw subject, subject key id and public key of a CA certificate (`x509.ParseCertificate`
/// keeps the subject's bytes as they were).
fn parse_parent(der_bytes: &[u8]) -> Result<Parent, String> {
    let malformed = || "x509: malformed certificate".to_owned();
    let cert = x509_cert::Certificate::from_der(der_bytes).map_err(|_| malformed())?;
    let subject_key_id = cert
        .tbs_certificate()
        .get_extension::<SubjectKeyIdentifier>()
        .map_err(|_| "x509: invalid subject key identifier".to_owned())?
        .map(|(_, e)| e.0.as_bytes().to_vec());
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version, serial, signature,
    // issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }
    let (_, tbs, _) =
        der_read(der_read(der_bytes).ok_or_else(malformed)?.1).ok_or_else(malformed)?;
    let mut rest = tbs;
    let mut fields = Vec::new();
    while let Some((tag, content, next)) = der_read(rest) {
        let raw = &rest[..rest.len() - next.len()];
        fields.push((tag, raw, content));
        rest = next;
    }
    let skip = usize::from(fields.first().is_some_and(|f| f.0 == 0xa0));
    let field = |i: usize| {
        fields
            .get(skip + i)
            .map(|f| f.1.to_vec())
            .ok_or_else(malformed)
    };
    Ok(Parent {
        raw_subject: field(4)?,
        subject_key_id,
        spki: field(5)?,
    })
}

/// One DER element at the start of `data`: its tag, its content and what follows it.
fn der_read(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn1_strings_are_printable_unless_a_byte_forbids_it() {
        assert_eq!(asn1_string("foo.com")[0], 0x13);
        assert_eq!(asn1_string("*.foo.com")[0], 0x0c);
        assert_eq!(asn1_string("a&b")[0], 0x0c);
        assert_eq!(asn1_string("é")[0], 0x0c);
    }

    #[test]
    fn times_switch_to_generalized_time_in_2050() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            asn1_time(t("2049-12-31T23:59:59.9Z")).ok(),
            Some(der::tlv(0x17, b"491231235959Z"))
        );
        assert_eq!(
            asn1_time(t("2050-01-01T00:00:00Z")).ok(),
            Some(der::tlv(0x18, b"20500101000000Z"))
        );
    }

    #[test]
    fn ec_keys_name_their_curve() {
        let key = generate_p256().unwrap_or_else(|e| panic!("{e}"));
        let text = key_pem(&key).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        let Ok(PrivKey::Known(Key::Ec {
            curve: Curve::P256, ..
        })) = parse_private_key_pem(text.as_bytes())
        else {
            panic!("not a P-256 key");
        };
    }

    #[test]
    fn der_elements_read_back() {
        let seq = der::seq(&[&der::int(5), &der::octets(&[0; 200])]);
        let Some((0x30, content, [])) = der_read(&seq) else {
            panic!("not a sequence");
        };
        let Some((0x02, [5], rest)) = der_read(content) else {
            panic!("not an integer");
        };
        assert!(matches!(der_read(rest), Some((0x04, c, [])) if c.len() == 200));
    }
}
