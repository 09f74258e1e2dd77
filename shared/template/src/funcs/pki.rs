//! ESO's certificate and PKCS#12 functions: `filterCertChain`, `certSANs`, `pkcs12key`,
//! `pkcs12cert` (and their `Pass` forms), `pemToPkcs12`, `fullPemToPkcs12` and
//! `pemTruststoreToPKCS12` (and theirs). Messages never hold key or certificate bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use p12_keystore::{
    Certificate, KeyStore, KeyStoreEntry, Pkcs12Archive, PrivateKey, PrivateKeyChain,
};
use sha1::Digest as _;
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectAltName, SubjectKeyIdentifier};

use super::keys::{Key, marshal_pkcs8, parse_pkcs8, parse_private_key, pem};
use super::text::pem_decode;
use super::{Args, R, s, strings};

const CERTIFICATE: &str = "CERTIFICATE";

/// What ESO reads of a parsed certificate.
struct Cert {
    raw: Vec<u8>,
    /// `None` when the extension or its key identifier is absent (Go's nil).
    aki: Option<Vec<u8>>,
    ski: Option<Vec<u8>>,
}

impl Cert {
    /// `x509.ParseCertificate`.
    fn parse(der: &[u8]) -> Result<Self, String> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|_| "x509: malformed certificate".to_owned())?;
        let tbs = cert.tbs_certificate();
        let aki = tbs
            .get_extension::<AuthorityKeyIdentifier>()
            .map_err(|_| "x509: invalid authority key identifier".to_owned())?
            .and_then(|(_, e)| e.key_identifier)
            .map(|k| k.as_bytes().to_vec());
        let ski = tbs
            .get_extension::<SubjectKeyIdentifier>()
            .map_err(|_| "x509: invalid subject key identifier".to_owned())?
            .map(|(_, e)| e.0.as_bytes().to_vec());
        Ok(Self {
            raw: der.to_vec(),
            aki,
            ski,
        })
    }

    fn aki(&self) -> &[u8] {
        self.aki.as_deref().unwrap_or_default()
    }

    fn ski(&self) -> &[u8] {
        self.ski.as_deref().unwrap_or_default()
    }

    /// ESO's `isRootCertificate`: no authority key id, or one equal to the subject key id.
    fn is_root(&self) -> bool {
        self.aki.is_none() || self.aki() == self.ski()
    }

    fn pem(&self) -> String {
        pem(CERTIFICATE, self.raw.clone())
    }
}

/// Every PEM block of `data` parsed as a certificate, whatever its type (ESO's `pemToNodes`).
fn pem_certs(mut data: &[u8]) -> Result<Vec<Cert>, String> {
    let mut certs = Vec::new();
    loop {
        let (block, rest) = pem_decode(data);
        data = rest;
        let Some(block) = block else { break };
        certs.push(Cert::parse(&block.bytes)?);
    }
    Ok(certs)
}

/// ESO's `fetchX509CertChains`: the certificates ordered leaf, intermediates, root, linked by
/// authority and subject key ids. No signature or validity is checked: formatting only.
fn order_chain(certs: Vec<Cert>) -> Result<Vec<Cert>, String> {
    let n = certs.len();
    let mut parent: Vec<Option<usize>> = vec![None; n];
    let mut is_parent = vec![false; n];
    for i in 0..n {
        // Go's bytes.Equal: a missing id equals another missing id.
        if let Some(j) = (0..n).find(|&j| j != i && certs[i].aki() == certs[j].ski()) {
            is_parent[j] = true;
            parent[i] = Some(j);
        }
    }
    let mut leaf = None;
    for (i, &p) in is_parent.iter().enumerate() {
        if !p {
            if leaf.is_some() {
                return Err("found multiple leaf or disjunct certificates".to_owned());
            }
            leaf = Some(i);
        }
    }
    let Some(mut at) = leaf else {
        return Err("no leaf certificate found".to_owned());
    };
    let mut order = vec![at];
    while let Some(p) = parent[at] {
        if order.len() >= n {
            return Err("constructing chain resulted in cycle".to_owned());
        }
        order.push(p);
        at = p;
    }
    let mut slots: Vec<Option<Cert>> = certs.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// ESO's `filterCertChain(leaf|intermediate|root, input)`: the certificates of that role in the
/// ordered chain, or "" if there are none (or the role is unknown).
pub(crate) fn filter_cert_chain(a: &Args) -> R {
    a.exactly(2)?;
    let kind = a.str(0)?;
    let chain = order_chain(pem_certs(&a.bytes(1)?)?)?;
    let out = match kind {
        "leaf" => {
            let leaf = &chain[0];
            if leaf.aki.is_some() && leaf.aki() != leaf.ski() {
                leaf.pem()
            } else {
                String::new()
            }
        }
        "intermediate" => chain
            .iter()
            .skip(1)
            .take_while(|c| !c.is_root())
            .map(Cert::pem)
            .collect(),
        "root" => match chain.last() {
            Some(root) if root.is_root() => root.pem(),
            _ => String::new(),
        },
        _ => String::new(),
    };
    s(out)
}

/// ESO's `certSANs(pem)`: DNS names, IP addresses, emails, then URIs of the first PEM block's
/// certificate.
pub(crate) fn cert_sans(a: &Args) -> R {
    a.exactly(1)?;
    let input = a.bytes(0)?;
    let input = match input.windows(10).position(|w| w == b"-----BEGIN") {
        Some(i) => &input[i..],
        None => &input[..],
    };
    let (Some(block), _) = pem_decode(input) else {
        return Err("failed to decode PEM block".to_owned());
    };
    let cert = x509_cert::Certificate::from_der(&block.bytes)
        .map_err(|_| "failed to parse certificate: x509: malformed certificate".to_owned())?;
    let sans = cert
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .map_err(|_| {
            "failed to parse certificate: x509: invalid subject alternative names".to_owned()
        })?
        .map(|(_, e)| e.0)
        .unwrap_or_default();
    let (mut dns, mut ips, mut emails, mut uris) = (vec![], vec![], vec![], vec![]);
    for name in sans {
        match name {
            GeneralName::DnsName(v) => dns.push(v.to_string()),
            GeneralName::Rfc822Name(v) => emails.push(v.to_string()),
            GeneralName::UniformResourceIdentifier(v) => uris.push(v.to_string()),
            GeneralName::IpAddress(v) => ips.push(ip_string(v.as_bytes()).ok_or_else(|| {
                "failed to parse certificate: x509: cannot parse IP address".to_owned()
            })?),
            _ => {}
        }
    }
    strings(dns.into_iter().chain(ips).chain(emails).chain(uris))
}

/// Go's `net.IP.String`: IPv4 (also IPv4-mapped IPv6) dotted, IPv6 in RFC 5952 form.
fn ip_string(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
        16 => {
            let octets: [u8; 16] = b.try_into().ok()?;
            let v6 = Ipv6Addr::from(octets);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => v6.to_string(),
            })
        }
        _ => None,
    }
}

/// go-pkcs12's `DecodeChain`: the one private key, the first certificate, the others in bag
/// order. Messages are go-pkcs12's, without ESO's prefix.
fn decode_chain(pfx: &[u8], password: &str) -> Result<(Key, Vec<Vec<u8>>), String> {
    let archive = Pkcs12Archive::from_pkcs12(pfx, password).map_err(|e| match e {
        p12_keystore::error::Error::MacError(_) => {
            "pkcs12: decryption password incorrect".to_owned()
        }
        p12_keystore::error::Error::UnpadError => {
            "pkcs12: decryption error, incorrect padding".to_owned()
        }
        other => format!("pkcs12: {other}"),
    })?;
    if archive.keys.len() > 1 {
        return Err("pkcs12: expected exactly one key bag".to_owned());
    }
    if archive.certs.is_empty() {
        return Err("pkcs12: certificate missing".to_owned());
    }
    let Some(key) = archive.keys.first() else {
        return Err("pkcs12: private key missing".to_owned());
    };
    let key = parse_pkcs8(key.key.as_der())?;
    let certs = archive
        .certs
        .iter()
        .map(|c| c.cert.as_der().to_vec())
        .collect();
    Ok((key, certs))
}

/// ESO's `pkcs12keyPass(password, pfx)`: the private key, PKCS#8 PEM.
pub(crate) fn pkcs12_key_pass(a: &Args) -> R {
    a.exactly(2)?;
    pkcs12_key_of(a.str(0)?, &a.bytes(1)?)
}

/// ESO's `pkcs12key(pfx)`.
pub(crate) fn pkcs12_key(a: &Args) -> R {
    a.exactly(1)?;
    pkcs12_key_of("", &a.bytes(0)?)
}

fn pkcs12_key_of(password: &str, pfx: &[u8]) -> R {
    let (key, _) = decode_chain(pfx, password)
        .map_err(|e| format!("unable to decode pkcs12 with password: {e}"))?;
    s(pem("PRIVATE KEY", marshal_pkcs8(&key)?))
}

/// ESO's `pkcs12certPass(password, pfx)`: every certificate as PEM, ordered leaf,
/// intermediates, root when they form one chain, else in the archive's order.
pub(crate) fn pkcs12_cert_pass(a: &Args) -> R {
    a.exactly(2)?;
    pkcs12_cert_of(a.str(0)?, &a.bytes(1)?)
}

/// ESO's `pkcs12cert(pfx)`.
pub(crate) fn pkcs12_cert(a: &Args) -> R {
    a.exactly(1)?;
    pkcs12_cert_of("", &a.bytes(0)?)
}

fn pkcs12_cert_of(password: &str, pfx: &[u8]) -> R {
    let (_, certs) = decode_chain(pfx, password)
        .map_err(|e| format!("unable to decode pkcs12 certificate with password: {e}"))?;
    let unordered: String = certs.iter().map(|c| pem(CERTIFICATE, c.clone())).collect();
    let ordered = certs
        .iter()
        .map(|c| Cert::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .and_then(order_chain);
    match ordered {
        Ok(chain) => s(chain.iter().map(Cert::pem).collect::<String>()),
        Err(_) => s(unordered),
    }
}

/// ESO's `pemToPkcs12(cert, key)`.
pub(crate) fn pem_to_pkcs12(a: &Args) -> R {
    a.exactly(2)?;
    to_pkcs12(&a.bytes(0)?, &a.bytes(1)?, "", false)
}

/// ESO's `pemToPkcs12Pass(cert, key, password)`: the first certificate and the key as a
/// base64 PKCS#12 archive.
pub(crate) fn pem_to_pkcs12_pass(a: &Args) -> R {
    a.exactly(3)?;
    to_pkcs12(&a.bytes(0)?, &a.bytes(1)?, a.str(2)?, false)
}

/// ESO's `fullPemToPkcs12(cert, key)`.
pub(crate) fn full_pem_to_pkcs12(a: &Args) -> R {
    a.exactly(2)?;
    to_pkcs12(&a.bytes(0)?, &a.bytes(1)?, "", true)
}

/// ESO's `fullPemToPkcs12Pass(cert, key, password)`: as `pemToPkcs12Pass`, with every further
/// certificate of `cert` as a CA certificate.
pub(crate) fn full_pem_to_pkcs12_pass(a: &Args) -> R {
    a.exactly(3)?;
    to_pkcs12(&a.bytes(0)?, &a.bytes(1)?, a.str(2)?, true)
}

/// ESO's `parseCaCerts`: PEM blocks up to the end of the input; anything left over that is not
/// a block fails (Go dereferences the nil block there).
fn ca_certs(mut rest: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut certs = Vec::new();
    while !rest.is_empty() {
        let (block, r) = pem_decode(rest);
        let Some(block) = block else {
            return Err("found data that is not a PEM block after the certificates".to_owned());
        };
        Cert::parse(&block.bytes)?;
        certs.push(block.bytes);
        rest = r;
    }
    Ok(certs)
}

fn to_pkcs12(cert: &[u8], key: &[u8], password: &str, with_chain: bool) -> R {
    let (Some(block), rest) = pem_decode(cert) else {
        return Err("no PEM block in the certificate".to_owned());
    };
    Cert::parse(&block.bytes)?;
    let leaf = block.bytes;
    let cas = if with_chain { ca_certs(rest)? } else { vec![] };
    let (Some(key_block), _) = pem_decode(key) else {
        return Err("no PEM block in the private key".to_owned());
    };
    let key = parse_private_key(&key_block.bytes)?;
    let pkcs8 = marshal_pkcs8(&key)?;

    let encoding_failed = |_| "pkcs12: failed to encode".to_owned();
    let local_key_id = sha1::Sha1::digest(&leaf).to_vec();
    let mut chain = Vec::with_capacity(cas.len() + 1);
    for der in std::iter::once(&leaf).chain(&cas) {
        chain.push(Certificate::from_der(der).map_err(encoding_failed)?);
    }
    let alias = chain[0].subject().to_owned();
    let entry = PrivateKeyChain::new(
        local_key_id,
        PrivateKey::from_der(&pkcs8).map_err(encoding_failed)?,
        chain,
    );
    let mut store = KeyStore::new();
    store.add_entry(&alias, KeyStoreEntry::PrivateKeyChain(entry));
    write(&store, password)
}

/// ESO's `pemTruststoreToPKCS12(certs)`.
pub(crate) fn pem_truststore_to_pkcs12(a: &Args) -> R {
    a.exactly(1)?;
    truststore(&a.bytes(0)?, "")
}

/// ESO's `pemTruststoreToPKCS12Pass(certs, password)`: every certificate as a trusted
/// certificate (Java's trust attribute) in a base64 PKCS#12 archive.
pub(crate) fn pem_truststore_to_pkcs12_pass(a: &Args) -> R {
    a.exactly(2)?;
    truststore(&a.bytes(0)?, a.str(1)?)
}

fn truststore(certs: &[u8], password: &str) -> R {
    let mut store = KeyStore::new();
    for (i, der) in ca_certs(certs)?.iter().enumerate() {
        let cert = Certificate::from_der(der).map_err(|_| "pkcs12: failed to encode".to_owned())?;
        // Aliases order the archive's bags; the index keeps the input's order.
        let alias = format!("{i:04} {}", cert.subject());
        store.add_entry(&alias, KeyStoreEntry::Certificate(cert));
    }
    write(&store, password)
}

/// go-pkcs12's `Modern` encoder settings: PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC) and an
/// HMAC-SHA-256 MAC, 2048 iterations each; base64 as ESO returns it.
fn write(store: &KeyStore, password: &str) -> R {
    let pfx = store
        .writer(password)
        .encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(2048)
        .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha256)
        .mac_iterations(2048)
        .write()
        .map_err(|_| "pkcs12: failed to encode".to_owned())?;
    s(base64::engine::general_purpose::STANDARD.encode(pfx))
}
