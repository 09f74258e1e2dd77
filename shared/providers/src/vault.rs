//! HashiCorp Vault and OpenBao KV engines (`spec.provider.vault`).
//!
//! Behaviour follows ESO's provider (`providers/v1/vault/client_get.go`,
//! `client_get_all_secrets.go`, `auth*.go`, `validate.go` in external-secrets):
//!
//! - **Paths**: with `path` (the mount) set, KV v2 reads `<mount>/data/<key>` and KV v1
//!   `<mount>/<key>`; a key that already starts with `<mount>/` (and, for v2, `data/`) has that
//!   prefix removed first. A `/data` suffix on a v2 mount is optional. Without `path`, the key's
//!   first segment is the mount (v2 inserts `data` after it unless the key contains `/data/`).
//!   `remoteRef.version` reads that KV v2 version (`?version=N`).
//! - **get**: the secret's whole data as a JSON object (ESO's whole-secret read); `property`,
//!   nested keys and non-string values are the render stage's business. A missing secret, or
//!   one whose version is deleted or destroyed, is [`ProviderError::NotFound`].
//! - **metadata** (`metadataPolicy: Fetch`, KV v2 only): a JSON object of strings: the
//!   secret's `created_time`, `current_version` and `delete_version_after`, then its
//!   `custom_metadata` entries (ESO's `readSecretMetadata`).
//! - **find**: a recursive LIST under `<mount>/metadata/<path>/` (KV v1: `<mount>/<path>/`);
//!   `name.regexp` matches the path relative to the mount (unanchored); without a name, `tags`
//!   (KV v2 only) read each candidate's metadata and keep those holding every tag (as in ESO,
//!   a name makes tags ignored). Keys are paths relative to the mount, values each secret's
//!   data as JSON; secrets whose latest version is deleted are skipped; a missing folder is
//!   [`ProviderError::NotFound`] (ESO's `NoSecretError`).
//! - **auth**: `tokenSecretRef`, `appRole`, `userPass`, `ldap`, `kubernetes`, `jwt` and `cert`
//!   (the client certificate from `clientCert` + `secretRef` is presented in the TLS handshake of
//!   every request, `tls` is then ignored, as in ESO; needs an https:// server). The
//!   token is kept in the client and reused; a login token is replaced by a new login when 80%
//!   of its lease has passed. When Vault answers 403 and a `lookup-self` shows the token itself
//!   is refused (revoked or expired), the token is replaced once and the request retried; a 403
//!   for a valid token is [`ProviderError::AccessDenied`], without a new login.
//!   `auth.namespace` (else `namespace`) is sent as `X-Vault-Namespace` on logins, `namespace`
//!   on every other request.
//!   A token from a login is revoked (`revoke-self`) when the client is dropped, as ESO's
//!   `Close` does.
//! - **validate**: a ClusterSecretStore whose credential references lack a namespace (referent
//!   auth) is `Unknown`; otherwise a `auth/token/lookup-self` with the store's token.
//! - **TLS**: `caBundle` or `caProvider` replaces the trusted roots; `tls` supplies a client
//!   certificate (Secret keys default to `tls.crt` and `tls.key`). `caProvider` reads a Secret
//!   key or a ConfigMap's `data` key (not `binaryData`), with ESO's namespace rules
//!   (`FetchCACertFromSource` in `runtime/esutils/utils.go`): a SecretStore reads its own
//!   namespace and refuses a `caProvider.namespace` naming another; a ClusterSecretStore must
//!   name `caProvider.namespace`. A missing Secret, ConfigMap or key is a retryable
//!   [`ProviderError::Referent`], a namespace violation a [`ProviderError::Config`].
//!
//! - **headers**: `headers` are sent on every request; `forwardInconsistent` adds
//!   `X-Vault-Inconsistent: forward-active-node`. `readYourWrites` is not implemented
//!   (PushSecret writes are not read back at once, so nothing needs it yet).
//! - **errors**: 404 is [`ProviderError::NotFound`], 403 [`ProviderError::AccessDenied`], 429
//!   [`ProviderError::Throttled`], a refused login [`ProviderError::Auth`], anything else
//!   (5xx, network) [`ProviderError::Provider`]; all but NotFound and Config are retryable.
//!
//! **Requests** go through vaultrs where its typed endpoints match: KV v1/v2 reads (with
//! `?version=`), writes, metadata reads and writes, deletes; the appRole, userPass, kubernetes,
//! jwt and cert logins; `lookup-self` (validate, the 403 probe) and `revoke-self`. Each request
//! builds a vaultrs `VaultClient` over the store's one `reqwest::Client` (`HTTPClient::new`;
//! trusted roots, client certificate and the custom headers, as default headers, live there) with
//! the current token and namespace, so a new login is used by the next request; the token's
//! copies in it are zeroed on drop. vaultrs's middleware prepends its "version" to the whole
//! path, so it is `<prefix>/v1` for a server URL with a path. vaultrs also sends
//! `X-Vault-Request: true`, as Vault's Go client does.
//! Hand-written over reqwest: the recursive list (vaultrs sends the `LIST` verb; ESO's Go client
//! sends `GET ?list=true`, which proxies refusing unknown verbs let through) and the LDAP login
//! (vaultrs 0.8 has no LDAP module). vaultrs's errors are reduced to the HTTP status and Vault's
//! `errors` strings (they can hold an answer's body, which is never formatted); a 2xx answer
//! vaultrs's types do not read is still a success for writes and validation, which need only
//! the status. Error messages carry key names, HTTP statuses and Vault's `errors` strings, never
//! values. vaultrs and rustify log each failed request at ERROR (a 404 included); the
//! controller's default log filter turns them off.

mod kind;

pub use kind::{VaultKind, mount, mount_and_key, split_key};

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustify::clients::reqwest::Client as HttpClient;
use rustify::errors::ClientError as HttpError;
use secret_sync_crd::provider::{CaProviderType, VaultAuth, VaultKvVersion, VaultProvider};
use secret_sync_crd::{SecretKeySelector, ServiceAccountSelector, StoreKind};
use secret_sync_gosem::GoRegexp;
use serde_json::Value;
use vaultrs::api::kv2::requests::SetSecretMetadataRequest;
use vaultrs::api::kv2::requests::SetSecretRequestOptions;
use vaultrs::api::kv2::responses::ReadSecretMetadataResponse;
use vaultrs::api::{AuthInfo, EndpointMiddleware};
use vaultrs::client::VaultClientSettings;
use vaultrs::error::ClientError;
use vaultrs::{kv1, kv2};
use zeroize::Zeroize;

use crate::{
    Find, MANAGED_BY, Provider, ProviderError, PushRef, Referents, RemoteRef, SecretBytes,
    StoreScope, Validation,
};

/// Lifetime of ServiceAccount tokens requested for Kubernetes and JWT logins (as in ESO).
const SA_TOKEN_SECONDS: i64 = 600;
/// The controller's own ServiceAccount token, used by `kubernetes` auth without a reference.
const OWN_SA_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// Per-request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The KV v2 metadata fields ESO adds to `metadataPolicy: Fetch` values and tag matching.
const SYSTEM_METADATA_KEYS: [&str; 3] = ["created_time", "current_version", "delete_version_after"];
/// How deep `find` descends into folders.
const MAX_LIST_DEPTH: usize = 32;

/// Where a login's credential comes from.
#[derive(Clone, Debug)]
enum JwtSource {
    /// A TokenRequest for this ServiceAccount.
    ServiceAccount {
        account: ServiceAccountSelector,
        audiences: Vec<String>,
        expiration_seconds: i64,
    },
    /// A key of a Secret.
    Secret(SecretKeySelector),
    /// The controller's own mounted token.
    Own,
}

/// A configured auth method.
#[derive(Clone, Debug)]
enum Auth {
    /// A static token in a Secret.
    Token(SecretKeySelector),
    /// `auth/<path>/login` with a role ID and a secret ID.
    AppRole {
        path: String,
        role_id: Option<String>,
        role_ref: Option<SecretKeySelector>,
        secret_ref: SecretKeySelector,
    },
    /// `auth/<path>/login/<username>` with a password (userpass and LDAP).
    Password {
        path: String,
        username: String,
        secret_ref: Option<SecretKeySelector>,
        ldap: bool,
    },
    /// `auth/<path>/login` with a JWT and a role (kubernetes and jwt).
    Jwt {
        path: String,
        role: Option<String>,
        source: JwtSource,
        /// `kubernetes` (else `jwt`): the same request, each through its own vaultrs module.
        kubernetes: bool,
    },
    /// `auth/<path>/login` (naming the role, when set, as `name`); the credential is the
    /// client certificate presented in the TLS handshake, bound into the HTTP client by
    /// [`VaultClient::new`].
    Cert { path: String, role: Option<String> },
}

/// The token in use.
struct CachedToken {
    token: SecretBytes,
    /// When to log in again; `None` for a token that is not renewed by time.
    refresh_at: Option<Instant>,
    /// Increases with each new token, so a 403 replaces only the token that got it.
    generation: u64,
}

/// An HTTP answer from Vault. The body may hold secret data and is zeroed on drop.
struct Reply {
    status: u16,
    body: SecretBytes,
}

/// One request's vaultrs client, and the token it carries for the hand-written requests. The
/// token's copies in vaultrs's settings and middleware are zeroed on drop.
struct Session {
    vault: vaultrs::client::VaultClient,
    token: SecretBytes,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.vault.settings.token.zeroize();
        self.vault.middle.token.zeroize();
    }
}

/// Why a Vault request gave nothing to use. Holds HTTP statuses and Vault's `errors` strings,
/// never a value: vaultrs's errors can hold a response body, and are dropped unformatted.
enum Failure {
    /// A non-2xx answer: its status and Vault's `errors`.
    Status { code: u16, errors: String },
    /// A 2xx answer without `data` (or, for a login, without `auth`).
    NoData,
    /// A 2xx answer whose body is not the JSON expected.
    Shape,
    /// No answer: the request could not be sent or the answer not read.
    Transport(String),
    /// Failed before the request (no token, a header value that cannot be sent).
    Error(ProviderError),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::APIError { code, errors } => Failure::Status {
                code,
                errors: errors_text(errors.iter().map(String::as_str)),
            },
            ClientError::ResponseDataEmptyError | ClientError::ResponseEmptyError => {
                Failure::NoData
            }
            ClientError::ResponseWrapError => Failure::Shape,
            // vaultrs encoding our data (before any request), or re-reading a parsed answer as
            // the type asked for; neither fails for the types used here.
            ClientError::JsonParseError { .. } => {
                Failure::Transport("cannot encode the request".into())
            }
            ClientError::RestClientError { source } => match source {
                // A non-2xx answer whose body is not `{"errors": [...]}` (a deleted KV v2
                // version, a proxy's page): vaultrs leaves it here, with its status.
                HttpError::ServerResponseError { code, content } => Failure::Status {
                    code,
                    errors: vault_errors(content.as_deref().unwrap_or_default().as_bytes()),
                },
                HttpError::RequestError { source, .. } => Failure::Transport(format!(
                    "request to Vault failed: {}",
                    match source.downcast::<reqwest::Error>() {
                        Ok(e) => e.without_url().to_string(),
                        Err(e) => e.to_string(),
                    }
                )),
                HttpError::ResponseError { source } => Failure::Transport(format!(
                    "reading Vault's answer failed: {}",
                    match source.downcast::<reqwest::Error>() {
                        Ok(e) => e.without_url().to_string(),
                        Err(e) => e.to_string(),
                    }
                )),
                HttpError::ResponseParseError { .. }
                | HttpError::ResponseConversionError { .. } => Failure::Shape,
                // Building the request; these carry no body.
                other => Failure::Transport(format!("cannot build the request to Vault: {other}")),
            },
            other => Failure::Transport(other.to_string()),
        }
    }
}

impl Failure {
    /// The error for `operation` on `key`: 404 NotFound, 403 AccessDenied, 429 Throttled,
    /// anything else Provider.
    fn into_error(self, operation: &'static str, key: &str) -> ProviderError {
        match self {
            Failure::Status { code: 404, .. } => ProviderError::NotFound { key: key.into() },
            Failure::Status { code: 403, errors } => ProviderError::AccessDenied {
                message: format!("Vault refused {operation} on {key:?}: {errors}"),
            },
            Failure::Status { code: 429, errors } => ProviderError::Throttled {
                message: format!("{operation} on {key:?}: {errors}"),
            },
            Failure::Status { code, errors } => ProviderError::Provider {
                operation,
                message: format!("HTTP {code} for {key:?}: {errors}"),
                source: None,
            },
            Failure::NoData | Failure::Shape => ProviderError::Provider {
                operation,
                message: format!("Vault's answer for {key:?} is not the JSON expected"),
                source: None,
            },
            Failure::Transport(message) => ProviderError::Provider {
                operation,
                message,
                source: None,
            },
            Failure::Error(error) => error,
        }
    }
}

/// A client for one Vault store.
pub struct VaultClient {
    /// Shared by every request, vaultrs's and the hand-written ones; carries the TLS settings and
    /// the store's custom headers (as default headers).
    http: reqwest::Client,
    /// `https://host:8200/v1/`, for the hand-written requests.
    base: String,
    /// The server URL as vaultrs's settings hold it.
    address: reqwest::Url,
    /// The server's origin (`https://host:8200/`), vaultrs's base URL.
    origin: String,
    /// What vaultrs puts before each API path: `v1`, or `<prefix>/v1` for a server URL with a
    /// path (vaultrs's middleware prepends its "version" to the whole path, after the base).
    api_prefix: String,
    namespace: Option<String>,
    auth_namespace: Option<String>,
    headers: HeaderMap,
    mount: Option<String>,
    version: VaultKvVersion,
    /// `checkAndSet.required`: KV v2 writes carry the version they replace (`options.cas`), so a
    /// write racing another fails instead of overwriting it, and mounts with `cas_required` work.
    check_and_set: bool,
    /// `None` for a ClusterSecretStore with referent auth built without a namespace: it can
    /// only be validated (to `Unknown`).
    auth: Option<Auth>,
    scope: StoreScope,
    referents: Arc<dyn Referents>,
    token: RwLock<Option<CachedToken>>,
    login: tokio::sync::Mutex<()>,
    /// The CA bundle the client trusts (PEM), for other connections to the same server.
    ca_bundle: Option<Vec<u8>>,
    /// The client certificate and key (PEM) presented, likewise.
    identity_pem: Option<SecretBytes>,
}

impl VaultClient {
    /// Builds the client: reads the CA bundle and client certificate now (through `referents`);
    /// logs in lazily, at the first request.
    pub async fn new(
        provider: &VaultProvider,
        scope: &StoreScope,
        referents: Arc<dyn Referents>,
    ) -> Result<Self, ProviderError> {
        let server = provider.server.trim_end_matches('/');
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(ProviderError::Config(format!(
                "spec.provider.vault.server {server:?} must be an http:// or https:// URL"
            )));
        }
        let auth_spec = provider.auth.as_ref().ok_or_else(|| {
            ProviderError::Config("spec.provider.vault.auth must name an auth method".into())
        })?;
        let auth = parse_auth(auth_spec)?;
        let referent_auth =
            scope.kind == StoreKind::ClusterSecretStore && is_referent_auth(Some(auth_spec));
        let unresolved = referent_auth && scope.namespace.is_empty();

        // reqwest builds on the process-wide rustls provider and panics without one; mains
        // install aws-lc-rs first, this covers tests and embedders that did not.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        let mut builder = reqwest::Client::builder()
            .tls_backend_rustls()
            .timeout(REQUEST_TIMEOUT);
        let mut ca_bundle = None;
        let mut identity_pem = None;
        if server.starts_with("http://") {
            if matches!(auth, Auth::Cert { .. }) {
                return Err(ProviderError::Config(
                    "auth.cert needs an https:// server: the client certificate is presented \
                     in the TLS handshake"
                        .into(),
                ));
            }
            // No TLS: do not load any roots (reqwest issue 2988, as vaultrs does).
            builder = builder.tls_certs_only(Vec::new());
        } else if !unresolved {
            if let Some(pem) = ca_pem(provider, scope, referents.as_ref()).await? {
                let certs = reqwest::Certificate::from_pem_bundle(pem.expose()).map_err(|e| {
                    ProviderError::Config(format!("the Vault CA bundle is not valid PEM: {e}"))
                })?;
                if certs.is_empty() {
                    return Err(ProviderError::Config(
                        "the Vault CA bundle holds no PEM certificate".into(),
                    ));
                }
                ca_bundle = Some(pem.expose().to_vec());
                builder = builder.tls_certs_only(certs);
            }
            // The client certificate. Cert auth's own wins over `tls`, as in ESO: its cert
            // login installs a `GetClientCertificate` callback on the transport, which Go's TLS
            // prefers to the `Certificates` that `tls` sets, for the login and every later
            // request. `tls` is then not read.
            let pair = match (&auth, &auth_spec.cert) {
                (Auth::Cert { .. }, Some(cert)) => {
                    if provider.tls.is_some() {
                        tracing::debug!(
                            store = %scope.name,
                            "auth.cert's client certificate replaces spec.provider.vault.tls"
                        );
                    }
                    // No default keys (ESO has none either).
                    let mut parts = Vec::with_capacity(2);
                    for (sel, field) in [
                        (&cert.client_cert, "clientCert"),
                        (&cert.secret_ref, "secretRef"),
                    ] {
                        let sel = sel
                            .as_ref()
                            .filter(|s| !s.name.is_empty() && !s.key.is_empty())
                            .ok_or_else(|| {
                                ProviderError::Config(format!(
                                    "auth.cert.{field} needs a name and a key"
                                ))
                            })?;
                        parts.push(read_ref(Some(sel), "", scope, referents.as_ref()).await?);
                    }
                    let key = parts.pop().flatten();
                    let cert = parts.pop().flatten();
                    cert.zip(key).map(|pair| (pair, "auth.cert"))
                }
                _ => match &provider.tls {
                    Some(tls) => {
                        let cert = read_ref(
                            tls.cert_secret_ref.as_ref(),
                            "tls.crt",
                            scope,
                            referents.as_ref(),
                        )
                        .await?;
                        let key = read_ref(
                            tls.key_secret_ref.as_ref(),
                            "tls.key",
                            scope,
                            referents.as_ref(),
                        )
                        .await?;
                        cert.zip(key).map(|pair| (pair, "tls"))
                    }
                    None => None,
                },
            };
            if let Some(((cert, key), field)) = pair {
                let mut pem = cert.expose().to_vec();
                pem.push(b'\n');
                pem.extend_from_slice(key.expose());
                let pem = SecretBytes::new(pem);
                // reqwest's sources here are fixed texts and rustls errors, never PEM content.
                let identity = reqwest::Identity::from_pem(pem.expose()).map_err(|e| {
                    let cause = std::error::Error::source(&e)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    ProviderError::Config(format!(
                        "the Vault client certificate ({field}) is not a PEM certificate and \
                         private key: {e}{cause}"
                    ))
                })?;
                builder = builder.identity(identity);
                identity_pem = Some(pem);
            }
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &provider.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ProviderError::Config(format!("spec.provider.vault.headers: bad name {name:?}"))
            })?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                ProviderError::Config(format!("spec.provider.vault.headers: bad value for {name}"))
            })?;
            headers.insert(name, value);
        }
        if provider.forward_inconsistent == Some(true) {
            headers.insert(
                HeaderName::from_static("x-vault-inconsistent"),
                HeaderValue::from_static("forward-active-node"),
            );
        }
        // vaultrs's requests carry them as the client's default headers; its own (token,
        // namespace) win over a custom header of the same name, as the hand-written ones do.
        let http = builder
            .default_headers(headers.clone())
            .build()
            .map_err(|e| {
                // As a client certificate whose key does not match it ("inconsistent keys").
                let cause = std::error::Error::source(&e)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                ProviderError::Config(format!("cannot build the Vault HTTP client: {e}{cause}"))
            })?;

        let address = reqwest::Url::parse(server).map_err(|e| {
            ProviderError::Config(format!(
                "spec.provider.vault.server {server:?} is not a valid URL: {e}"
            ))
        })?;
        let mut origin = address.clone();
        origin.set_path("/");
        origin.set_query(None);
        origin.set_fragment(None);
        let api_prefix = match address.path().trim_matches('/') {
            "" => "v1".to_owned(),
            prefix => format!("{prefix}/v1"),
        };

        let mount = kind::mount(provider).map(str::to_owned);
        let namespace = provider.namespace.clone().filter(|n| !n.is_empty());
        tracing::debug!(
            store = %scope.name,
            kind = %scope.kind,
            namespace = %scope.namespace,
            server,
            "built Vault client"
        );
        Ok(Self {
            http,
            base: format!("{server}/v1/"),
            address,
            origin: origin.to_string(),
            api_prefix,
            auth_namespace: auth_spec
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .or_else(|| namespace.clone()),
            namespace,
            headers,
            mount,
            version: provider.version,
            check_and_set: provider
                .check_and_set
                .as_ref()
                .and_then(|c| c.required)
                .unwrap_or(false),
            auth: if unresolved { None } else { Some(auth) },
            scope: scope.clone(),
            referents,
            token: RwLock::new(None),
            login: tokio::sync::Mutex::new(()),
            ca_bundle,
            identity_pem,
        })
    }

    /// The mount and the path under it that `key` names, from the one rule of how a key names a
    /// mount and a key under it ([`kind::split_key`]), which change events are matched by too.
    /// vaultrs's endpoints add `data/` or `metadata/` between them (KV v2). `None` for an empty
    /// key without a mount: it names no secret.
    fn kv_path<'a>(&'a self, key: &'a str) -> Option<(&'a str, &'a str)> {
        kind::split_key(self.mount.as_deref(), self.version, key)
    }

    /// [`kv_path`](Self::kv_path) for a write: a key naming nothing is not found.
    fn kv_path_to_write<'a>(&'a self, key: &'a str) -> Result<(&'a str, &'a str), ProviderError> {
        self.kv_path(key)
            .ok_or_else(|| ProviderError::NotFound { key: key.into() })
    }

    /// A vaultrs client for one request: the shared HTTP client, `token` (none for a login) and
    /// the namespace (`auth.namespace` for a login). Cheap: the HTTP client is shared.
    fn session(&self, token: Option<SecretBytes>, login: bool) -> Result<Session, ProviderError> {
        // vaultrs's middleware unwraps the header values it builds: check them here, with the
        // errors the hand-written requests give.
        let text = match &token {
            Some(token) => std::str::from_utf8(token.expose())
                .ok()
                .filter(|t| HeaderValue::from_str(t).is_ok())
                .ok_or_else(|| ProviderError::Auth {
                    message: "the Vault token holds characters a header cannot carry".into(),
                    source: None,
                })?
                .to_owned(),
            None => String::new(),
        };
        let namespace = if login {
            self.auth_namespace.clone()
        } else {
            self.namespace.clone()
        };
        if let Some(ns) = &namespace {
            HeaderValue::from_str(ns).map_err(|_| {
                ProviderError::Config("the Vault namespace is not a valid header value".into())
            })?;
        }
        let settings = VaultClientSettings {
            address: self.address.clone(),
            ca_certs: Vec::new(),
            identity: None,
            timeout: Some(REQUEST_TIMEOUT),
            token: text.clone(),
            verify: true,
            version: 1,
            wrapping: false,
            namespace: namespace.clone(),
            proxy: None,
        };
        let middle = EndpointMiddleware {
            token: text,
            version: self.api_prefix.clone(),
            wrap: None,
            namespace,
        };
        Ok(Session {
            vault: vaultrs::client::VaultClient {
                http: HttpClient::new(&self.origin, self.http.clone()),
                middle,
                settings,
            },
            token: token.unwrap_or_else(|| SecretBytes::new(Vec::new())),
        })
    }

    /// Headers for one request.
    fn request_headers(
        &self,
        token: Option<&SecretBytes>,
        login: bool,
    ) -> Result<HeaderMap, ProviderError> {
        let mut headers = self.headers.clone();
        let namespace = if login {
            self.auth_namespace.as_deref()
        } else {
            self.namespace.as_deref()
        };
        if let Some(ns) = namespace {
            let value = HeaderValue::from_str(ns).map_err(|_| {
                ProviderError::Config("the Vault namespace is not a valid header value".into())
            })?;
            headers.insert(HeaderName::from_static("x-vault-namespace"), value);
        }
        if let Some(token) = token {
            let mut value =
                HeaderValue::from_bytes(token.expose()).map_err(|_| ProviderError::Auth {
                    message: "the Vault token holds characters a header cannot carry".into(),
                    source: None,
                })?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static("x-vault-token"), value);
        }
        Ok(headers)
    }

    /// One HTTP request, no retries.
    async fn send(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<SecretBytes>,
        token: Option<&SecretBytes>,
        login: bool,
    ) -> Result<Reply, ProviderError> {
        let headers = self.request_headers(token, login)?;
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let mut url = format!("{}{}", self.base, escape_path(path));
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        let mut request = self.http.request(method, url).headers(headers);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.into_inner());
        }
        let response = request.send().await.map_err(|e| ProviderError::Provider {
            operation,
            message: format!("request to Vault failed: {}", e.without_url()),
            source: None,
        })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Provider {
                operation,
                message: format!("reading Vault's answer failed: {}", e.without_url()),
                source: None,
            })?;
        Ok(Reply {
            status,
            body: SecretBytes::new(body.to_vec()),
        })
    }

    /// The current token, logging in when there is none or it is due for renewal.
    async fn current_token(&self) -> Result<(SecretBytes, u64), ProviderError> {
        if let Some(found) = self.cached_token() {
            return Ok(found);
        }
        let _guard = self.login.lock().await;
        if let Some(found) = self.cached_token() {
            return Ok(found);
        }
        self.authenticate().await
    }

    fn cached_token(&self) -> Option<(SecretBytes, u64)> {
        let guard = self.token.read().ok()?;
        let cached = guard.as_ref()?;
        if cached.refresh_at.is_some_and(|at| Instant::now() >= at) {
            return None;
        }
        Some((cached.token.clone(), cached.generation))
    }

    /// Drops the token of `generation` (it was refused) and gets a new one.
    async fn replace_token(&self, generation: u64) -> Result<(SecretBytes, u64), ProviderError> {
        let _guard = self.login.lock().await;
        if let Some((token, current)) = self.cached_token()
            && current != generation
        {
            return Ok((token, current));
        }
        self.authenticate().await
    }

    /// Reads or logs in for a new token and stores it. Call with `login` held.
    async fn authenticate(&self) -> Result<(SecretBytes, u64), ProviderError> {
        let auth = self.auth.as_ref().ok_or_else(|| {
            ProviderError::Config(
                "this ClusterSecretStore reads its credentials in each ExternalSecret's namespace"
                    .into(),
            )
        })?;
        let (token, lease) = match auth {
            Auth::Token(sel) => {
                let token = self.secret(sel, "tokenSecretRef").await?;
                let text = trim_token(token);
                (text, None)
            }
            Auth::AppRole {
                path,
                role_id,
                role_ref,
                secret_ref,
            } => {
                let role_id = match (role_id, role_ref) {
                    (Some(id), _) if !id.is_empty() => SecretBytes::new(id.as_bytes().to_vec()),
                    (_, Some(sel)) => trim_token(self.secret(sel, "appRole.roleRef").await?),
                    _ => {
                        return Err(ProviderError::Config(
                            "auth.appRole needs roleId or roleRef".into(),
                        ));
                    }
                };
                let secret_id = trim_token(self.secret(secret_ref, "appRole.secretRef").await?);
                let (role_id, secret_id) =
                    (utf8("role_id", &role_id)?, utf8("secret_id", &secret_id)?);
                let mount = mount_of(path);
                self.login(&format!("auth/{mount}/login"), |s: Session| async move {
                    vaultrs::auth::approle::login(&s.vault, mount, role_id, secret_id).await
                })
                .await?
            }
            Auth::Password {
                path,
                username,
                secret_ref,
                ldap,
            } => {
                let sel = secret_ref.as_ref().ok_or_else(|| {
                    ProviderError::Config("the password login needs secretRef".into())
                })?;
                let password = self.secret(sel, "secretRef").await?;
                let mount = mount_of(path);
                let at = format!("auth/{mount}/login/{username}");
                if *ldap {
                    // Hand-written: vaultrs 0.8 has no LDAP auth method.
                    let body = json_body(&[("password", &password)])?;
                    self.login_call(&at, body).await?
                } else {
                    let password = utf8("password", &password)?;
                    self.login(&at, |s: Session| async move {
                        vaultrs::auth::userpass::login(&s.vault, mount, username, password).await
                    })
                    .await?
                }
            }
            Auth::Jwt {
                path,
                role,
                source,
                kubernetes,
            } => {
                let jwt = trim_token(self.jwt(source).await?);
                let jwt = utf8("jwt", &jwt)?;
                let mount = mount_of(path);
                let at = format!("auth/{mount}/login");
                if *kubernetes {
                    let role = role.as_deref().unwrap_or_default();
                    self.login(&at, |s: Session| async move {
                        vaultrs::auth::kubernetes::login(&s.vault, mount, role, jwt).await
                    })
                    .await?
                } else {
                    // `role` is sent even when empty, as ESO does (Vault then uses the mount's
                    // default role).
                    let role = role.clone().unwrap_or_default();
                    self.login(&at, |s: Session| async move {
                        vaultrs::auth::oidc::login(&s.vault, mount, jwt, Some(role)).await
                    })
                    .await?
                }
            }
            Auth::Cert { path, role } => {
                // ESO's `requestTokenWithCertAuth` names the role only when one is set; vaultrs
                // always sends `name`, empty without a role, which Vault reads the same way:
                // it then tries every role of the mount that trusts the certificate.
                let role = role.as_deref().unwrap_or_default();
                let mount = mount_of(path);
                self.login(&format!("auth/{mount}/login"), |s: Session| async move {
                    vaultrs::auth::cert::login(&s.vault, mount, role).await
                })
                .await?
            }
        };
        let mut guard = self.token.write().map_err(|_| ProviderError::Auth {
            message: "the Vault token cache is poisoned".into(),
            source: None,
        })?;
        let generation = guard.as_ref().map_or(1, |t| t.generation + 1);
        let refresh_at = lease.filter(|s| *s > 0).map(|seconds: u64| {
            Instant::now() + Duration::from_millis(seconds.saturating_mul(800))
        });
        *guard = Some(CachedToken {
            token: token.clone(),
            refresh_at,
            generation,
        });
        tracing::debug!(store = %self.scope.name, generation, "new Vault token");
        Ok((token, generation))
    }

    /// A vaultrs login (without a token, in the auth namespace); returns the client token and
    /// its lease in seconds. `path` names the login in errors.
    async fn login<Fut>(
        &self,
        path: &str,
        request: impl FnOnce(Session) -> Fut,
    ) -> Result<(SecretBytes, Option<u64>), ProviderError>
    where
        Fut: Future<Output = Result<AuthInfo, ClientError>>,
    {
        let session = self.session(None, true)?;
        let auth = request(session).await.map_err(|e| match Failure::from(e) {
            Failure::Status { code, errors } => ProviderError::Auth {
                message: format!("Vault login at {path} failed with HTTP {code}: {errors}"),
                source: None,
            },
            Failure::NoData => ProviderError::Auth {
                message: format!("Vault login at {path} returned no auth"),
                source: None,
            },
            Failure::Shape => ProviderError::Auth {
                message: format!("Vault login at {path} returned no JSON with a client token"),
                source: None,
            },
            other => other.into_error("Login", path),
        })?;
        let lease = auth.lease_duration;
        Ok((
            SecretBytes::new(auth.client_token.into_bytes()),
            Some(lease),
        ))
    }

    /// Posts a login and returns the client token and its lease in seconds (LDAP only).
    async fn login_call(
        &self,
        path: &str,
        body: SecretBytes,
    ) -> Result<(SecretBytes, Option<u64>), ProviderError> {
        let reply = self
            .send("Login", reqwest::Method::POST, path, Some(body), None, true)
            .await?;
        if !(200..300).contains(&reply.status) {
            return Err(ProviderError::Auth {
                message: format!(
                    "Vault login at {path} failed with HTTP {}: {}",
                    reply.status,
                    vault_errors(reply.body.expose())
                ),
                source: None,
            });
        }
        let parsed: Value =
            serde_json::from_slice(reply.body.expose()).map_err(|_| ProviderError::Auth {
                message: format!("Vault login at {path} returned no JSON"),
                source: None,
            })?;
        let auth = parsed.get("auth").ok_or_else(|| ProviderError::Auth {
            message: format!("Vault login at {path} returned no auth"),
            source: None,
        })?;
        let token = auth
            .get("client_token")
            .and_then(Value::as_str)
            .ok_or_else(|| ProviderError::Auth {
                message: format!("Vault login at {path} returned no client token"),
                source: None,
            })?;
        let lease = auth.get("lease_duration").and_then(Value::as_u64);
        Ok((SecretBytes::new(token.as_bytes().to_vec()), lease))
    }

    async fn secret(
        &self,
        sel: &SecretKeySelector,
        field: &str,
    ) -> Result<SecretBytes, ProviderError> {
        if sel.name.is_empty() || sel.key.is_empty() {
            return Err(ProviderError::Config(format!(
                "auth.{field} needs a name and a key"
            )));
        }
        let ns = self.scope.referent_namespace(sel.namespace.as_deref());
        Ok(self.referents.secret_key(ns, &sel.name, &sel.key).await?)
    }

    async fn jwt(&self, source: &JwtSource) -> Result<SecretBytes, ProviderError> {
        match source {
            JwtSource::ServiceAccount {
                account,
                audiences,
                expiration_seconds,
            } => {
                let ns = self.scope.referent_namespace(account.namespace.as_deref());
                Ok(self
                    .referents
                    .service_account_token(ns, &account.name, audiences, *expiration_seconds)
                    .await?)
            }
            JwtSource::Secret(sel) => {
                let mut sel = sel.clone();
                if sel.key.is_empty() {
                    "token".clone_into(&mut sel.key);
                }
                self.secret(&sel, "secretRef").await
            }
            JwtSource::Own => std::fs::read(OWN_SA_TOKEN)
                .map(SecretBytes::new)
                .map_err(|e| ProviderError::Auth {
                    message: format!("cannot read the controller's token {OWN_SA_TOKEN}: {e}"),
                    source: None,
                }),
        }
    }

    /// A request with the store's token. When Vault answers 403 and a `lookup-self` with the same
    /// token is refused too, the token itself is gone (revoked, expired): gets a new one once and
    /// retries. A 403 for a valid token is the answer. `key` names the request in the log.
    async fn with_token<T, Fut>(
        &self,
        key: &str,
        request: impl Fn(Session) -> Fut,
    ) -> Result<T, Failure>
    where
        Fut: Future<Output = Result<T, Failure>>,
    {
        let (token, generation) = self.current_token().await.map_err(Failure::Error)?;
        let session = self
            .session(Some(token.clone()), false)
            .map_err(Failure::Error)?;
        let answer = request(session).await;
        if !matches!(answer, Err(Failure::Status { code: 403, .. })) {
            return answer;
        }
        // 403 means either "this token may not do that" or "this token is gone" (revoked,
        // expired). Only the second is cured by a new token: ask Vault which it is.
        let session = self.session(Some(token), false).map_err(Failure::Error)?;
        match vaultrs::token::lookup_self(&session.vault)
            .await
            .map_err(Failure::from)
        {
            Err(Failure::Status { code: 403, .. }) => {}
            Err(Failure::Transport(message)) => {
                return Err(Failure::Error(ProviderError::Provider {
                    operation: "LookupSelf",
                    message,
                    source: None,
                }));
            }
            _ => return answer,
        }
        tracing::debug!(store = %self.scope.name, key, "Vault refused the token; getting a new one");
        let (token, _) = self
            .replace_token(generation)
            .await
            .map_err(Failure::Error)?;
        let session = self.session(Some(token), false).map_err(Failure::Error)?;
        request(session).await
    }

    /// A request to any path of Vault's API with the store's credentials (ESO's
    /// VaultDynamicSecret generator): `GET` (or empty) reads, with `query`; `LIST` lists; `DELETE`
    /// deletes; any other method writes `body` (a JSON object). The whole answer (its `data`,
    /// `auth`, lease), or `None` when Vault answered without a body, or 404 to a read or list.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Option<SecretBytes>,
    ) -> Result<Option<Value>, ProviderError> {
        const OPERATION: &str = "VaultDynamicSecret";
        let path = path.trim_start_matches('/');
        let (http, target, reads) = match method {
            "" | "GET" if query.is_empty() => (reqwest::Method::GET, path.to_owned(), true),
            "" | "GET" => (reqwest::Method::GET, format!("{path}?{query}"), true),
            "LIST" => (reqwest::Method::GET, format!("{path}?list=true"), true),
            "DELETE" => (reqwest::Method::DELETE, path.to_owned(), false),
            _ => (reqwest::Method::PUT, path.to_owned(), false),
        };
        let answer = self
            .with_token(path, |s| {
                let (http, target, body) = (http.clone(), target.clone(), body.clone());
                async move {
                    let reply = self
                        .send(OPERATION, http, &target, body, Some(&s.token), false)
                        .await
                        .map_err(Failure::Error)?;
                    match failure_of(&reply) {
                        Some(failure) => Err(failure),
                        None => Ok(reply),
                    }
                }
            })
            .await;
        match answer {
            Ok(reply) if reply.body.is_empty() => Ok(None),
            Ok(reply) => serde_json::from_slice(reply.body.expose())
                .map(Some)
                .map_err(|_| Failure::Shape.into_error(OPERATION, path)),
            Err(Failure::Status { code: 404, .. }) if reads => Ok(None),
            Err(failure) => Err(failure.into_error(OPERATION, path)),
        }
    }

    /// The data of one secret (latest or `version`), or `None`.
    async fn read_data(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<serde_json::Map<String, Value>>, ProviderError> {
        let version = match version.filter(|v| !v.is_empty()) {
            None => None,
            Some(_) if self.version == VaultKvVersion::V1 => {
                return Err(ProviderError::Config(
                    "remoteRef.version needs a KV v2 store".into(),
                ));
            }
            Some(version) => Some(version.parse::<u64>().map_err(|_| {
                ProviderError::Config(format!(
                    "remoteRef.version {version:?} is not a KV v2 version number"
                ))
            })?),
        };
        let Some((mount, path)) = self.kv_path(key) else {
            return Ok(None);
        };
        let answer = self
            .with_token(key, |s| async move {
                let data = match (self.version, version) {
                    (VaultKvVersion::V2, None) => kv2::read::<Value>(&s.vault, mount, path).await,
                    (VaultKvVersion::V2, Some(version)) => {
                        kv2::read_version::<Value>(&s.vault, mount, path, version).await
                    }
                    (VaultKvVersion::V1, _) => {
                        kv1::get_raw(&s.vault, mount, path).await.map(|r| r.data)
                    }
                };
                data.map_err(Failure::from)
            })
            .await;
        match answer {
            Ok(Value::Object(map)) => Ok(Some(map)),
            // A deleted or destroyed KV v2 version is a 404 too.
            Ok(_) | Err(Failure::NoData | Failure::Status { code: 404, .. }) => Ok(None),
            Err(failure) => Err(failure.into_error("ReadSecretData", key)),
        }
    }

    /// A KV v2 secret's metadata (`None` when it does not exist); `operation` names the read.
    async fn kv2_metadata(
        &self,
        operation: &'static str,
        key: &str,
    ) -> Result<Option<ReadSecretMetadataResponse>, ProviderError> {
        let Some((mount, path)) = self.kv_path(key) else {
            return Ok(None);
        };
        let answer = self
            .with_token(key, |s| async move {
                kv2::read_metadata(&s.vault, mount, path)
                    .await
                    .map_err(Failure::from)
            })
            .await;
        match answer {
            Ok(metadata) => Ok(Some(metadata)),
            Err(Failure::NoData | Failure::Status { code: 404, .. }) => Ok(None),
            Err(failure) => Err(failure.into_error(operation, key)),
        }
    }

    /// A KV v2 secret's metadata as ESO reads it: `created_time`, `current_version` and
    /// `delete_version_after`, then the `custom_metadata` entries (which win); every value a
    /// string. `None` when the secret does not exist.
    async fn read_metadata(
        &self,
        key: &str,
    ) -> Result<Option<BTreeMap<String, String>>, ProviderError> {
        let Some(data) = self.kv2_metadata("ReadSecretData", key).await? else {
            return Ok(None);
        };
        let [created, current, delete_after] = SYSTEM_METADATA_KEYS;
        let mut metadata = BTreeMap::from([
            (created.to_owned(), data.created_time),
            (current.to_owned(), data.current_version.to_string()),
            (delete_after.to_owned(), data.delete_version_after),
        ]);
        metadata.extend(data.custom_metadata.unwrap_or_default());
        Ok(Some(metadata))
    }

    /// A PushSecret write; any 2xx answer is success (its body is not needed).
    async fn write<Fut>(
        &self,
        operation: &'static str,
        key: &str,
        request: impl Fn(Session) -> Fut,
    ) -> Result<(), ProviderError>
    where
        Fut: Future<Output = Result<(), ClientError>>,
    {
        let answer = self
            .with_token(key, |s| {
                let answer = request(s);
                async move { answer.await.map_err(Failure::from) }
            })
            .await;
        match answer {
            Ok(()) | Err(Failure::NoData | Failure::Shape) => Ok(()),
            Err(failure) => Err(failure.into_error(operation, key)),
        }
    }

    /// Writes a secret's data (KV v2: a new version; KV v1: the whole entry).
    async fn write_data(
        &self,
        key: &str,
        data: &serde_json::Map<String, Value>,
    ) -> Result<(), ProviderError> {
        let (mount, path) = self.kv_path_to_write(key)?;
        // The version this write replaces (0: none yet), for check-and-set.
        let cas = match (self.version, self.check_and_set) {
            (VaultKvVersion::V2, true) => Some(
                self.kv2_metadata("ReadSecretMetadata", key)
                    .await?
                    .map_or(0, |m| m.current_version),
            ),
            _ => None,
        };
        self.write("WriteSecretData", key, |s| async move {
            match (self.version, cas) {
                (VaultKvVersion::V2, Some(version)) => kv2::set_with_options(
                    &s.vault,
                    mount,
                    path,
                    data,
                    SetSecretRequestOptions {
                        cas: u32::try_from(version).unwrap_or(u32::MAX),
                    },
                )
                .await
                .map(drop),
                (VaultKvVersion::V2, None) => kv2::set(&s.vault, mount, path, data).await.map(drop),
                (VaultKvVersion::V1, _) => {
                    let entry: std::collections::HashMap<&str, &Value> =
                        data.iter().map(|(k, v)| (k.as_str(), v)).collect();
                    kv1::set(&s.vault, mount, path, &entry).await
                }
            }
        })
        .await
    }

    /// The custom metadata PushSecret marks its secrets with: KV v2's `custom_metadata` (empty
    /// when the secret has no metadata), or KV v1's `custom_metadata` entry in the data itself.
    async fn custom_metadata(
        &self,
        key: &str,
        data: Option<&serde_json::Map<String, Value>>,
    ) -> Result<serde_json::Map<String, Value>, ProviderError> {
        Ok(match self.version {
            VaultKvVersion::V1 => match data.and_then(|d| d.get(CUSTOM_METADATA)) {
                Some(Value::Object(map)) => map.clone(),
                _ => Default::default(),
            },
            VaultKvVersion::V2 => self
                .kv2_metadata("ReadSecretMetadata", key)
                .await?
                .and_then(|m| m.custom_metadata)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        })
    }

    /// Secret paths (relative to the mount) under `folder` (empty or ending in `/`).
    async fn list(&self, mount: &str, folder: &str) -> Result<Vec<String>, ProviderError> {
        let mut found = Vec::new();
        let mut pending = vec![(folder.to_owned(), 0usize)];
        while let Some((folder, depth)) = pending.pop() {
            // Hand-written: vaultrs lists with the LIST verb; ESO's Go client sends GET
            // `?list=true` ("for broader compatibility"), which proxies refusing unknown verbs pass.
            let path = match self.version {
                VaultKvVersion::V2 => format!("{mount}/metadata/{folder}?list=true"),
                VaultKvVersion::V1 => format!("{mount}/{folder}?list=true"),
            };
            let (path, folder) = (path.as_str(), folder.as_str());
            let answer = self
                .with_token(folder, |s| async move {
                    let reply = self
                        .send(
                            "ListSecrets",
                            reqwest::Method::GET,
                            path,
                            None,
                            Some(&s.token),
                            false,
                        )
                        .await
                        .map_err(Failure::Error)?;
                    if let Some(failure) = failure_of(&reply) {
                        return Err(failure);
                    }
                    serde_json::from_slice::<Value>(reply.body.expose()).map_err(|_| Failure::Shape)
                })
                .await;
            let data = match answer {
                Ok(Value::Object(mut map)) => map.remove("data").filter(|d| !d.is_null()),
                Ok(_) | Err(Failure::Status { code: 404, .. }) => None,
                Err(failure) => return Err(failure.into_error("ListSecrets", folder)),
            };
            if data.is_none() && depth == 0 {
                // Nothing under the searched folder: ESO's NoSecretError.
                return Err(ProviderError::NotFound {
                    key: format!("{mount}/{folder}"),
                });
            }
            let keys = data
                .as_ref()
                .and_then(|d| d.get("keys"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for entry in keys.iter().filter_map(Value::as_str) {
                let full = format!("{folder}{entry}");
                if entry.ends_with('/') {
                    if depth < MAX_LIST_DEPTH {
                        pending.push((full, depth + 1));
                    }
                } else {
                    found.push(full);
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

/// A token this client logged in for is revoked when the client goes (a new store generation,
/// shutdown), as ESO's `Close` does; a token read from a Secret is left alone.
impl Drop for VaultClient {
    fn drop(&mut self) {
        if matches!(self.auth, None | Some(Auth::Token(_))) {
            return;
        }
        let Some(cached) = self.token.get_mut().ok().and_then(Option::take) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(session) = self.session(Some(cached.token.clone()), false) else {
            return;
        };
        runtime.spawn(async move {
            if let Err(e) = vaultrs::token::revoke_self(&session.vault).await {
                let error = Failure::from(e).into_error("RevokeSelf", "auth/token/revoke-self");
                tracing::debug!(%error, "revoking the Vault token failed");
            }
        });
    }
}

#[async_trait]
impl Provider for VaultClient {
    async fn push(&self, remote: &PushRef, value: &[u8]) -> Result<bool, ProviderError> {
        let key = remote.key.as_str();
        let existing = self.read_data(key, None).await?;
        let mut custom = self.custom_metadata(key, existing.as_ref()).await?;
        let marked = custom.get(MANAGED_BY.0).and_then(Value::as_str) == Some(MANAGED_BY.1);
        if custom_present(self.version, existing.as_ref(), &custom) && !marked {
            return Err(ProviderError::NotManaged { key: key.into() });
        }
        let mut current = existing.unwrap_or_default();
        current.remove(CUSTOM_METADATA);
        let wanted = match remote.property.as_deref().filter(|p| !p.is_empty()) {
            None => match serde_json::from_slice::<Value>(value) {
                Ok(Value::Object(map)) => map,
                _ => {
                    return Err(ProviderError::Config(format!(
                        "the value pushed to {key:?} without a property must be a JSON object"
                    )));
                }
            },
            Some(property) => {
                let text = std::str::from_utf8(value).map_err(|_| {
                    ProviderError::Config(format!(
                        "the value for property {property:?} of {key:?} is not UTF-8"
                    ))
                })?;
                let mut map = current.clone();
                map.insert(property.to_owned(), Value::String(text.to_owned()));
                map
            }
        };
        if wanted == current && marked {
            return Ok(false);
        }
        custom.insert(MANAGED_BY.0.into(), Value::String(MANAGED_BY.1.into()));
        match self.version {
            VaultKvVersion::V2 => {
                let (mount, path) = self.kv_path_to_write(key)?;
                // KV v2 custom metadata is a map of strings.
                let custom: std::collections::HashMap<String, String> = custom
                    .iter()
                    .map(|(k, v)| (k.clone(), metadata_text(v)))
                    .collect();
                self.write("WriteSecretMetadata", key, |s| {
                    let mut request = SetSecretMetadataRequest::builder();
                    request.custom_metadata(custom.clone());
                    async move { kv2::set_metadata(&s.vault, mount, path, Some(&mut request)).await }
                })
                .await?;
                self.write_data(key, &wanted).await?;
            }
            VaultKvVersion::V1 => {
                let mut data = wanted;
                data.insert(CUSTOM_METADATA.into(), Value::Object(custom));
                self.write_data(key, &data).await?;
            }
        }
        Ok(true)
    }

    async fn exists(&self, remote: &PushRef) -> Result<bool, ProviderError> {
        let Some(data) = self.read_data(&remote.key, None).await? else {
            return Ok(false);
        };
        Ok(match remote.property.as_deref().filter(|p| !p.is_empty()) {
            None => true,
            Some(property) => data.contains_key(property),
        })
    }

    async fn delete_pushed(&self, remote: &PushRef) -> Result<(), ProviderError> {
        let key = remote.key.as_str();
        let Some(mut data) = self.read_data(key, None).await? else {
            return Ok(());
        };
        let custom = self.custom_metadata(key, Some(&data)).await?;
        if custom.get(MANAGED_BY.0).and_then(Value::as_str) != Some(MANAGED_BY.1) {
            tracing::debug!(key, "not deleting a secret PushSecret did not create");
            return Ok(());
        }
        if let Some(property) = remote.property.as_deref().filter(|p| !p.is_empty()) {
            data.remove(property);
            let left = data.keys().filter(|k| *k != CUSTOM_METADATA).count();
            if left > 0 {
                return self.write_data(key, &data).await;
            }
        }
        let (mount, path) = self.kv_path_to_write(key)?;
        let answer = self
            .with_token(key, |s| async move {
                match self.version {
                    // Every version and the metadata.
                    VaultKvVersion::V2 => kv2::delete_metadata(&s.vault, mount, path).await,
                    VaultKvVersion::V1 => kv1::delete(&s.vault, mount, path).await,
                }
                .map_err(Failure::from)
            })
            .await;
        match answer {
            Ok(()) | Err(Failure::Status { code: 404, .. }) => Ok(()),
            Err(failure) => Err(failure.into_error("DeleteSecret", key)),
        }
    }

    async fn get(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        if remote.metadata {
            if self.version == VaultKvVersion::V1 {
                return Err(ProviderError::Config(
                    "cannot perform metadata fetch operations with kv version v1".into(),
                ));
            }
            let metadata =
                self.read_metadata(&remote.key)
                    .await?
                    .ok_or_else(|| ProviderError::NotFound {
                        key: remote.key.clone(),
                    })?;
            // ESO: `json.Marshal` of the custom metadata.
            return Ok(SecretBytes::from(
                secret_sync_gosem::json::marshal_string_map(&metadata),
            ));
        }
        let data = self
            .read_data(&remote.key, remote.version.as_deref())
            .await?
            .ok_or_else(|| ProviderError::NotFound {
                key: remote.key.clone(),
            })?;
        // ESO: `json.Marshal` of the secret's data (client_get.go `getSecretValue`).
        Ok(SecretBytes::from(secret_sync_gosem::json::marshal_object(
            &data,
        )))
    }

    async fn find(&self, find: &Find) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        let mount = self.mount.clone().ok_or_else(|| {
            ProviderError::Config("find needs spec.provider.vault.path (the KV mount)".into())
        })?;
        if !find.tags.is_empty() && self.version == VaultKvVersion::V1 {
            return Err(ProviderError::Config(
                "cannot perform find by tag operations with kv version v1".into(),
            ));
        }
        let matcher = find
            .name_regexp
            .as_deref()
            .map(GoRegexp::new)
            .transpose()
            .map_err(|e| ProviderError::Config(format!("invalid find.name.regexp: {e}")))?;
        let folder = match find.path.as_deref().map(|p| p.trim_matches('/')) {
            Some(p) if !p.is_empty() => format!("{p}/"),
            _ => String::new(),
        };
        let mut found = BTreeMap::new();
        for name in self.list(&mount, &folder).await? {
            // As in ESO, a name selects by name alone (tags are then ignored); otherwise the
            // tags select (none: everything under the path).
            if let Some(matcher) = &matcher {
                if !matcher.is_match(&name) {
                    continue;
                }
            } else if !find.tags.is_empty() {
                let Some(metadata) = self.read_metadata(&name).await? else {
                    continue;
                };
                if !find.tags.iter().all(|(k, v)| metadata.get(k) == Some(v)) {
                    continue;
                }
            }
            // A secret whose latest version is deleted lists but has no data: skip it.
            if let Some(data) = self.read_data(&name, None).await? {
                let value = secret_sync_gosem::json::marshal_object(&data);
                found.insert(name, SecretBytes::from(value));
            }
        }
        Ok(found)
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        if self.auth.is_none() {
            return Ok(Validation::Unknown);
        }
        const LOOKUP_SELF: &str = "auth/token/lookup-self";
        let answer = self
            .with_token(LOOKUP_SELF, |s| async move {
                vaultrs::token::lookup_self(&s.vault)
                    .await
                    .map(drop)
                    .map_err(Failure::from)
            })
            .await;
        match answer {
            // Only the status matters: a 2xx whose body vaultrs's type does not read is a
            // valid token too.
            Ok(()) | Err(Failure::NoData | Failure::Shape) => Ok(Validation::Ready),
            Err(Failure::Status { code: 403, errors }) => Err(ProviderError::Auth {
                message: format!("Vault refused the token: {errors}"),
                source: None,
            }),
            Err(failure) => Err(failure.into_error("LookupSelf", LOOKUP_SELF)),
        }
    }

    fn metric_name(&self) -> &'static str {
        "HashiCorp/Vault"
    }

    fn get_call_name(&self) -> &'static str {
        // ESO's `CallHCVaultReadSecretData`.
        "ReadSecretData"
    }
}

/// Whether a ClusterSecretStore with this auth reads credentials in each ExternalSecret's
/// namespace (a reference without a namespace, as ESO's `isReferentSpec`).
pub(crate) fn is_referent_auth(auth: Option<&VaultAuth>) -> bool {
    let Some(auth) = auth else { return false };
    let sel = |s: &Option<SecretKeySelector>| s.as_ref().is_some_and(|s| s.namespace.is_none());
    let sa = |s: &Option<ServiceAccountSelector>| s.as_ref().is_some_and(|s| s.namespace.is_none());
    auth.token_secret_ref
        .as_ref()
        .is_some_and(|s| s.namespace.is_none())
        || auth
            .app_role
            .as_ref()
            .is_some_and(|a| a.secret_ref.namespace.is_none() || sel(&a.role_ref))
        || auth
            .kubernetes
            .as_ref()
            .is_some_and(|k| sa(&k.service_account_ref) || sel(&k.secret_ref))
        || auth.ldap.as_ref().is_some_and(|l| sel(&l.secret_ref))
        || auth.user_pass.as_ref().is_some_and(|u| sel(&u.secret_ref))
        || auth.jwt.as_ref().is_some_and(|j| {
            sel(&j.secret_ref)
                || j.kubernetes_service_account_token
                    .as_ref()
                    .is_some_and(|t| t.service_account_ref.namespace.is_none())
        })
        || auth
            .cert
            .as_ref()
            .is_some_and(|c| sel(&c.client_cert) || sel(&c.secret_ref))
}

fn parse_auth(auth: &VaultAuth) -> Result<Auth, ProviderError> {
    if let Some(sel) = &auth.token_secret_ref {
        return Ok(Auth::Token(sel.clone()));
    }
    if let Some(a) = &auth.app_role {
        return Ok(Auth::AppRole {
            path: a.path.clone(),
            role_id: a.role_id.clone(),
            role_ref: a.role_ref.clone(),
            secret_ref: a.secret_ref.clone(),
        });
    }
    if let Some(k) = &auth.kubernetes {
        let source = match (&k.service_account_ref, &k.secret_ref) {
            (Some(account), _) => JwtSource::ServiceAccount {
                account: account.clone(),
                audiences: account.audiences.clone(),
                expiration_seconds: SA_TOKEN_SECONDS,
            },
            (None, Some(sel)) => JwtSource::Secret(sel.clone()),
            (None, None) => JwtSource::Own,
        };
        return Ok(Auth::Jwt {
            path: k.mount_path.clone(),
            role: Some(k.role.clone()),
            source,
            kubernetes: true,
        });
    }
    if let Some(u) = &auth.user_pass {
        return Ok(Auth::Password {
            path: u.path.clone(),
            username: u.username.clone(),
            secret_ref: u.secret_ref.clone(),
            ldap: false,
        });
    }
    if let Some(l) = &auth.ldap {
        return Ok(Auth::Password {
            path: l.path.clone(),
            username: l.username.clone(),
            secret_ref: l.secret_ref.clone(),
            ldap: true,
        });
    }
    if let Some(j) = &auth.jwt {
        // As in ESO: `secretRef` first; a requested token carries the ServiceAccount's
        // audiences plus the deprecated `audiences` (default ["vault"]).
        let source = match (&j.secret_ref, &j.kubernetes_service_account_token) {
            (Some(sel), _) => JwtSource::Secret(sel.clone()),
            (None, Some(t)) => {
                let mut audiences = t.service_account_ref.audiences.clone();
                audiences.extend(t.audiences.clone().unwrap_or_else(|| vec!["vault".into()]));
                JwtSource::ServiceAccount {
                    account: t.service_account_ref.clone(),
                    audiences,
                    expiration_seconds: t.expiration_seconds.unwrap_or(SA_TOKEN_SECONDS),
                }
            }
            (None, None) => {
                return Err(ProviderError::Config(
                    "neither `secretRef` nor `kubernetesServiceAccountToken` was supplied as \
                     token source for jwt authentication"
                        .into(),
                ));
            }
        };
        return Ok(Auth::Jwt {
            path: j.path.clone(),
            role: j.role.clone(),
            source,
            kubernetes: false,
        });
    }
    if let Some(c) = &auth.cert {
        // ESO: an empty path is "cert".
        let path = if mount_of(&c.path).is_empty() {
            "cert".to_owned()
        } else {
            c.path.clone()
        };
        return Ok(Auth::Cert {
            path,
            role: c.vault_role.clone().filter(|r| !r.is_empty()),
        });
    }
    let unsupported = [(auth.iam.is_some(), "iam"), (auth.gcp.is_some(), "gcp")];
    match unsupported.iter().find(|(set, _)| *set) {
        Some((_, name)) => Err(ProviderError::Config(format!(
            "Vault auth method {name:?} is not supported by secret-sync yet \
             (supported: tokenSecretRef, appRole, kubernetes, userPass, ldap, jwt, cert)"
        ))),
        None => Err(ProviderError::Config(
            "spec.provider.vault.auth must name an auth method".into(),
        )),
    }
}

/// The PEM CA bundle to trust, from `caBundle` or `caProvider` (a Secret or ConfigMap key).
///
/// Namespaces as ESO's `FetchCACertFromSource` (`runtime/esutils/utils.go`), for both types: a
/// SecretStore whose `caProvider.namespace` names another namespace is refused
/// (`errNamespaceNotAllowed`), a ClusterSecretStore without one too ("missing namespace on
/// caProvider secret"); otherwise a SecretStore reads its own namespace, a ClusterSecretStore
/// `caProvider.namespace`. A ConfigMap is read from `data` only, as `getCertFromConfigMap`.
async fn ca_pem(
    provider: &VaultProvider,
    scope: &StoreScope,
    referents: &dyn Referents,
) -> Result<Option<SecretBytes>, ProviderError> {
    if let Some(bundle) = provider.ca_bundle.as_ref().filter(|b| !b.0.is_empty()) {
        return Ok(Some(SecretBytes::new(bundle.0.clone())));
    }
    let Some(ca) = &provider.ca_provider else {
        return Ok(None);
    };
    let ns = match (scope.kind, ca.namespace.as_deref()) {
        (StoreKind::ClusterSecretStore, Some(ns)) => ns,
        (StoreKind::ClusterSecretStore, None) => {
            return Err(ProviderError::Config(
                "spec.provider.vault.caProvider: missing namespace on caProvider secret \
                 (a ClusterSecretStore must name the namespace of its CA Secret or ConfigMap)"
                    .into(),
            ));
        }
        (StoreKind::SecretStore, Some(ns)) if ns != scope.namespace => {
            return Err(ProviderError::Config(format!(
                "spec.provider.vault.caProvider.namespace {ns:?}: namespace should either be \
                 empty or match the namespace of the SecretStore for a namespaced SecretStore"
            )));
        }
        (StoreKind::SecretStore, _) => scope.namespace.as_str(),
    };
    let pem = match ca.type_ {
        CaProviderType::Secret => referents.secret_key(ns, &ca.name, &ca.key).await?,
        CaProviderType::ConfigMap => referents.config_map_key(ns, &ca.name, &ca.key).await?,
    };
    Ok(Some(pem))
}

/// A TLS Secret key, with `default_key` when the selector names none.
async fn read_ref(
    sel: Option<&SecretKeySelector>,
    default_key: &str,
    scope: &StoreScope,
    referents: &dyn Referents,
) -> Result<Option<SecretBytes>, ProviderError> {
    let Some(sel) = sel.filter(|s| !s.name.is_empty()) else {
        return Ok(None);
    };
    let key = if sel.key.is_empty() {
        default_key
    } else {
        &sel.key
    };
    let ns = scope.referent_namespace(sel.namespace.as_deref());
    Ok(Some(referents.secret_key(ns, &sel.name, key).await?))
}

fn mount_of(path: &str) -> &str {
    path.trim_matches('/')
}

/// A credential without surrounding whitespace (Secrets written by hand end in a newline).
fn trim_token(value: SecretBytes) -> SecretBytes {
    let bytes = value.expose();
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    SecretBytes::new(bytes[start..end].to_vec())
}

/// A JSON login body of string fields (the returned bytes are zeroed on drop; the transient
/// `serde_json` strings are not).
fn json_body(fields: &[(&str, &SecretBytes)]) -> Result<SecretBytes, ProviderError> {
    let mut map = serde_json::Map::new();
    for (name, value) in fields {
        let text = std::str::from_utf8(value.expose()).map_err(|_| ProviderError::Auth {
            message: format!("the {name} credential is not UTF-8"),
            source: None,
        })?;
        map.insert((*name).to_owned(), Value::String(text.to_owned()));
    }
    let body = serde_json::to_vec(&Value::Object(map)).map_err(|_| ProviderError::Auth {
        message: "cannot encode the login request".into(),
        source: None,
    })?;
    Ok(SecretBytes::new(body))
}

/// Percent-encodes a path as Go's `url.URL` does (Vault's client): unreserved characters,
/// `/` and the sub-delimiters stay, everything else becomes `%XX`.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A metadata value as text: strings as they are, anything else as JSON.
fn metadata_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Vault's `errors` strings of a failed answer's body (never values).
fn vault_errors(body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let errors = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
        .map(|errors| errors.iter().filter_map(Value::as_str));
    match errors {
        Some(errors) => errors_text(errors),
        None => errors_text(std::iter::empty()),
    }
}

/// Vault's `errors` strings as one text, each cut at 300 characters.
fn errors_text<'a>(errors: impl Iterator<Item = &'a str>) -> String {
    let errors: Vec<String> = errors.map(|e| e.chars().take(300).collect()).collect();
    if errors.is_empty() {
        "no error message".into()
    } else {
        errors.join("; ")
    }
}

/// The failure of a hand-written request's non-2xx answer.
fn failure_of(reply: &Reply) -> Option<Failure> {
    (!(200..300).contains(&reply.status)).then(|| Failure::Status {
        code: reply.status,
        errors: vault_errors(reply.body.expose()),
    })
}

/// A credential as the text vaultrs sends.
fn utf8<'a>(name: &str, value: &'a SecretBytes) -> Result<&'a str, ProviderError> {
    std::str::from_utf8(value.expose()).map_err(|_| ProviderError::Auth {
        message: format!("the {name} credential is not UTF-8"),
        source: None,
    })
}

/// Where PushSecret's marker lives (KV v2 metadata; KV v1 data).
const CUSTOM_METADATA: &str = "custom_metadata";

/// Whether a secret exists that could carry the marker: for KV v2 the data or any custom
/// metadata (a soft-deleted secret of someone else keeps its metadata), for KV v1 the data.
fn custom_present(
    version: VaultKvVersion,
    data: Option<&serde_json::Map<String, Value>>,
    custom: &serde_json::Map<String, Value>,
) -> bool {
    match version {
        VaultKvVersion::V1 => data.is_some(),
        VaultKvVersion::V2 => data.is_some() || !custom.is_empty(),
    }
}

/// What a client of Vault's event stream (`sys/events/subscribe`, a websocket) needs to connect
/// as a store: the same server, namespace, headers, token and TLS settings as its reads.
pub struct StreamAccess {
    /// `http(s)://host:port/v1/`.
    pub base: String,
    /// The store's custom headers, `X-Vault-Namespace` and `X-Vault-Token`.
    pub headers: HeaderMap,
    /// The CA bundle the store trusts (PEM), if it names one.
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate and key (PEM) the store presents, if any.
    pub identity_pem: Option<SecretBytes>,
}

impl std::fmt::Debug for StreamAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamAccess")
            .field("base", &self.base)
            .field("ca_pem", &self.ca_pem.is_some())
            .field("identity_pem", &self.identity_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl VaultClient {
    /// Logs in if needed and returns what an event-stream connection needs. The token header
    /// is marked sensitive.
    pub async fn stream_access(&self) -> Result<StreamAccess, ProviderError> {
        let (token, _) = self.current_token().await?;
        let headers = self.request_headers(Some(&token), false)?;
        Ok(StreamAccess {
            base: self.base.clone(),
            headers,
            ca_pem: self.ca_bundle.clone(),
            identity_pem: self.identity_pem.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoReferents;

    #[async_trait]
    impl Referents for NoReferents {
        async fn secret_key(
            &self,
            namespace: &str,
            name: &str,
            _: &str,
        ) -> Result<SecretBytes, crate::ReferentError> {
            Err(crate::ReferentError::SecretNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })
        }
        async fn config_map_key(
            &self,
            namespace: &str,
            name: &str,
            _: &str,
        ) -> Result<SecretBytes, crate::ReferentError> {
            Err(crate::ReferentError::ConfigMapNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })
        }
        async fn service_account_token(
            &self,
            namespace: &str,
            name: &str,
            _: &[String],
            _: i64,
        ) -> Result<SecretBytes, crate::ReferentError> {
            Err(crate::ReferentError::Token {
                namespace: namespace.into(),
                name: name.into(),
                message: "none".into(),
            })
        }
        async fn service_account_annotations(
            &self,
            _: &str,
            _: &str,
        ) -> Result<BTreeMap<String, String>, crate::ReferentError> {
            Ok(BTreeMap::new())
        }
    }

    async fn client(path: Option<&str>, version: VaultKvVersion) -> VaultClient {
        let provider = VaultProvider {
            server: "http://127.0.0.1:1".into(),
            path: path.map(Into::into),
            version,
            auth: Some(VaultAuth {
                token_secret_ref: Some(SecretKeySelector {
                    name: "t".into(),
                    key: "token".into(),
                    namespace: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let scope = StoreScope {
            kind: StoreKind::SecretStore,
            name: "s".into(),
            namespace: "ns".into(),
        };
        match VaultClient::new(&provider, &scope, Arc::new(NoReferents)).await {
            Ok(c) => c,
            Err(e) => panic!("build: {e}"),
        }
    }

    /// The URL vaultrs requests for `endpoint` through `client` (its base URL and middleware).
    fn url(client: &VaultClient, endpoint: impl rustify::endpoint::Endpoint) -> String {
        use rustify::endpoint::MiddleWare as _;
        let session = client.session(None, false).expect("session");
        let mut request = endpoint.request(&client.origin).expect("request");
        session
            .vault
            .middle
            .request(&endpoint, &mut request)
            .expect("middleware");
        // A KV v2 read without `version` ends in an empty query (`?`), which Vault ignores.
        let url = request.uri().to_string();
        url.strip_suffix('?').map(str::to_owned).unwrap_or(url)
    }

    /// The URL a read of `key` requests: KV v2 `data/`, KV v1 the key under the mount.
    fn read_url(client: &VaultClient, key: &str) -> String {
        let (mount, path) = client.kv_path(key).expect("a path");
        match client.version {
            VaultKvVersion::V2 => url(
                client,
                vaultrs::api::kv2::requests::ReadSecretRequest::builder()
                    .mount(mount)
                    .path(path)
                    .build()
                    .expect("endpoint"),
            ),
            VaultKvVersion::V1 => url(
                client,
                vaultrs::api::kv1::requests::GetSecretRequest::builder()
                    .mount(mount)
                    .path(path)
                    .build()
                    .expect("endpoint"),
            ),
        }
    }

    /// The URL a KV v2 metadata read of `key` requests.
    fn metadata_url(client: &VaultClient, key: &str) -> String {
        let (mount, path) = client.kv_path(key).expect("a path");
        url(
            client,
            vaultrs::api::kv2::requests::ReadSecretMetadataRequest::builder()
                .mount(mount)
                .path(path)
                .build()
                .expect("endpoint"),
        )
    }

    const SERVER: &str = "http://127.0.0.1:1/v1/";

    #[tokio::test]
    async fn paths_follow_eso() {
        let v2 = client(Some("secret"), VaultKvVersion::V2).await;
        assert_eq!(
            read_url(&v2, "app/db"),
            format!("{SERVER}secret/data/app/db")
        );
        assert_eq!(
            read_url(&v2, "secret/app/db"),
            format!("{SERVER}secret/data/app/db")
        );
        assert_eq!(
            read_url(&v2, "secret/data/app/db"),
            format!("{SERVER}secret/data/app/db")
        );
        assert_eq!(
            metadata_url(&v2, "app/db"),
            format!("{SERVER}secret/metadata/app/db")
        );
        let v2d = client(Some("secret/data"), VaultKvVersion::V2).await;
        assert_eq!(read_url(&v2d, "app"), format!("{SERVER}secret/data/app"));
        let v1 = client(Some("kv1"), VaultKvVersion::V1).await;
        assert_eq!(read_url(&v1, "app/db"), format!("{SERVER}kv1/app/db"));
        let none = client(None, VaultKvVersion::V2).await;
        assert_eq!(
            read_url(&none, "secret/app"),
            format!("{SERVER}secret/data/app")
        );
        assert_eq!(
            read_url(&none, "secret/data/app"),
            format!("{SERVER}secret/data/app")
        );
        assert_eq!(
            metadata_url(&none, "secret/app"),
            format!("{SERVER}secret/metadata/app")
        );
        assert_eq!(none.kv_path(""), None);
    }

    #[tokio::test]
    async fn vaultrs_urls_keep_the_server_path_and_encode_keys() {
        // Keys are percent-encoded segment by segment (the hand-written requests use
        // `escape_path`, as Go's `url.URL`).
        let v2 = client(Some("secret"), VaultKvVersion::V2).await;
        assert_eq!(
            read_url(&v2, "a b#c%d?e/é"),
            format!("{SERVER}secret/data/a%20b%23c%25d%3Fe/%C3%A9")
        );
        // A server URL with a path keeps it before `/v1/`, for reads and logins alike.
        let mut prefixed = client(Some("secret"), VaultKvVersion::V2).await;
        prefixed.origin = "https://vault.example/".into();
        prefixed.api_prefix = "proxy/vault/v1".into();
        assert_eq!(
            read_url(&prefixed, "app"),
            "https://vault.example/proxy/vault/v1/secret/data/app"
        );
        assert_eq!(
            url(
                &prefixed,
                vaultrs::api::auth::approle::requests::LoginWithApproleRequest::builder()
                    .mount("approle")
                    .role_id("r")
                    .secret_id("s")
                    .build()
                    .expect("endpoint"),
            ),
            "https://vault.example/proxy/vault/v1/auth/approle/login"
        );
    }

    #[test]
    fn paths_are_percent_encoded() {
        assert_eq!(
            escape_path("secret/data/a b#c%d"),
            "secret/data/a%20b%23c%25d"
        );
        assert_eq!(escape_path("kv/x:y@z"), "kv/x:y@z");
        assert_eq!(escape_path("kv/é"), "kv/%C3%A9");
    }

    #[test]
    fn tokens_are_trimmed() {
        let t = trim_token(SecretBytes::new(b"  abc\n".to_vec()));
        assert_eq!(t.expose(), b"abc");
        assert!(trim_token(SecretBytes::new(b"\n".to_vec())).is_empty());
    }

    #[test]
    fn a_cluster_store_without_reference_namespaces_uses_referent_auth() {
        let auth = VaultAuth {
            token_secret_ref: Some(SecretKeySelector {
                name: "t".into(),
                key: "token".into(),
                namespace: None,
            }),
            ..Default::default()
        };
        assert!(is_referent_auth(Some(&auth)));
        let auth = VaultAuth {
            token_secret_ref: Some(SecretKeySelector {
                name: "t".into(),
                key: "token".into(),
                namespace: Some("x".into()),
            }),
            ..Default::default()
        };
        assert!(!is_referent_auth(Some(&auth)));
    }

    fn ca_from(type_: CaProviderType, namespace: Option<&str>) -> VaultProvider {
        VaultProvider {
            server: "https://127.0.0.1:1".into(),
            ca_provider: Some(secret_sync_crd::provider::CaProvider {
                type_,
                name: "vault-ca".into(),
                key: "ca.crt".into(),
                namespace: namespace.map(Into::into),
            }),
            ..Default::default()
        }
    }

    fn store(kind: StoreKind, namespace: &str) -> StoreScope {
        StoreScope {
            kind,
            name: "s".into(),
            namespace: namespace.into(),
        }
    }

    /// Where `ca_pem` looked (NoReferents answers "not found" with the namespace and kind it
    /// was asked for), or the configuration error it gave instead.
    async fn ca_lookup(provider: &VaultProvider, scope: &StoreScope) -> String {
        match ca_pem(provider, scope, &NoReferents).await {
            Err(ProviderError::Referent(crate::ReferentError::SecretNotFound {
                namespace,
                ..
            })) => format!("secret in {namespace}"),
            Err(ProviderError::Referent(crate::ReferentError::ConfigMapNotFound {
                namespace,
                ..
            })) => format!("configmap in {namespace}"),
            Err(ProviderError::Config(message)) => format!("config: {message}"),
            other => panic!("unexpected: {other:?}"),
        }
    }

    #[tokio::test]
    async fn ca_provider_namespaces_follow_eso() {
        use CaProviderType::{ConfigMap, Secret};
        use StoreKind::{ClusterSecretStore, SecretStore};
        for (type_, kind) in [("secret", Secret), ("configmap", ConfigMap)] {
            // A SecretStore reads its own namespace, named or not.
            let own = store(SecretStore, "ns");
            assert_eq!(
                ca_lookup(&ca_from(kind, None), &own).await,
                format!("{type_} in ns")
            );
            assert_eq!(
                ca_lookup(&ca_from(kind, Some("ns")), &own).await,
                format!("{type_} in ns")
            );
            // ...and refuses another (ESO's errNamespaceNotAllowed).
            let other = ca_lookup(&ca_from(kind, Some("other")), &own).await;
            assert!(
                other.starts_with("config: ")
                    && other.contains("should either be empty or match the namespace"),
                "{other}"
            );
            // A ClusterSecretStore reads caProvider.namespace, whoever uses it...
            let cluster = store(ClusterSecretStore, "apps");
            assert_eq!(
                ca_lookup(&ca_from(kind, Some("certs")), &cluster).await,
                format!("{type_} in certs")
            );
            assert_eq!(
                ca_lookup(
                    &ca_from(kind, Some("certs")),
                    &store(ClusterSecretStore, "")
                )
                .await,
                format!("{type_} in certs")
            );
            // ...and must name it.
            let missing = ca_lookup(&ca_from(kind, None), &cluster).await;
            assert!(
                missing.starts_with("config: ")
                    && missing.contains("missing namespace on caProvider secret"),
                "{missing}"
            );
        }
    }

    #[tokio::test]
    async fn a_ca_bundle_wins_over_a_ca_provider() {
        // `caBundle` is base64 in the manifest ("PEM").
        let bundle: VaultProvider = serde_json::from_value(serde_json::json!({
            "server": "https://127.0.0.1:1",
            "caBundle": "UEVN",
        }))
        .expect("provider");
        let provider = VaultProvider {
            ca_bundle: bundle.ca_bundle,
            ..ca_from(CaProviderType::ConfigMap, None)
        };
        let pem = ca_pem(
            &provider,
            &store(StoreKind::SecretStore, "ns"),
            &NoReferents,
        )
        .await
        .expect("bundle");
        assert_eq!(pem.map(|p| p.expose().to_vec()), Some(b"PEM".to_vec()));
    }
}
