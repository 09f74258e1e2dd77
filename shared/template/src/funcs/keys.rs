//! Private and public keys as Go's crypto/x509 reads and writes them, and ESO's key functions:
//! `jwkPublicKeyPem`, `jwkPrivateKeyPem` (lestrrat-go/jwx keys) and `rsaDecrypt`.
//!
//! Keys are parsed into [`Key`] and written back the way `x509.MarshalPKCS8PrivateKey` does, so
//! a key read from PKCS#1, SEC 1, PKCS#8 or a JWK comes out byte for byte as ESO writes it.
//! Messages never hold key material.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use pkcs8::der::Decode as _;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
use rsa::{BoxedUint, Oaep, PrivateKey};
use serde_json::Value as Json;

use super::text::{PemBlock, pem_decode, pem_encode};
use super::{Args, R, b, s};

/// A private key as Go holds it after parsing.
pub(crate) enum Key {
    Rsa(Box<PrivateKey>),
    /// `d` padded to the curve's size; `point` uncompressed (0x04 ‖ X ‖ Y).
    Ec {
        curve: Curve,
        d: Vec<u8>,
        point: Vec<u8>,
    },
    /// The 32-byte seed.
    Ed25519(Vec<u8>),
    X25519(Vec<u8>),
}

#[derive(Clone, Copy)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn from_oid(oid: &pkcs8::ObjectIdentifier) -> Option<Self> {
        match oid.as_bytes() {
            P256_OID => Some(Self::P256),
            P384_OID => Some(Self::P384),
            P521_OID => Some(Self::P521),
            _ => None,
        }
    }

    fn from_jwk(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            "P-521" => Some(Self::P521),
            _ => None,
        }
    }

    pub(crate) fn oid(self) -> &'static [u8] {
        match self {
            Self::P256 => P256_OID,
            Self::P384 => P384_OID,
            Self::P521 => P521_OID,
        }
    }

    /// Bytes of a scalar or a coordinate.
    pub(crate) fn size(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    /// The uncompressed public point for secret scalar `d` (already padded to [`Curve::size`]), or
    /// `None` if `d` is zero or not below the group order.
    pub(crate) fn public_point(self, d: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::P256 => p256::SecretKey::from_slice(d)
                .ok()
                .map(|k| k.public_key().to_sec1_bytes().into_vec()),
            Self::P384 => p384::SecretKey::from_slice(d)
                .ok()
                .map(|k| k.public_key().to_sec1_bytes().into_vec()),
            Self::P521 => p521::SecretKey::from_slice(d)
                .ok()
                .map(|k| k.public_key().to_sec1_bytes().into_vec()),
        }
    }

    fn is_on_curve(self, point: &[u8]) -> bool {
        match self {
            Self::P256 => p256::PublicKey::from_sec1_bytes(point).is_ok(),
            Self::P384 => p384::PublicKey::from_sec1_bytes(point).is_ok(),
            Self::P521 => p521::PublicKey::from_sec1_bytes(point).is_ok(),
        }
    }
}

// Object identifiers, DER content octets.
pub(crate) const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
pub(crate) const EC_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const P521_OID: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
pub(crate) const ED25519_OID: &[u8] = &[0x2b, 0x65, 0x70];
const X25519_OID: &[u8] = &[0x2b, 0x65, 0x6e];

/// A minimal DER writer for the few structures Go's x509 package writes here.
pub(crate) mod der {
    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let len = n.to_be_bytes();
            let skip = len.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (len.len() - skip) as u8);
            out.extend_from_slice(&len[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }

    pub fn oid(content: &[u8]) -> Vec<u8> {
        tlv(0x06, content)
    }

    pub fn int(value: u8) -> Vec<u8> {
        tlv(0x02, &[value])
    }

    pub fn octets(content: &[u8]) -> Vec<u8> {
        tlv(0x04, content)
    }

    pub fn bits(content: &[u8]) -> Vec<u8> {
        tlv(0x03, &[&[0u8][..], content].concat())
    }

    pub const NULL: &[u8] = &[0x05, 0x00];
}

/// `x509.MarshalPKCS8PrivateKey`.
pub(crate) fn marshal_pkcs8(key: &Key) -> Result<Vec<u8>, String> {
    let version = der::int(0);
    Ok(match key {
        Key::Rsa(k) => {
            let pkcs1 = k
                .to_pkcs1_der()
                .map_err(|_| "x509: failed to marshal RSA private key".to_owned())?;
            let alg = der::seq(&[&der::oid(RSA_OID), der::NULL]);
            der::seq(&[&version, &alg, &der::octets(pkcs1.as_bytes())])
        }
        Key::Ec { curve, d, point } => {
            let alg = der::seq(&[&der::oid(EC_OID), &der::oid(curve.oid())]);
            // marshalECPrivateKeyWithOID(k, nil): version 1, d, [1] public key; no parameters.
            let ec = der::seq(&[
                &der::int(1),
                &der::octets(d),
                &der::tlv(0xa1, &der::bits(point)),
            ]);
            der::seq(&[&version, &alg, &der::octets(&ec)])
        }
        Key::Ed25519(seed) => {
            let alg = der::seq(&[&der::oid(ED25519_OID)]);
            der::seq(&[&version, &alg, &der::octets(&der::octets(seed))])
        }
        Key::X25519(k) => {
            let alg = der::seq(&[&der::oid(X25519_OID)]);
            der::seq(&[&version, &alg, &der::octets(&der::octets(k))])
        }
    })
}

/// `x509.MarshalPKIXPublicKey` of a JWK's public key.
fn marshal_pkix(alg: &[u8], key: &[u8]) -> Vec<u8> {
    der::seq(&[alg, &der::bits(key)])
}

/// `x509.ParsePKCS1PrivateKey`.
pub(crate) fn parse_pkcs1(der: &[u8]) -> Result<Key, String> {
    PrivateKey::from_pkcs1_der(der)
        .map(|k| Key::Rsa(Box::new(k)))
        .map_err(|_| "x509: failed to parse RSA private key".to_owned())
}

/// `x509.ParsePKCS8PrivateKey`.
pub(crate) fn parse_pkcs8(der: &[u8]) -> Result<Key, String> {
    let info = pkcs8::PrivateKeyInfoRef::from_der(der)
        .map_err(|_| "x509: failed to parse private key".to_owned())?;
    let inner = info.private_key.as_bytes();
    match info.algorithm.oid.as_bytes() {
        RSA_OID => parse_pkcs1(inner)
            .map_err(|_| "x509: failed to parse RSA private key embedded in PKCS#8".to_owned()),
        EC_OID => {
            let curve = info
                .algorithm
                .parameters_oid()
                .ok()
                .and_then(|oid| Curve::from_oid(&oid))
                .ok_or_else(|| "x509: unknown elliptic curve".to_owned())?;
            parse_ec(Some(curve), inner).map_err(|e| {
                format!("x509: failed to parse EC private key embedded in PKCS#8: {e}")
            })
        }
        oid @ (ED25519_OID | X25519_OID) => {
            let seed = <&pkcs8::der::asn1::OctetStringRef>::from_der(inner)
                .map_err(|_| "x509: invalid curve private key".to_owned())?
                .as_bytes();
            if seed.len() != 32 {
                return Err("x509: invalid curve private key length".to_owned());
            }
            Ok(if oid == ED25519_OID {
                Key::Ed25519(seed.to_vec())
            } else {
                Key::X25519(seed.to_vec())
            })
        }
        _ => Err("x509: PKCS#8 wrapping contained private key with unknown algorithm".to_owned()),
    }
}

/// `x509.ParseECPrivateKey` (SEC 1), with the curve from PKCS#8 when it wraps the key.
pub(crate) fn parse_ec(named: Option<Curve>, der: &[u8]) -> Result<Key, String> {
    let ec = sec1::EcPrivateKey::from_der(der)
        .map_err(|_| "x509: failed to parse EC private key".to_owned())?;
    let curve = match named {
        Some(c) => c,
        None => ec
            .parameters
            .and_then(|p| p.named_curve())
            .and_then(|oid| Curve::from_oid(&oid))
            .ok_or_else(|| "x509: unknown elliptic curve".to_owned())?,
    };
    let mut key = ec.private_key;
    // Some keys carry leading zero padding; Go strips it.
    while key.len() > curve.size() {
        if key[0] != 0 {
            return Err("x509: invalid private key length".to_owned());
        }
        key = &key[1..];
    }
    let mut d = vec![0u8; curve.size()];
    d[curve.size() - key.len()..].copy_from_slice(key);
    // Go derives the public key from d, whatever the encoding says.
    let point = curve
        .public_point(&d)
        .ok_or_else(|| "x509: invalid elliptic curve private key value".to_owned())?;
    Ok(Key::Ec { curve, d, point })
}

/// ESO's `parsePrivateKey`: PKCS#1, then PKCS#8, then SEC 1.
pub(crate) fn parse_private_key(der: &[u8]) -> Result<Key, String> {
    parse_pkcs1(der)
        .or_else(|_| parse_pkcs8(der))
        .or_else(|_| parse_ec(None, der))
        .map_err(|_| "unable to parse private key type".to_owned())
}

/// A PEM block of `kind` holding `der`, as `pem.Encode` writes it.
pub(crate) fn pem(kind: &str, der: Vec<u8>) -> String {
    pem_encode(&PemBlock {
        kind: kind.to_owned(),
        headers: Default::default(),
        bytes: der,
    })
}

/// ESO's `jwkPublicKeyPem(json)`: the key's public half, PKIX `PUBLIC KEY`.
pub(crate) fn jwk_public_key_pem(a: &Args) -> R {
    a.exactly(1)?;
    let jwk = Jwk::parse(&a.bytes(0)?)?;
    let der = match jwk.kty.as_str() {
        "RSA" => {
            let n = jwk.bytes("n")?;
            let e = jwk.bytes("e")?;
            let pkcs1 = der::seq(&[&uint(&n), &uint(&e)]);
            marshal_pkix(&der::seq(&[&der::oid(RSA_OID), der::NULL]), &pkcs1)
        }
        "EC" => {
            let (curve, point) = jwk.ec_point()?;
            marshal_pkix(
                &der::seq(&[&der::oid(EC_OID), &der::oid(curve.oid())]),
                &point,
            )
        }
        "OKP" => {
            let oid = jwk.okp_oid()?;
            let x = jwk.bytes("x")?;
            marshal_pkix(&der::seq(&[&der::oid(oid)]), &x)
        }
        other => return Err(unsupported_kty(other)),
    };
    s(pem("PUBLIC KEY", der))
}

/// ESO's `jwkPrivateKeyPem(json)`: the private key, PKCS#8 `PRIVATE KEY`.
pub(crate) fn jwk_private_key_pem(a: &Args) -> R {
    a.exactly(1)?;
    let jwk = Jwk::parse(&a.bytes(0)?)?;
    let key = match jwk.kty.as_str() {
        "RSA" => {
            let n = jwk.bytes("n")?;
            let bits = u32::try_from(n.len() * 8).map_err(|_| invalid_rsa())?;
            let num = |name: &str, bits: u32| -> Result<BoxedUint, String> {
                BoxedUint::from_be_slice(&jwk.bytes(name)?, bits).map_err(|_| invalid_rsa())
            };
            let e = jwk.bytes("e")?;
            let e_bits = u32::try_from(e.len() * 8).map_err(|_| invalid_rsa())?;
            let key = PrivateKey::from_components(
                num("n", bits)?,
                num("e", e_bits)?,
                num("d", bits)?,
                vec![num("p", bits)?, num("q", bits)?],
            )
            .map_err(|_| invalid_rsa())?;
            Key::Rsa(Box::new(key))
        }
        "EC" => {
            let (curve, point) = jwk.ec_point()?;
            let d = jwk.bytes("d")?;
            if d.len() > curve.size() || curve.public_point(&pad(&d, curve.size())).is_none() {
                return Err("invalid elliptic curve private key".to_owned());
            }
            Key::Ec {
                curve,
                d: pad(&d, curve.size()),
                point,
            }
        }
        "OKP" => {
            let oid = jwk.okp_oid()?;
            let d = jwk.bytes("d")?;
            if d.len() != 32 {
                return Err("invalid OKP private key length".to_owned());
            }
            if oid == ED25519_OID {
                Key::Ed25519(d)
            } else {
                Key::X25519(d)
            }
        }
        other => return Err(unsupported_kty(other)),
    };
    s(pem("PRIVATE KEY", marshal_pkcs8(&key)?))
}

fn invalid_rsa() -> String {
    "invalid RSA private key".to_owned()
}

fn unsupported_kty(kty: &str) -> String {
    match kty {
        "oct" => "x509: unsupported key type: symmetric (oct) key".to_owned(),
        _ => "failed to parse key: invalid key type".to_owned(),
    }
}

/// `v` left-padded with zeros to `size` bytes (`big.Int.FillBytes`).
fn pad(v: &[u8], size: usize) -> Vec<u8> {
    let v = &v[v.iter().take_while(|&&b| b == 0).count()..];
    let mut out = vec![0u8; size.max(v.len())];
    let at = out.len() - v.len();
    out[at..].copy_from_slice(v);
    out
}

/// A DER INTEGER of an unsigned big-endian number.
pub(crate) fn uint(v: &[u8]) -> Vec<u8> {
    let v = &v[v.iter().take_while(|&&b| b == 0).count()..];
    let mut content = Vec::with_capacity(v.len() + 1);
    if v.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(v);
    der::tlv(0x02, &content)
}

/// A JSON Web Key as lestrrat-go/jwx's `jwk.ParseKey` reads it.
struct Jwk {
    kty: String,
    fields: serde_json::Map<String, Json>,
}

impl Jwk {
    fn parse(json: &[u8]) -> Result<Self, String> {
        let fields = match serde_json::from_slice::<Json>(json) {
            Ok(Json::Object(m)) => m,
            _ => return Err("failed to parse key: invalid JSON object".to_owned()),
        };
        let kty = match fields.get("kty") {
            Some(Json::String(k)) => k.clone(),
            _ => return Err("failed to parse key: invalid key type".to_owned()),
        };
        Ok(Self { kty, fields })
    }

    /// A base64url field, decoded as jwx does (padding and the standard alphabet tolerated).
    fn bytes(&self, name: &str) -> Result<Vec<u8>, String> {
        let Some(Json::String(v)) = self.fields.get(name) else {
            return Err(format!(
                "failed to parse key: required field {name} is missing"
            ));
        };
        let v = v.trim_end_matches('=');
        let alphabet = if v.contains(['+', '/']) {
            base64::alphabet::STANDARD
        } else {
            base64::alphabet::URL_SAFE
        };
        let engine = GeneralPurpose::new(
            &alphabet,
            GeneralPurposeConfig::new()
                .with_decode_padding_mode(DecodePaddingMode::RequireNone)
                .with_decode_allow_trailing_bits(true),
        );
        engine
            .decode(v)
            .map_err(|_| format!("failed to parse key: failed to decode field {name}"))
    }

    fn ec_point(&self) -> Result<(Curve, Vec<u8>), String> {
        let curve = match self.fields.get("crv") {
            Some(Json::String(c)) => Curve::from_jwk(c),
            _ => None,
        }
        .ok_or_else(|| "failed to parse key: unsupported elliptic curve".to_owned())?;
        let (x, y) = (self.bytes("x")?, self.bytes("y")?);
        if x.len() > curve.size() || y.len() > curve.size() {
            return Err("x509: invalid elliptic curve public key".to_owned());
        }
        let point = [&[0x04][..], &pad(&x, curve.size()), &pad(&y, curve.size())].concat();
        if !curve.is_on_curve(&point) {
            return Err("x509: invalid elliptic curve public key".to_owned());
        }
        Ok((curve, point))
    }

    fn okp_oid(&self) -> Result<&'static [u8], String> {
        match self.fields.get("crv") {
            Some(Json::String(c)) if c == "Ed25519" => Ok(ED25519_OID),
            Some(Json::String(c)) if c == "X25519" => Ok(X25519_OID),
            _ => Err("failed to parse key: unsupported OKP curve".to_owned()),
        }
    }
}

/// ESO's `rsaDecrypt(scheme, hash, ciphertext, privateKeyPEM)`: scheme `None` returns the
/// input; `RSA-OAEP` decrypts with OAEP over `SHA1`, `SHA256` or `SHA512` (anything else is
/// SHA-256), no label. The key is the first PEM block, PKCS#1, PKCS#8 or SEC 1 (then refused).
pub(crate) fn rsa_decrypt(a: &Args) -> R {
    a.exactly(4)?;
    let (scheme, hash) = (a.str(0)?, a.str(1)?);
    let input = a.bytes(2)?;
    let key_pem = a.bytes(3)?;
    match scheme {
        "None" => b(&input),
        "RSA-OAEP" => {
            let (Some(block), _) = pem_decode(&key_pem) else {
                return Err("failed to decode PEM block".to_owned());
            };
            let key = parse_private_key(&block.bytes)
                .map_err(|e| format!("could not parse private key: {e}"))?;
            let Key::Rsa(key) = key else {
                return Err("could not parse RSA private key".to_owned());
            };
            let out = match hash {
                "SHA1" => key.decrypt(Oaep::<sha1::Sha1>::new(), &input),
                "SHA512" => key.decrypt(Oaep::<sha2::Sha512>::new(), &input),
                _ => key.decrypt(Oaep::<sha2::Sha256>::new(), &input),
            };
            match out {
                Ok(plain) => b(&plain),
                Err(_) => {
                    Err("error decrypting data with RSA: crypto/rsa: decryption error".to_owned())
                }
            }
        }
        // ESO names the scheme; it may come from data, so it is left out.
        _ => Err("decryption scheme is not supported".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_use_the_long_form_past_127_bytes() {
        assert_eq!(der::tlv(0x04, &[0; 3]), vec![4, 3, 0, 0, 0]);
        let long = der::tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[4, 0x82, 1, 44]);
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(uint(&[0, 0, 1]), vec![2, 1, 1]);
        assert_eq!(uint(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(uint(&[]), vec![2, 1, 0]);
    }

    #[test]
    fn unparsable_keys_name_no_bytes() {
        let e = parse_private_key(b"not a key").err().unwrap_or_default();
        assert_eq!(e, "unable to parse private key type");
    }
}
