//! sprig's password and symmetric-cipher functions (ESO `runtime/template/v2/sprig/crypto.go`):
//! `bcrypt`, `htpasswd`, `derivePassword`, `encryptAES` and `decryptAES`.
//!
//! Like sprig, `bcrypt`, `htpasswd` and `derivePassword` return their failure as the value
//! (`failed to encrypt string with bcrypt: ...`). `decryptAES` fails where Go panics (input
//! shorter than a block, not whole blocks), with the runtime's message. Messages never hold a
//! password, a key or a plaintext.

use aes::Aes256;
use aes::cipher::{BlockCipherDecrypt as _, BlockCipherEncrypt as _, KeyInit as _};
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha1::Digest as _;
use sha2::Sha256;

use super::text::std_base64_decode;
use super::{Args, R, b, s};
use crate::budget;

/// x/crypto/bcrypt's `DefaultCost`, as sprig uses it.
const BCRYPT_COST: u32 = 10;

/// sprig's `bcrypt(input)`: x/crypto/bcrypt's `GenerateFromPassword` at cost 10, `$2a$`.
fn bcrypt_hash(password: &[u8]) -> String {
    // GenerateFromPassword refuses what bcrypt would truncate.
    if password.len() > 72 {
        return "failed to encrypt string with bcrypt: bcrypt: password length exceeds 72 bytes"
            .to_owned();
    }
    match bcrypt::hash_with_result(password, BCRYPT_COST) {
        Ok(parts) => parts.format_for_version(bcrypt::Version::TwoA),
        Err(_) => "failed to encrypt string with bcrypt: no randomness available".to_owned(),
    }
}

pub(crate) fn bcrypt(a: &Args) -> R {
    a.exactly(1)?;
    s(bcrypt_hash(&a.bytes(0)?))
}

/// sprig's `htpasswd(user, password, hashAlgorithm)`: `user:{SHA}base64(sha1)` for `sha`, else
/// `user:` and a bcrypt hash. A user name with `:` gives `invalid username: <user>`.
pub(crate) fn htpasswd(a: &Args) -> R {
    a.exactly(3)?;
    let user = a.str(0)?;
    let password = a.bytes(1)?;
    if user.contains(':') {
        return s(format!("invalid username: {user}"));
    }
    let hash = match a.str(2)? {
        "sha" => {
            let digest = sha1::Sha1::digest(&password);
            format!(
                "{{SHA}}{}",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        }
        _ => bcrypt_hash(&password),
    };
    s(format!("{user}:{hash}"))
}

const MASTER_PASSWORD_SEED: &[u8] = b"com.lyndir.masterpassword";

/// The Master Password algorithm's templates, by password type.
fn password_templates(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "maximum" => &["anoxxxxxxxxxxxxxxxxx", "axxxxxxxxxxxxxxxxxno"],
        "long" => &[
            "CvcvnoCvcvCvcv",
            "CvcvCvcvnoCvcv",
            "CvcvCvcvCvcvno",
            "CvccnoCvcvCvcv",
            "CvccCvcvnoCvcv",
            "CvccCvcvCvcvno",
            "CvcvnoCvccCvcv",
            "CvcvCvccnoCvcv",
            "CvcvCvccCvcvno",
            "CvcvnoCvcvCvcc",
            "CvcvCvcvnoCvcc",
            "CvcvCvcvCvccno",
            "CvccnoCvccCvcv",
            "CvccCvccnoCvcv",
            "CvccCvccCvcvno",
            "CvcvnoCvccCvcc",
            "CvcvCvccnoCvcc",
            "CvcvCvccCvccno",
            "CvccnoCvcvCvcc",
            "CvccCvcvnoCvcc",
            "CvccCvcvCvccno",
        ],
        "medium" => &["CvcnoCvc", "CvcCvcno"],
        "short" => &["Cvcn"],
        "basic" => &["aaanaaan", "aannaaan", "aaannaaa"],
        "pin" => &["nnnn"],
        _ => return None,
    })
}

fn template_characters(class: u8) -> &'static [u8] {
    match class {
        b'V' => b"AEIOU",
        b'C' => b"BCDFGHJKLMNPQRSTVWXYZ",
        b'v' => b"aeiou",
        b'c' => b"bcdfghjklmnpqrstvwxyz",
        b'A' => b"AEIOUBCDFGHJKLMNPQRSTVWXYZ",
        b'a' => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz",
        b'n' => b"0123456789",
        b'o' => b"@&%?,=[]_:-+*$#!'^~;()/.",
        _ => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz0123456789!@#$%^&*()",
    }
}

/// `seed ‖ len(text) as big-endian u32 ‖ text`.
fn scoped(text: &[u8]) -> Vec<u8> {
    let mut out = MASTER_PASSWORD_SEED.to_vec();
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text);
    out
}

/// The master key: scrypt(password, scoped(user), N=32768, r=8, p=2), 64 bytes. A render
/// derives it once per password and user.
fn master_key(password: &[u8], user: &[u8]) -> Result<Vec<u8>, String> {
    let mut id_input = Sha256::new();
    id_input.update((password.len() as u64).to_be_bytes());
    id_input.update(password);
    id_input.update(user);
    let id: [u8; 32] = id_input.finalize().into();
    if let Some(key) = budget::derived_key(&id) {
        return Ok(key);
    }
    let params = scrypt::Params::new(15, 8, 2)
        .map_err(|_| "failed to derive password: invalid scrypt parameters".to_owned())?;
    let mut key = vec![0u8; 64];
    scrypt::scrypt(password, &scoped(user), &params, &mut key)
        .map_err(|_| "failed to derive password: invalid scrypt output length".to_owned())?;
    budget::remember_derived_key(id, key.clone());
    Ok(key)
}

/// sprig's `derivePassword(counter, type, password, user, site)`: a Master Password site
/// password. An unknown type gives `cannot find password template <type>`.
pub(crate) fn derive_password(a: &Args) -> R {
    a.exactly(5)?;
    // A `uint32` parameter: text/template's messages for a number that does not fit.
    let n = a.int(0)?;
    let counter = u32::try_from(n).map_err(|_| {
        if n < 0 {
            format!("expected unsigned integer; found {n}")
        } else {
            format!("overflow: {n}")
        }
    })?;
    let kind = a.str(1)?;
    let (password, user, site) = (a.bytes(2)?, a.bytes(3)?, a.bytes(4)?);
    let Some(templates) = password_templates(kind) else {
        return s(format!("cannot find password template {kind}"));
    };
    let key = master_key(&password, &user)?;
    let mut mac = <Hmac<Sha256>>::new_from_slice(&key)
        .map_err(|_| "failed to derive password: invalid key".to_owned())?;
    mac.update(&scoped(&site));
    mac.update(&counter.to_be_bytes());
    let seed = mac.finalize().into_bytes();
    let template = templates[usize::from(seed[0]) % templates.len()];
    let out: Vec<u8> = template
        .bytes()
        .zip(seed.iter().skip(1))
        .map(|(class, &r)| {
            let chars = template_characters(class);
            chars[usize::from(r) % chars.len()]
        })
        .collect();
    b(&out)
}

const BLOCK: usize = 16;

/// sprig's key: the password's bytes in 32 zero bytes (longer passwords are cut).
fn aes_key(password: &[u8]) -> Aes256 {
    let mut key = [0u8; 32];
    let n = password.len().min(32);
    key[..n].copy_from_slice(&password[..n]);
    Aes256::new(&key.into())
}

/// sprig's `encryptAES(password, plaintext)`: AES-256-CBC, PKCS#7 padding, a random IV before
/// the ciphertext, standard base64. An empty plaintext is "".
pub(crate) fn encrypt_aes(a: &Args) -> R {
    a.exactly(2)?;
    let plain = a.bytes(1)?;
    if plain.is_empty() {
        return s("");
    }
    let cipher = aes_key(&a.bytes(0)?);
    let pad = BLOCK - plain.len() % BLOCK;
    budget::ensure_size((BLOCK + plain.len() + pad).div_ceil(3) * 4)?;
    let mut out = vec![0u8; BLOCK];
    getrandom::fill(&mut out).map_err(|_| "no randomness available".to_owned())?;
    let mut content = plain.into_owned();
    content.resize(content.len() + pad, pad as u8);
    let mut prev: [u8; BLOCK] = out[..BLOCK].try_into().unwrap_or_default();
    for chunk in content.chunks(BLOCK) {
        let mut block = [0u8; BLOCK];
        for (i, byte) in block.iter_mut().enumerate() {
            *byte = chunk[i] ^ prev[i];
        }
        let mut block = aes::Block::from(block);
        cipher.encrypt_block(&mut block);
        prev = block.into();
        out.extend_from_slice(&prev);
    }
    s(base64::engine::general_purpose::STANDARD.encode(out))
}

/// sprig's `decryptAES(password, ciphertext)`: the inverse of `encryptAES`. Like Go, the last
/// byte says how much padding to drop, unchecked; a wrong password gives garbage, not an
/// error. A base64 error is the error.
pub(crate) fn decrypt_aes(a: &Args) -> R {
    a.exactly(2)?;
    let text = a.str(1)?;
    if text.is_empty() {
        return s("");
    }
    let crypt = std_base64_decode(text)?;
    if crypt.len() < BLOCK {
        // `crypt[:aes.BlockSize]` on DecodeString's buffer.
        let capacity = text.len() / 4 * 3;
        return Err(format!(
            "runtime error: slice bounds out of range [:{BLOCK}] with capacity {capacity}"
        ));
    }
    let (iv, body) = crypt.split_at(BLOCK);
    if !body.len().is_multiple_of(BLOCK) {
        return Err("crypto/cipher: input not full blocks".to_owned());
    }
    let cipher = aes_key(&a.bytes(0)?);
    let mut prev: [u8; BLOCK] = iv.try_into().unwrap_or_default();
    let mut plain = Vec::with_capacity(body.len());
    for chunk in body.chunks(BLOCK) {
        let current: [u8; BLOCK] = chunk.try_into().unwrap_or_default();
        let mut block = aes::Block::from(current);
        cipher.decrypt_block(&mut block);
        let block: [u8; BLOCK] = block.into();
        plain.extend(block.iter().zip(prev).map(|(x, p)| x ^ p));
        prev = current;
    }
    let Some(&last) = plain.last() else {
        return Err("runtime error: index out of range [-1]".to_owned());
    };
    let keep = plain.len() as i64 - i64::from(last);
    if keep < 0 {
        return Err(format!(
            "runtime error: slice bounds out of range [:{keep}]"
        ));
    }
    plain.truncate(keep as usize);
    b(&plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_text_is_seed_length_and_text() {
        let s = scoped(b"user");
        assert_eq!(&s[..25], MASTER_PASSWORD_SEED);
        assert_eq!(&s[25..29], &[0, 0, 0, 4]);
        assert_eq!(&s[29..], b"user");
    }

    #[test]
    fn long_passwords_are_refused_as_go_refuses_them() {
        assert_eq!(
            bcrypt_hash(&[b'a'; 73]),
            "failed to encrypt string with bcrypt: bcrypt: password length exceeds 72 bytes"
        );
        let hash = bcrypt_hash(&[b'a'; 72]);
        assert!(hash.starts_with("$2a$10$") && hash.len() == 60, "{hash}");
    }
}
