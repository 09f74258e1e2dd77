//! Calls to the signed change webhook, as a sender makes them.

use secret_sync_events::webhook;

/// A POST of `body` to `url`, signed with `secret` at the unix second `at`.
pub fn signed(
    http: &reqwest::Client,
    url: &str,
    secret: &[u8],
    body: &str,
    at: i64,
) -> reqwest::RequestBuilder {
    let timestamp = at.to_string();
    http.post(url)
        .header(webhook::TIMESTAMP_HEADER, &timestamp)
        .header(
            webhook::SIGNATURE_HEADER,
            webhook::sign(secret, &timestamp, body.as_bytes()),
        )
        .body(body.to_owned())
}

/// [`signed`] now.
pub fn signed_now(
    http: &reqwest::Client,
    url: &str,
    secret: &[u8],
    body: &str,
) -> reqwest::RequestBuilder {
    signed(http, url, secret, body, jiff::Timestamp::now().as_second())
}
