//! `SSHKey`: a key pair in OpenSSH's formats, under `privateKey` (an `OPENSSH PRIVATE KEY` PEM,
//! the comment inside) and `publicKey` (an `authorized_keys` line ending in a newline, the
//! comment after the key), as ESO makes them. RSA (2048 bits unless `keySize`), ECDSA (P-256,
//! P-384 or P-521 by `keySize`; any other size is P-256, as in ESO) or Ed25519.

use async_trait::async_trait;
use secret_sync_crd::generators::{SshKeySpec, SshKeyType};
use secret_sync_providers::{ProviderError, SecretBytes};
use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
use ssh_key::rand_core::UnwrapErr;
use ssh_key::{EcdsaCurve, LineEnding, PrivateKey};

use crate::{Context, Generated, Generator, typed};

const DEFAULT_RSA_BITS: usize = 2048;

pub(crate) struct SshKey;

#[async_trait]
impl Generator for SshKey {
    fn kind(&self) -> &'static str {
        "SSHKey"
    }

    async fn generate(
        &self,
        spec: &serde_json::Value,
        _context: &Context,
    ) -> Result<Generated, ProviderError> {
        let spec: SshKeySpec = typed(self.kind(), spec)?;
        // RSA key generation takes a while: off the async workers.
        tokio::task::spawn_blocking(move || generate(&spec))
            .await
            .map_err(|e| failed(format!("key generation stopped: {e}")))?
    }
}

fn generate(spec: &SshKeySpec) -> Result<Generated, ProviderError> {
    let mut rng = UnwrapErr(ssh_key::getrandom::SysRng);
    let size = spec.key_size;
    let data = match spec.key_type {
        SshKeyType::Rsa => {
            let bits = size
                .map_or(Ok(DEFAULT_RSA_BITS), usize::try_from)
                .map_err(|_| {
                    ProviderError::Config("invalid SSHKey spec: keySize must be positive".into())
                })?;
            KeypairData::Rsa(RsaKeypair::random(&mut rng, bits).map_err(|e| failed(e.to_string()))?)
        }
        SshKeyType::Ecdsa => {
            let curve = match size {
                Some(384) => EcdsaCurve::NistP384,
                Some(521) => EcdsaCurve::NistP521,
                _ => EcdsaCurve::NistP256,
            };
            KeypairData::Ecdsa(
                EcdsaKeypair::random(&mut rng, curve).map_err(|e| failed(e.to_string()))?,
            )
        }
        SshKeyType::Ed25519 => KeypairData::Ed25519(Ed25519Keypair::random(&mut rng)),
    };
    let comment = spec.comment.clone().unwrap_or_default();
    let private = PrivateKey::new(data, comment).map_err(|e| failed(e.to_string()))?;
    let private_pem = private
        .to_openssh(LineEnding::LF)
        .map_err(|e| failed(e.to_string()))?;
    let mut public = private
        .public_key()
        .to_openssh()
        .map_err(|e| failed(e.to_string()))?;
    public.push('\n');
    let mut out = Generated::default();
    out.data.insert(
        "privateKey".into(),
        SecretBytes::new(private_pem.as_bytes()),
    );
    out.data
        .insert("publicKey".into(), SecretBytes::from(public));
    Ok(out)
}

fn failed(message: String) -> ProviderError {
    ProviderError::Provider {
        operation: "GenerateSSHKey",
        message,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(json: serde_json::Value) -> (PrivateKey, String) {
        let out = generate(&serde_json::from_value(json).expect("spec")).expect("generate");
        let private =
            PrivateKey::from_openssh(out.data["privateKey"].expose()).expect("OpenSSH PEM");
        let public = String::from_utf8(out.data["publicKey"].expose().to_vec()).expect("utf-8");
        (private, public)
    }

    /// ESO's docs example `generator-sshkey.yaml`.
    #[test]
    fn an_ed25519_key_carries_its_comment_in_both_halves() {
        let (private, public) =
            keys(serde_json::json!({"keyType": "ed25519", "comment": "user@example.com"}));
        assert_eq!(private.algorithm(), ssh_key::Algorithm::Ed25519);
        assert_eq!(private.comment().as_bytes(), b"user@example.com");
        assert!(public.starts_with("ssh-ed25519 "), "{public}");
        assert!(public.ends_with(" user@example.com\n"), "{public}");
        assert_eq!(
            private.public_key().to_openssh().expect("public") + "\n",
            public,
            "the public key is the private key's"
        );
    }

    /// ESO's docs example `generator-sshkey-ecdsa.yaml` (P-521); an odd size is P-256.
    #[test]
    fn ecdsa_curves_follow_the_key_size() {
        let (private, _) = keys(serde_json::json!({"keyType": "ecdsa", "keySize": 521}));
        assert_eq!(
            private.algorithm(),
            ssh_key::Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP521
            }
        );
        let (private, public) = keys(serde_json::json!({"keyType": "ecdsa", "keySize": 300}));
        assert_eq!(
            private.algorithm(),
            ssh_key::Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256
            }
        );
        // No comment: the type and the key, nothing after.
        assert!(public.ends_with('\n'), "{public}");
        assert_eq!(public.trim_end().split(' ').count(), 2, "{public}");
    }

    #[test]
    fn rsa_is_the_default_at_2048_bits() {
        let (private, public) = keys(serde_json::json!({}));
        let KeypairData::Rsa(rsa) = private.key_data() else {
            panic!("not RSA");
        };
        assert_eq!(rsa.public().key_size(), 2048);
        assert!(
            public.starts_with("ssh-rsa ") && public.ends_with('\n'),
            "{public}"
        );
    }
}
