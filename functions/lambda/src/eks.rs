//! Authenticating to an EKS cluster's API server as the Lambda's IAM role.
//!
//! EKS accepts a bearer token that is a presigned STS `GetCallerIdentity` URL: the API server
//! (aws-iam-authenticator) calls the URL and maps the ARN STS answers with to a Kubernetes user.
//! The token is built exactly as `aws eks get-token` and aws-iam-authenticator's `GetWithSTS` do:
//!
//! 1. `GET https://sts.<region>.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15`,
//!    with the header `x-k8s-aws-id: <cluster name>` added before signing, so that it is among
//!    `X-Amz-SignedHeaders` (the authenticator rejects tokens that did not sign it);
//! 2. SigV4-presigned into the query string with `X-Amz-Expires=60`, with the credentials of
//!    the SDK's default chain (the Lambda's execution role); a session token is carried as
//!    `X-Amz-Security-Token`;
//! 3. `k8s-aws-v1.` + base64url (no padding) of the presigned URL.
//!
//! STS ignores `X-Amz-Expires` for this: the API server accepts the token for 15 minutes after
//! its `X-Amz-Date`. [`TokenSource`] re-mints it once it is [`REMINT_AFTER`] old (the CLI reports
//! 14 minutes), and [`client`] builds a kube client whose every request carries a fresh one: the
//! reflectors' watches and the engine's writes share one client for the life of the process.
//!
//! The role must be mapped in the cluster: an access entry (or an `aws-auth` `mapRoles` line) for
//! the execution role's ARN, with RBAC as the function's README lists.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request};
use serde::Deserialize;
use tower::{BoxError, Layer, Service};

/// What every EKS token starts with.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";

/// The header naming the cluster, signed into the token.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";

/// `X-Amz-Expires` of the presigned URL, as the CLI and aws-iam-authenticator set it.
pub const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);

/// How old a token may get before the next request mints a new one. The API server accepts a
/// token for 15 minutes; the margin covers clock skew and a request that is slow to arrive.
pub const REMINT_AFTER: Duration = Duration::from_secs(10 * 60);

/// How long after a failed mint the next attempt waits (requests meanwhile go out with the old
/// token, if any, and fail as retryable if the API server refuses it).
const RETRY_MINT_AFTER: Duration = Duration::from_secs(5);

/// An EKS cluster the Lambda writes to. `endpoint` and `caData` are `eks:DescribeCluster`'s
/// `cluster.endpoint` and `cluster.certificateAuthority.data`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EksCluster {
    /// The cluster's name, signed into the token (`x-k8s-aws-id`).
    pub cluster: String,
    /// The cluster's region: the STS endpoint and signing region of the token.
    pub region: String,
    /// The API server URL, `https://<id>.<gr7>.<region>.eks.amazonaws.com`.
    pub endpoint: String,
    /// The cluster CA bundle, base64-encoded PEM, as `DescribeCluster` returns it.
    pub ca_data: String,
}

/// Why a token or client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EksError {
    #[error("no AWS credentials provider is configured (the SDK's default chain found none)")]
    NoCredentialsProvider,
    #[error("loading AWS credentials failed: {0}")]
    Credentials(#[source] aws_credential_types::provider::error::CredentialsError),
    #[error("presigning the STS GetCallerIdentity request failed: {0}")]
    Sign(String),
    #[error("the cluster configuration for EKS cluster {cluster:?} is invalid: {message}")]
    Config { cluster: String, message: String },
    #[error("building the Kubernetes client for EKS cluster {cluster:?} failed: {source}")]
    Client {
        cluster: String,
        #[source]
        source: kube::Error,
    },
}

/// The STS host for a region: the regional endpoint, as aws-iam-authenticator uses with a
/// region set (`sts.cn-north-1.amazonaws.com.cn` in the China partition).
pub fn sts_host(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("sts.{region}.amazonaws.com.cn")
    } else {
        format!("sts.{region}.amazonaws.com")
    }
}

/// Mints a token for `cluster` with `credentials`, signed as of `at`.
pub fn token(
    cluster: &str,
    region: &str,
    credentials: &Credentials,
    at: SystemTime,
) -> Result<String, EksError> {
    let url = format!(
        "https://{}/?Action=GetCallerIdentity&Version=2011-06-15",
        sts_host(region)
    );
    let mut request = Request::builder()
        .method("GET")
        .uri(&url)
        .header(CLUSTER_ID_HEADER, cluster)
        .body(())
        .map_err(|e| EksError::Sign(format!("cluster name is not a valid header value: {e}")))?;
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| EksError::Sign(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        "GET",
        &url,
        std::iter::once((CLUSTER_ID_HEADER, cluster)),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| EksError::Sign(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| EksError::Sign(e.to_string()))?
        .into_parts();
    instructions.apply_to_request_http1x(&mut request);
    let presigned = request.uri().to_string();
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned)
    ))
}

/// A token, and when it was minted.
struct Minted {
    header: HeaderValue,
    at: SystemTime,
}

/// Mints tokens for one cluster and keeps the current one. Wall-clock ages: the API server
/// judges a token by its `X-Amz-Date`, and a frozen Lambda's monotonic clock is no guide to that.
pub struct TokenSource {
    cluster: String,
    region: String,
    credentials: SharedCredentialsProvider,
    current: Mutex<Option<Minted>>,
    failed_at: Mutex<Option<SystemTime>>,
}

impl TokenSource {
    pub fn new(cluster: &EksCluster, credentials: SharedCredentialsProvider) -> Self {
        Self {
            cluster: cluster.cluster.clone(),
            region: cluster.region.clone(),
            credentials,
            current: Mutex::new(None),
            failed_at: Mutex::new(None),
        }
    }

    fn age(at: SystemTime) -> Duration {
        SystemTime::now().duration_since(at).unwrap_or_default()
    }

    /// Whether the next request should mint first: there is no token, or it is
    /// [`REMINT_AFTER`] old, and no attempt failed in the last few seconds.
    pub fn needs_mint(&self) -> bool {
        let stale = match &*self.current.lock().unwrap_or_else(|e| e.into_inner()) {
            None => true,
            Some(minted) => Self::age(minted.at) >= REMINT_AFTER,
        };
        let backing_off = self
            .failed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| Self::age(at) < RETRY_MINT_AFTER);
        stale && !backing_off
    }

    /// Mints a new token now.
    pub async fn mint(&self) -> Result<(), EksError> {
        let result = self.mint_inner().await;
        let mut failed_at = self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        *failed_at = result.is_err().then(SystemTime::now);
        result
    }

    async fn mint_inner(&self) -> Result<(), EksError> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(EksError::Credentials)?;
        let at = SystemTime::now();
        let token = token(&self.cluster, &self.region, &credentials, at)?;
        let mut header = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|e| EksError::Sign(format!("token is not a valid header value: {e}")))?;
        header.set_sensitive(true);
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Minted { header, at });
        Ok(())
    }

    /// The `Authorization` header value of the current token, if one was minted.
    pub fn header(&self) -> Option<HeaderValue> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|m| m.header.clone())
    }
}

/// Adds `Authorization: Bearer <EKS token>` to every request, minting a new token first when
/// the current one is old.
#[derive(Clone)]
pub struct BearerLayer {
    source: Arc<TokenSource>,
}

impl BearerLayer {
    pub fn new(source: Arc<TokenSource>) -> Self {
        Self { source }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            source: self.source.clone(),
            minting: None,
        }
    }
}

type MintFuture = Pin<Box<dyn Future<Output = Result<(), EksError>> + Send>>;

/// See [`BearerLayer`]. Mints in `poll_ready`, so `call` only reads the current token.
pub struct BearerService<S> {
    inner: S,
    source: Arc<TokenSource>,
    minting: Option<MintFuture>,
}

impl<S, B> Service<Request<B>> for BearerService<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.minting.is_none() && self.source.needs_mint() {
            let source = self.source.clone();
            self.minting = Some(Box::pin(async move { source.mint().await }));
        }
        if let Some(minting) = self.minting.as_mut() {
            let result = ready!(minting.as_mut().poll(cx));
            self.minting = None;
            // Not an error of the service: kube's client would stop for good. The request goes
            // out with the old token (or none), and the API server's 401 fails it, retryably.
            if let Err(e) = result {
                tracing::warn!(cluster = %self.source.cluster, error = %e, "minting an EKS token failed");
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if let Some(header) = self.source.header() {
            request.headers_mut().insert(AUTHORIZATION, header);
        }
        let future = self.inner.call(request);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

/// A kube client for an EKS cluster: the endpoint and CA from `cluster`, every request
/// authenticated with a token from `credentials`, re-minted when old.
pub async fn client(
    cluster: &EksCluster,
    credentials: SharedCredentialsProvider,
) -> Result<kube::Client, EksError> {
    let config_error = |message: String| EksError::Config {
        cluster: cluster.cluster.clone(),
        message,
    };
    // Through an in-memory kubeconfig, so kube parses the CA bundle as it parses any other.
    let kubeconfig: kube::config::Kubeconfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{ "name": "eks", "cluster": {
            "server": cluster.endpoint, "certificate-authority-data": cluster.ca_data } }],
        "users": [{ "name": "lambda", "user": {} }],
        "contexts": [{ "name": "eks", "context": { "cluster": "eks", "user": "lambda" } }],
        "current-context": "eks",
    }))
    .map_err(|e| config_error(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| config_error(e.to_string()))?;
    let source = Arc::new(TokenSource::new(cluster, credentials));
    let builder =
        kube::client::ClientBuilder::try_from(config).map_err(|source| EksError::Client {
            cluster: cluster.cluster.clone(),
            source,
        })?;
    Ok(builder.with_layer(&BearerLayer::new(source)).build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::collections::BTreeMap;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SESSION: &str = "FwoGZXIvYXdzEBYaDH+session/token==";

    fn creds() -> Credentials {
        Credentials::new("AKIDEXAMPLE", SECRET, Some(SESSION.into()), None, "test")
    }

    fn at() -> SystemTime {
        // 2023-11-14T22:13:20Z
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn sha256(data: &[u8]) -> Vec<u8> {
        Sha256::digest(data).to_vec()
    }

    /// HMAC-SHA256 (RFC 2104), written out so the check does not share code with the signer.
    fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&sha256(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let inner: Vec<u8> = block
            .iter()
            .map(|b| b ^ 0x36)
            .chain(message.iter().copied())
            .collect();
        let outer: Vec<u8> = block
            .iter()
            .map(|b| b ^ 0x5c)
            .chain(sha256(&inner))
            .collect();
        sha256(&outer)
    }

    fn percent_decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
                let h = u8::from_str_radix(&s[i + 1..i + 3], 16).expect("hex escape");
                out.push(h);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("utf-8")
    }

    /// RFC 3986 encoding as SigV4 specifies it: everything but unreserved characters.
    fn sigv4_encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    /// The token's URL and its query parameters, decoded.
    fn decode(token: &str) -> (String, BTreeMap<String, String>) {
        let encoded = token.strip_prefix(TOKEN_PREFIX).expect("prefix");
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded)
                .expect("base64url without padding"),
        )
        .expect("utf-8");
        let query = url.split_once('?').expect("a query").1;
        let params = query
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("k=v");
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        (url, params)
    }

    #[test]
    fn the_hmac_used_by_these_tests_matches_rfc_4231_and_the_aws_signing_key_example() {
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // docs.aws.amazon.com, "Examples of how to derive a signing key for Signature Version 4".
        let k_date = hmac(format!("AWS4{SECRET}").as_bytes(), b"20120215");
        let k_region = hmac(&k_date, b"us-east-1");
        let k_service = hmac(&k_region, b"iam");
        assert_eq!(
            hex(&hmac(&k_service, b"aws4_request")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn a_token_is_a_presigned_get_caller_identity_url_signing_the_cluster_header() {
        let token = token("my-cluster", "eu-west-1", &creds(), at()).expect("token");
        assert!(token.starts_with("k8s-aws-v1."));
        assert!(!token.contains('='), "no padding");
        assert!(
            !token.contains('+') && !token.contains('/'),
            "url-safe alphabet"
        );
        let (url, params) = decode(&token);
        assert!(
            url.starts_with("https://sts.eu-west-1.amazonaws.com/?"),
            "{url}"
        );
        assert_eq!(params["Action"], "GetCallerIdentity");
        assert_eq!(params["Version"], "2011-06-15");
        assert_eq!(params["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(params["X-Amz-Expires"], "60");
        assert_eq!(params["X-Amz-Date"], "20231114T221320Z");
        assert_eq!(
            params["X-Amz-Credential"],
            "AKIDEXAMPLE/20231114/eu-west-1/sts/aws4_request"
        );
        assert_eq!(params["X-Amz-SignedHeaders"], "host;x-k8s-aws-id");
        assert_eq!(params["X-Amz-Security-Token"], SESSION);
        // Only the keys aws-iam-authenticator's verifier allows.
        let allowed = [
            "Action",
            "Version",
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-Security-Token",
            "X-Amz-Signature",
            "X-Amz-SignedHeaders",
        ];
        for key in params.keys() {
            assert!(allowed.contains(&key.as_str()), "unexpected key {key}");
        }
    }

    #[test]
    fn the_token_signature_verifies_when_recomputed_from_the_sigv4_specification() {
        let cluster = "my-cluster";
        let region = "us-east-1";
        let token = token(cluster, region, &creds(), at()).expect("token");
        let (_, params) = decode(&token);
        let mut canonical_query: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k.as_str() != "X-Amz-Signature")
            .map(|(k, v)| (sigv4_encode(k), sigv4_encode(v)))
            .collect();
        canonical_query.sort();
        let canonical_query = canonical_query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let canonical_request = format!(
            "GET\n/\n{canonical_query}\nhost:sts.{region}.amazonaws.com\nx-k8s-aws-id:{cluster}\n\nhost;x-k8s-aws-id\n{}",
            hex(&sha256(b""))
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n20231114T221320Z\n20231114/{region}/sts/aws4_request\n{}",
            hex(&sha256(canonical_request.as_bytes()))
        );
        let k_date = hmac(format!("AWS4{SECRET}").as_bytes(), b"20231114");
        let k_region = hmac(&k_date, region.as_bytes());
        let k_service = hmac(&k_region, b"sts");
        let k_signing = hmac(&k_service, b"aws4_request");
        let expected = hex(&hmac(&k_signing, string_to_sign.as_bytes()));
        assert_eq!(params["X-Amz-Signature"], expected);
    }

    #[test]
    fn a_token_signed_without_a_session_token_carries_none() {
        let creds = Credentials::new("AKIDEXAMPLE", SECRET, None, None, "test");
        let (_, params) = decode(&token("c", "us-east-1", &creds, at()).expect("token"));
        assert!(!params.contains_key("X-Amz-Security-Token"));
    }

    #[test]
    fn china_regions_use_the_china_sts_host() {
        assert_eq!(sts_host("cn-north-1"), "sts.cn-north-1.amazonaws.com.cn");
        assert_eq!(sts_host("us-west-2"), "sts.us-west-2.amazonaws.com");
    }

    /// Records the Authorization header of each request.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Option<String>>>>);

    impl Service<Request<()>> for Recorder {
        type Response = ();
        type Error = BoxError;
        type Future = std::future::Ready<Result<(), BoxError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, request: Request<()>) -> Self::Future {
            let auth = request
                .headers()
                .get(AUTHORIZATION)
                .map(|v| v.to_str().expect("ascii").to_owned());
            self.0.lock().expect("lock").push(auth);
            std::future::ready(Ok(()))
        }
    }

    fn eks_cluster() -> EksCluster {
        EksCluster {
            cluster: "c".into(),
            region: "us-east-1".into(),
            endpoint: "https://example.invalid".into(),
            ca_data: String::new(),
        }
    }

    #[tokio::test]
    async fn every_request_carries_a_token_reminted_once_it_is_old() {
        let recorder = Recorder::default();
        let source = Arc::new(TokenSource::new(
            &eks_cluster(),
            SharedCredentialsProvider::new(creds()),
        ));
        let mut service = BearerLayer::new(source.clone()).layer(recorder.clone());
        let mut send = async || {
            futures::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .expect("ready");
            service.call(Request::new(())).await.expect("sent");
        };
        send().await;
        send().await;
        if let Some(minted) = source.current.lock().expect("lock").as_mut() {
            minted.at = SystemTime::now() - REMINT_AFTER - Duration::from_secs(1);
        }
        tokio::time::sleep(Duration::from_millis(1100)).await; // X-Amz-Date has 1 s resolution
        send().await;
        let seen = recorder.0.lock().expect("lock").clone();
        assert_eq!(seen.len(), 3);
        let tokens: Vec<&str> = seen
            .iter()
            .map(|t| t.as_deref().expect("a token"))
            .collect();
        assert!(tokens.iter().all(|t| t.starts_with("Bearer k8s-aws-v1.")));
        assert_eq!(tokens[0], tokens[1], "a fresh token is reused");
        assert_ne!(tokens[1], tokens[2], "an old one is replaced");
    }

    #[tokio::test]
    async fn a_failed_mint_sends_the_request_without_a_token_instead_of_failing_the_client() {
        let recorder = Recorder::default();
        // A provider that always fails.
        #[derive(Debug)]
        struct Failing;
        impl ProvideCredentials for Failing {
            fn provide_credentials<'a>(
                &'a self,
            ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
            where
                Self: 'a,
            {
                aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                    aws_credential_types::provider::error::CredentialsError::not_loaded(
                        "no credentials here",
                    ),
                ))
            }
        }
        let source = Arc::new(TokenSource::new(
            &eks_cluster(),
            SharedCredentialsProvider::new(Failing),
        ));
        let mut service = BearerLayer::new(source.clone()).layer(recorder.clone());
        futures::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .expect("still ready");
        service.call(Request::new(())).await.expect("sent");
        assert_eq!(recorder.0.lock().expect("lock").as_slice(), [None]);
        assert!(!source.needs_mint(), "no new attempt right after a failure");
    }

    #[tokio::test]
    async fn a_token_is_minted_once_and_again_only_when_old() {
        let source = TokenSource::new(&eks_cluster(), SharedCredentialsProvider::new(creds()));
        assert!(source.needs_mint());
        assert!(source.header().is_none());
        source.mint().await.expect("mint");
        assert!(!source.needs_mint());
        let header = source.header().expect("a token");
        assert!(header.is_sensitive());
        assert!(
            header
                .to_str()
                .expect("ascii")
                .starts_with("Bearer k8s-aws-v1.")
        );
        // Age it past the re-mint threshold.
        if let Some(minted) = source.current.lock().expect("lock").as_mut() {
            minted.at = SystemTime::now() - REMINT_AFTER - Duration::from_secs(1);
        }
        assert!(source.needs_mint());
    }
}
