//! HashiCorp Vault and OpenBao KV changes, read from audit device lines ([`parse_audit_line`])
//! or from Vault Enterprise's event stream ([`parse_event_frame`], notes in the `stream`
//! submodule). Both give the same [`KvChange`]; the rest of these notes are about audit lines.
//!
//! An audit device (`file`, `socket`, `syslog`, format `json`) writes one JSON object per line:
//! `{time, type: "request"|"response", auth, request, response, error}`. Vault HMACs the token,
//! the accessor and every string value inside `request.data` and `response.data`; it leaves
//! `type`, `time`, `request.id`, `request.operation`, `request.path`, `request.mount_point`,
//! `request.mount_type`, `request.mount_class` and `request.namespace` in plain text. This module
//! reads only those plain fields (and `response.mount_point` / `response.mount_type` as
//! fallbacks), never `data`, so a [`KvChange`] holds nothing but path-derived names, the request
//! id and the time.
//!
//! Which entries count: only `type: "response"` entries with no `error`. Vault writes the
//! `request` entry *before* the backend runs it, so a request entry says nothing about whether
//! the write happened (a denied, failed or check-and-set-rejected write is logged as a request
//! too); the `response` entry is written after, and carries `error` when the request failed. It
//! repeats the whole `request` object, so nothing is lost by skipping request entries. This is
//! also what `pbchekin/vault-sync` and `external-secrets/reloader` key on.
//!
//! | path under the mount | operation | [`KvChangeKind`] |
//! |---|---|---|
//! | KV v2 `data/<key>` | `create`, `update` | `Write` |
//! | KV v2 `data/<key>` | `patch` | `Patch` |
//! | KV v2 `data/<key>` | `delete` | `Delete` |
//! | KV v2 `delete/<key>` | `create`, `update` | `Delete` |
//! | KV v2 `undelete/<key>` | `create`, `update` | `Undelete` |
//! | KV v2 `destroy/<key>` | `create`, `update` | `Destroy` |
//! | KV v2 `metadata/<key>` | `create`, `update`, `patch` | `MetadataWrite` |
//! | KV v2 `metadata/<key>` | `delete` | `MetadataDelete` |
//! | KV v1 `<key>` | `create`, `update` | `Write` |
//! | KV v1 `<key>` | `delete` | `Delete` |
//!
//! Everything else is [`Parsed::Ignored`]: request entries, failed requests, reads, lists,
//! `sys/*`, `auth/*` (logins), mounts that are not KV, and KV v2 paths outside the table
//! (`config`, `subkeys/…`).
//!
//! **Mounts.** The caller knows its KV mounts and says so through a [`MountTable`]. With
//! `request.mount_point` (Vault 1.14+, OpenBao) the mount is that; without it the mount is the
//! shortest `/`-bounded prefix of the path the table knows (Vault forbids nested mounts, so at
//! most one prefix is a mount). A mount the table does not know counts only when the entry's own
//! `mount_type` is `kv`; its version is then unknown and the path shape decides: a first segment
//! of `data`, `delete`, `undelete`, `destroy` or `metadata` reads as KV v2, anything else as KV
//! v1. (A KV v1 key under `data/` on such a mount is then misread; tell the table.)
//!
//! **Namespaces** (Vault Enterprise). `request.namespace` is `{id, path}` with `path` like
//! `"ns1/"` or `"ns1/ns2/"`, and empty or absent for the root namespace. `request.path` and
//! `mount_point` are relative to that namespace. The namespace is reported with its slashes
//! trimmed (`"ns1"`, `"ns1/ns2"`; `None` for root), the form VSO compares, and passed so to
//! [`MountTable::kv_version`]. Should a path still carry the namespace prefix
//! (`ns1/secret/data/x` in namespace `ns1/`) while the mount point does not, the prefix is
//! dropped.
//!
//! Lines must be bare JSON: strip a device `prefix` or a syslog header first. The `jsonx`
//! format is not read.

use serde_json::Value;

use crate::ParseError;
use crate::json::{self, Object};

mod stream;
#[cfg(test)]
mod tests;

pub use stream::{MAX_EVENT_FRAME_BYTES, parse_event_frame};

/// The largest audit line accepted, in bytes (1 MiB). A KV write line is 2–4 KiB plus the
/// HMACs of its values.
pub const MAX_AUDIT_LINE_BYTES: usize = 1024 * 1024;

/// The KV secrets engine version of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvVersion {
    /// KV v1 (`kv` with `version=1`, or the legacy `generic` engine): `<mount>/<key>`.
    V1,
    /// KV v2 (versioned): `<mount>/data/<key>`, `<mount>/metadata/<key>`, ….
    V2,
}

/// The KV mounts the caller knows.
pub trait MountTable {
    /// The KV version of `mount` (no leading or trailing `/`, e.g. `"secret"`) in `namespace`
    /// (slashes trimmed, e.g. `"ns1/ns2"`; `None` for the root namespace), or `None` when it is
    /// not a KV mount the caller knows.
    fn kv_version(&self, namespace: Option<&str>, mount: &str) -> Option<KvVersion>;
}

/// Any `Fn(namespace, mount) -> Option<KvVersion>` is a mount table.
impl<F> MountTable for F
where
    F: Fn(Option<&str>, &str) -> Option<KvVersion>,
{
    fn kv_version(&self, namespace: Option<&str>, mount: &str) -> Option<KvVersion> {
        self(namespace, mount)
    }
}

/// What happened to the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvChangeKind {
    /// A new value (KV v1 write, KV v2 `data/` create or update).
    Write,
    /// KV v2 `data/` patch: some fields of the current value changed.
    Patch,
    /// The current (or a listed) version was soft-deleted (KV v2 `data/` delete, `delete/`), or
    /// the KV v1 key was deleted.
    Delete,
    /// KV v2 `undelete/`: soft-deleted versions are readable again.
    Undelete,
    /// KV v2 `destroy/`: versions were destroyed for good.
    Destroy,
    /// KV v2 `metadata/` write or patch (custom metadata, `max_versions`, `cas_required`, …).
    MetadataWrite,
    /// KV v2 `metadata/` delete: the key and all its versions are gone.
    MetadataDelete,
}

/// One change to one KV secret, from one audit line or one event frame.
///
/// Holds no value, HMAC'd or not: only names taken from the request (or event) path, the
/// request (or event) id and the time.
#[derive(Debug, Clone, PartialEq)]
pub struct KvChange {
    /// The mount, without slashes at either end (`"secret"`, `"team/kv"`).
    pub mount: String,
    /// The secret's key under the mount, without the KV v2 `data/`-style segment
    /// (`"prod/db-credentials"`): what an ExternalSecret's `remoteRef.key` names.
    pub key: String,
    /// What happened.
    pub kind: KvChangeKind,
    /// The mount's KV version: for audit lines the mount table's, else `None` (see the module
    /// notes); for event frames the event type's (`kv-v1/…`, `kv-v2/…`), always known.
    pub version: Option<KvVersion>,
    /// The Vault Enterprise namespace, slashes trimmed (`"ns1/ns2"`); `None` for root.
    pub namespace: Option<String>,
    /// The entry's (or frame's) `time`, when it is RFC 3339.
    pub time: Option<jiff::Timestamp>,
    /// `request.id`, shared by the request and response entries of one request; for event
    /// frames the event id.
    pub request_id: Option<String>,
}

/// The provider kind Vault changes are for: [`crate::Location::kind`].
pub const KIND: &str = "vault";

/// Where a Vault store reads or a Vault change happened: the server (without a trailing `/`;
/// `None` when unknown, as for an audit line), the namespace (slashes trimmed, empty for root;
/// `None` for any) and the KV mount (`None` for any).
pub fn location(
    server: Option<&str>,
    namespace: Option<&str>,
    mount: Option<&str>,
) -> crate::Location {
    crate::Location::new(KIND)
        .with("server", server.map(|s| s.trim_end_matches('/')))
        .with("namespace", namespace.map(|n| n.trim_matches('/')))
        .with("mount", mount.map(|m| m.trim_matches('/')))
}

impl KvChange {
    /// The normalized change, from `server` when the feed knows it.
    pub fn to_change(&self, server: Option<&str>) -> crate::Change {
        crate::Change {
            place: crate::Place::At(location(
                server,
                Some(self.namespace.as_deref().unwrap_or_default()),
                Some(&self.mount),
            )),
            keys: vec![self.key.clone()],
            event_time: self.time,
            id: self.request_id.clone(),
        }
    }
}

/// The outcome of parsing one well-formed audit line or event frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A change to a KV secret.
    Change(KvChange),
    /// Not a change; the reason is a fixed phrase, safe to log and to use as a metric label.
    Ignored(&'static str),
}

/// KV v2 path segments that name a secret's sub-resource.
const V2_SEGMENTS: [&str; 5] = ["data", "delete", "undelete", "destroy", "metadata"];

/// Parses one audit device line (a trailing newline is fine).
///
/// Errors on input over [`MAX_AUDIT_LINE_BYTES`], malformed JSON, a line that is not an object,
/// a `type` that is missing or not a string, and on a response entry without `request`,
/// `request.path` or `request.operation`. Everything that is well formed but not a successful
/// KV change is [`Parsed::Ignored`].
pub fn parse_audit_line(line: &[u8], mounts: &dyn MountTable) -> Result<Parsed, ParseError> {
    let entry = json::parse("audit line", line, MAX_AUDIT_LINE_BYTES)?;
    let entry = json::object(&entry, "audit line")?;
    match json::required_str(entry, "type", "type")? {
        "response" => {}
        "request" => return Ok(Parsed::Ignored("request entry, outcome not yet known")),
        _ => return Ok(Parsed::Ignored("unknown entry type")),
    }
    if failed(entry) {
        return Ok(Parsed::Ignored("request failed"));
    }
    let request = json::required_object(entry, "request", "request")?;
    let operation = json::required_str(request, "operation", "request.operation")?;
    let path = json::required_str(request, "path", "request.path")?;
    let response = json::opt_object(entry, "response");

    if !matches!(operation, "create" | "update" | "patch" | "delete") {
        return Ok(Parsed::Ignored("not a write operation"));
    }
    let namespace = namespace(request);
    let path = path.trim_start_matches('/');
    if first_segment(path) == "sys" {
        return Ok(Parsed::Ignored("sys path"));
    }
    if first_segment(path) == "auth" {
        return Ok(Parsed::Ignored("auth path"));
    }

    let mount_point = json::opt_str(request, "mount_point")
        .or_else(|| response.and_then(|r| json::opt_str(r, "mount_point")))
        .map(|m| m.trim_matches('/'))
        .filter(|m| !m.is_empty());
    let mount_type = json::opt_str(request, "mount_type")
        .or_else(|| response.and_then(|r| json::opt_str(r, "mount_type")));

    let Some((mount, rest)) = locate(path, mount_point, namespace, mounts) else {
        return Ok(Parsed::Ignored("not a KV mount"));
    };
    let version = mounts.kv_version(namespace, mount);
    if version.is_none() && !matches!(mount_type, Some("kv" | "generic")) {
        return Ok(Parsed::Ignored("not a KV mount"));
    }
    let version = version.or(match mount_type {
        Some("generic") => Some(KvVersion::V1),
        _ => None,
    });

    let v2_shape = match version {
        Some(KvVersion::V2) => true,
        Some(KvVersion::V1) => false,
        None => V2_SEGMENTS.contains(&first_segment(rest)),
    };
    let classified = if v2_shape {
        classify_v2(operation, rest)
    } else {
        classify_v1(operation, rest)
    };
    let (kind, key) = match classified {
        Ok(found) => found,
        Err(reason) => return Ok(Parsed::Ignored(reason)),
    };
    if key.trim_matches('/').is_empty() {
        return Ok(Parsed::Ignored("no secret key in path"));
    }

    Ok(Parsed::Change(KvChange {
        mount: mount.to_owned(),
        key: key.to_owned(),
        kind,
        version,
        namespace: namespace.map(str::to_owned),
        time: json::opt_str(entry, "time").and_then(|t| t.parse().ok()),
        request_id: json::opt_str(request, "id")
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
    }))
}

/// Whether the entry records a failed request: a non-empty `error` (Vault writes `""` or leaves
/// it out on success; any other non-null value is taken as failure).
fn failed(entry: &Object) -> bool {
    match entry.get("error") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// `request.namespace.path` (or a bare string), slashes trimmed; `None` for root or empty.
fn namespace(request: &Object) -> Option<&str> {
    let raw = match request.get("namespace") {
        Some(Value::Object(ns)) => json::opt_str(ns, "path"),
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    }?;
    Some(raw.trim_matches('/')).filter(|ns| !ns.is_empty())
}

/// The text before the first `/`.
fn first_segment(path: &str) -> &str {
    path.split('/').next().unwrap_or_default()
}

/// `path` minus `prefix` and the `/` after it, when `path` is `prefix` or starts with `prefix/`.
fn under<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix('/')
    }
}

/// Splits `path` into (mount, rest under the mount); see the module notes.
fn locate<'a>(
    path: &'a str,
    mount_point: Option<&'a str>,
    namespace: Option<&str>,
    mounts: &dyn MountTable,
) -> Option<(&'a str, &'a str)> {
    // A path that still carries the namespace prefix, while the mount point does not.
    let ns_relative = namespace.and_then(|ns| under(path, ns));
    if let Some(mount) = mount_point {
        if let Some(rest) = under(path, mount) {
            return Some((mount, rest));
        }
        if let Some(rest) = ns_relative.and_then(|p| under(p, mount)) {
            return Some((mount, rest));
        }
        // A mount point that carries the namespace prefix.
        let mount = namespace.and_then(|ns| under(mount, ns))?;
        return under(path, mount).map(|rest| (mount, rest));
    }
    probe(path, namespace, mounts).or_else(|| probe(ns_relative?, namespace, mounts))
}

/// The shortest `/`-bounded prefix of `path` that `mounts` knows.
fn probe<'a>(
    path: &'a str,
    namespace: Option<&str>,
    mounts: &dyn MountTable,
) -> Option<(&'a str, &'a str)> {
    path.match_indices('/').find_map(|(at, _)| {
        let mount = &path[..at];
        mounts.kv_version(namespace, mount)?;
        Some((mount, &path[at + 1..]))
    })
}

type Classified<'a> = Result<(KvChangeKind, &'a str), &'static str>;

fn classify_v2<'a>(operation: &str, rest: &'a str) -> Classified<'a> {
    let Some((segment, key)) = rest.split_once('/') else {
        return Err("not a KV v2 secret path");
    };
    let write = matches!(operation, "create" | "update");
    let kind = match (segment, operation) {
        ("data", "create" | "update") => KvChangeKind::Write,
        ("data", "patch") => KvChangeKind::Patch,
        ("data", "delete") => KvChangeKind::Delete,
        ("delete", _) if write => KvChangeKind::Delete,
        ("undelete", _) if write => KvChangeKind::Undelete,
        ("destroy", _) if write => KvChangeKind::Destroy,
        ("metadata", "create" | "update" | "patch") => KvChangeKind::MetadataWrite,
        ("metadata", "delete") => KvChangeKind::MetadataDelete,
        (segment, _) if V2_SEGMENTS.contains(&segment) => {
            return Err("operation does not change a KV v2 secret");
        }
        _ => return Err("not a KV v2 secret path"),
    };
    Ok((kind, key))
}

fn classify_v1<'a>(operation: &str, key: &'a str) -> Classified<'a> {
    match operation {
        "create" | "update" => Ok((KvChangeKind::Write, key)),
        "delete" => Ok((KvChangeKind::Delete, key)),
        _ => Err("operation does not change a KV v1 secret"),
    }
}
