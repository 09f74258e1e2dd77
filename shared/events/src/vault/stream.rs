//! Vault Enterprise event notifications: one websocket text frame of
//! `GET /v1/sys/events/subscribe/<pattern>?json=true` → [`Parsed`]. The notes are on
//! [`parse_event_frame`], which `vault` re-exports.

use serde_json::Value;

use super::{KvChange, KvChangeKind, KvVersion, Parsed, V2_SEGMENTS, under};
use crate::ParseError;
use crate::json::{self, Object};

#[cfg(test)]
mod tests;

/// The largest event frame accepted, in bytes (1 MiB, as for audit lines). A KV event frame is
/// under 1 KiB.
pub const MAX_EVENT_FRAME_BYTES: usize = 1024 * 1024;

/// Parses one websocket text frame of Vault's event stream
/// (`GET /v1/sys/events/subscribe/<pattern>?json=true`; Vault Enterprise, and Vault 1.13 and
/// 1.14 behind `-experiment events.alpha1`). OpenBao removed events: read its audit device.
///
/// Each frame is one CloudEvents JSON object. What this reads of it:
///
/// ```json
/// {"id": "a3be9fb1-…", "time": "2023-09-12T15:19:49.394915-07:00", "type": "*", …,
///  "data": {"event_type": "kv-v2/data-write", "namespace": "ns1/",
///           "plugin_info": {"mount_path": "secret/", …},
///           "event": {"id": "a3be9fb1-…",
///                     "metadata": {"path": "secret/data/foo", "modified": "true", …}}}}
/// ```
///
/// The top-level `type` is the subscription pattern, not the event's type; `data.event_type` is.
/// Metadata values are all strings (`"modified": "true"`), and none of them is a secret value:
/// the KV plugin sends the path, the operation and version numbers only.
///
/// | `data.event_type` | [`KvChangeKind`] | `metadata.path` under the mount |
/// |---|---|---|
/// | `kv-v1/write` | `Write` | `<key>` |
/// | `kv-v1/delete` | `Delete` | `<key>` |
/// | `kv-v2/data-write` | `Write` | `data/<key>` |
/// | `kv-v2/data-patch` | `Patch` | `data/<key>` |
/// | `kv-v2/data-delete` | `Delete` | `data/<key>` |
/// | `kv-v2/delete` | `Delete` | `delete/<key>` |
/// | `kv-v2/destroy` | `Destroy` | `destroy/<key>` |
/// | `kv-v2/undelete` | `Undelete` | `undelete/<key>` |
/// | `kv-v2/metadata-write`, `kv-v2/metadata-patch` | `MetadataWrite` | `metadata/<key>` |
/// | `kv-v2/metadata-delete` | `MetadataDelete` | `metadata/<key>` |
///
/// Everything else is [`Parsed::Ignored`]: `kv-v2/config-write` (mount settings, no key), event
/// types of other plugins (`database/rotate`, …), KV event types this table does not know, and
/// events whose `metadata.modified` is false (Vault Secrets Operator skips these too). An absent
/// `modified` counts as true: the Vault 1.13 format had none, and an extra sync is cheaper than a
/// missed one.
///
/// **Paths.** Since Vault 1.14 the event bus prepends the plugin's mount to `metadata.path`
/// (`path.Join(mount_path, path)`), so `path` is `secret/data/foo` for the mount `secret/`; the
/// 1.13 format sent it mount-relative (`data/foo`). Both are read: the mount is
/// `data.plugin_info.mount_path`, and when `path` is not under it (or, for KV v2, what follows
/// the mount is not a sub-resource segment) `path` is read as mount-relative. The segment the
/// event type names is tried first, then any KV v2 segment: a path that contradicts its event
/// type still names the secret. Both the mount and the path are relative to the event's namespace; should
/// either still carry the namespace prefix (`ns1/secret/…` in namespace `ns1/`), the prefix is
/// dropped, as the audit parser does.
///
/// **Namespace.** `data.namespace` (`"ns1/"`, `"/ns1"`, `"ns1/ns2/"`; `""` or absent for root) is
/// reported with its slashes trimmed, `None` for root: the form VSO compares.
///
/// **Version.** The event type's prefix names the KV version (`kv-v1` → [`KvVersion::V1`],
/// `kv-v2` → [`KvVersion::V2`]), so no mount table is needed.
///
/// **Errors** on input over [`MAX_EVENT_FRAME_BYTES`], malformed JSON, a frame that is not an
/// object, a missing `data` or `data.event_type`, and, for a KV event that counts, a missing
/// `data.event`, `data.event.metadata`, `data.event.metadata.path`, `data.plugin_info` or
/// `data.plugin_info.mount_path` (or an empty mount). Everything else that is well formed but
/// not a KV change is [`Parsed::Ignored`].
pub fn parse_event_frame(frame: &[u8]) -> Result<Parsed, ParseError> {
    let frame = json::parse("event frame", frame, MAX_EVENT_FRAME_BYTES)?;
    let frame = json::object(&frame, "event frame")?;
    let data = json::required_object(frame, "data", "data")?;
    let event_type = json::required_str(data, "event_type", "data.event_type")?;
    let (version, kind) = match classify(event_type) {
        Ok(classified) => classified,
        Err(reason) => return Ok(Parsed::Ignored(reason)),
    };

    let event = json::required_object(data, "event", "data.event")?;
    let metadata = json::required_object(event, "metadata", "data.event.metadata")?;
    if !modified(metadata) {
        return Ok(Parsed::Ignored("event did not modify the secret"));
    }
    let path = json::required_str(metadata, "path", "data.event.metadata.path")?;
    let plugin_info = json::required_object(data, "plugin_info", "data.plugin_info")?;
    let mount = json::required_str(plugin_info, "mount_path", "data.plugin_info.mount_path")?;
    let mount = mount.trim_matches('/');
    if mount.is_empty() {
        return Err(ParseError::Invalid {
            field: "data.plugin_info.mount_path",
            problem: "empty",
        });
    }
    let namespace = namespace(data);

    let Some((mount, key)) = locate(path, mount, namespace, version, v2_segments(kind)) else {
        return Ok(Parsed::Ignored("path does not match the event type"));
    };
    let key = key.trim_matches('/');
    if key.is_empty() {
        return Ok(Parsed::Ignored("no secret key in path"));
    }

    Ok(Parsed::Change(KvChange {
        mount: mount.to_owned(),
        key: key.to_owned(),
        kind,
        version: Some(version),
        namespace: namespace.map(str::to_owned),
        time: json::opt_str(frame, "time").and_then(|t| t.parse().ok()),
        request_id: [json::opt_str(frame, "id"), json::opt_str(event, "id")]
            .into_iter()
            .flatten()
            .find(|id| !id.is_empty())
            .map(str::to_owned),
    }))
}

/// The KV version and change kind of `event_type`, or why it is ignored.
fn classify(event_type: &str) -> Result<(KvVersion, KvChangeKind), &'static str> {
    use KvChangeKind::*;
    let (version, kind) = match event_type {
        "kv-v1/write" => (KvVersion::V1, Write),
        "kv-v1/delete" => (KvVersion::V1, Delete),
        "kv-v2/data-write" => (KvVersion::V2, Write),
        "kv-v2/data-patch" => (KvVersion::V2, Patch),
        "kv-v2/data-delete" | "kv-v2/delete" => (KvVersion::V2, Delete),
        "kv-v2/destroy" => (KvVersion::V2, Destroy),
        "kv-v2/undelete" => (KvVersion::V2, Undelete),
        "kv-v2/metadata-write" | "kv-v2/metadata-patch" => (KvVersion::V2, MetadataWrite),
        "kv-v2/metadata-delete" => (KvVersion::V2, MetadataDelete),
        "kv-v2/config-write" => return Err("KV mount configuration change"),
        _ if event_type.starts_with("kv-v1/") || event_type.starts_with("kv-v2/") => {
            return Err("unknown KV event type");
        }
        _ => return Err("not a KV event"),
    };
    Ok((version, kind))
}

/// The KV v2 sub-resource segments `metadata.path` carries for `kind`: `data/` for the
/// `data-*` events, `delete/` for `kv-v2/delete`, and so on.
fn v2_segments(kind: KvChangeKind) -> &'static [&'static str] {
    match kind {
        KvChangeKind::Write | KvChangeKind::Patch => &["data"],
        KvChangeKind::Delete => &["data", "delete"],
        KvChangeKind::Undelete => &["undelete"],
        KvChangeKind::Destroy => &["destroy"],
        KvChangeKind::MetadataWrite | KvChangeKind::MetadataDelete => &["metadata"],
    }
}

/// Whether `metadata.modified` says the event changed the secret. Only an explicit false (a
/// spelling Go's `strconv.ParseBool`, which Vault uses, reads as false, or a JSON `false`) says
/// no; absent or unreadable counts as modified.
fn modified(metadata: &Object) -> bool {
    match metadata.get("modified") {
        Some(Value::Bool(modified)) => *modified,
        Some(Value::String(s)) => {
            !matches!(s.as_str(), "false" | "False" | "FALSE" | "f" | "F" | "0")
        }
        _ => true,
    }
}

/// `data.namespace`, slashes trimmed; `None` for root, empty, absent or not a string.
fn namespace(data: &Object) -> Option<&str> {
    json::opt_str(data, "namespace")
        .map(|ns| ns.trim_matches('/'))
        .filter(|ns| !ns.is_empty())
}

/// Splits `path` into (mount, key) for an event on `mount`; see the module notes.
///
/// The readings, in order: `path` under `mount` (Vault 1.14+); then with the namespace prefix
/// dropped from the path, the mount, or both; then `path` as mount-relative (Vault 1.13), as is
/// and without the namespace prefix. For KV v2 a reading counts only when what follows the mount
/// starts with a sub-resource segment, which tells a 1.13 `data/foo` on a mount named `data`
/// from a 1.14+ `data/data/foo`; the segments the event type names are tried first, then any
/// (a path that contradicts its event type still names the secret, and an extra sync is cheaper
/// than a missed one).
fn locate<'a>(
    path: &'a str,
    mount: &'a str,
    namespace: Option<&str>,
    version: KvVersion,
    segments: &[&str],
) -> Option<(&'a str, &'a str)> {
    let path = path.trim_start_matches('/');
    let ns_path = namespace.and_then(|ns| under(path, ns));
    let ns_mount = namespace
        .and_then(|ns| under(mount, ns))
        .filter(|m| !m.is_empty());
    let readings = [
        Some(mount).zip(under(path, mount)),
        Some(mount).zip(ns_path.and_then(|p| under(p, mount))),
        ns_mount.and_then(|m| Some(m).zip(under(path, m))),
        ns_mount.and_then(|m| Some(m).zip(under(ns_path?, m))),
        Some((mount, path)),
        Some(mount).zip(ns_path),
    ];
    let readings = readings.iter().flatten();
    match version {
        KvVersion::V1 => readings.copied().next(),
        KvVersion::V2 => {
            let strip = |allowed: &[&str]| {
                readings.clone().find_map(|&(mount, rest)| {
                    let (first, key) = rest.split_once('/')?;
                    allowed.contains(&first).then_some((mount, key))
                })
            };
            strip(segments).or_else(|| strip(&V2_SEGMENTS))
        }
    }
}
