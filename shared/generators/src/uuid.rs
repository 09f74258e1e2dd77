//! `UUID`: a random (version 4) UUID under the key `uuid`, lower-case, as ESO's Go code makes
//! it (its API comment says version 1; its code makes version 4).

use async_trait::async_trait;
use secret_sync_providers::{ProviderError, SecretBytes};

use crate::{Context, Generated, Generator};

pub(crate) struct Uuid;

#[async_trait]
impl Generator for Uuid {
    fn kind(&self) -> &'static str {
        "UUID"
    }

    async fn generate(
        &self,
        _spec: &serde_json::Value,
        _context: &Context,
    ) -> Result<Generated, ProviderError> {
        let mut out = Generated::default();
        let id = ::uuid::Uuid::new_v4().hyphenated().to_string();
        out.data.insert("uuid".into(), SecretBytes::from(id));
        Ok(out)
    }
}
