//! `Fake`: `spec.data` as it is, for tests and examples.

use async_trait::async_trait;
use secret_sync_crd::generators::FakeSpec;
use secret_sync_providers::{ProviderError, SecretBytes};

use crate::{Context, Generated, Generator, typed};

pub(crate) struct Fake;

#[async_trait]
impl Generator for Fake {
    fn kind(&self) -> &'static str {
        "Fake"
    }

    async fn generate(
        &self,
        spec: &serde_json::Value,
        _context: &Context,
    ) -> Result<Generated, ProviderError> {
        let spec: FakeSpec = typed(self.kind(), spec)?;
        let mut out = Generated::default();
        for (key, value) in spec.data {
            out.data.insert(key, SecretBytes::from(value));
        }
        Ok(out)
    }
}
