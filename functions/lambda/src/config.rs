//! Configuration from environment variables (see the crate documentation for the list).

use std::path::PathBuf;

use serde::Deserialize;

use crate::eks::EksCluster;

/// What the Lambda does for an affected ExternalSecret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Sync it with the shared engine, as the controller would: the Lambda writes the Secret.
    Push,
    /// Annotate it with `external-secrets.io/force-sync`; the in-cluster controller syncs.
    Nudge,
}

/// Where a target cluster is and how to authenticate to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterSource {
    /// `KUBECONFIG` (or `~/.kube/config`), else the in-cluster service account: kube's inference.
    Ambient,
    /// A kubeconfig file, with its current context or the named one.
    Kubeconfig {
        path: PathBuf,
        context: Option<String>,
    },
    /// An EKS cluster, authenticated with a token minted from the Lambda's AWS credentials.
    Eks(EksCluster),
}

/// One target cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// A name for logs; unique among the targets.
    pub name: String,
    pub source: ClusterSource,
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    pub clusters: Vec<ClusterConfig>,
    /// Watch one namespace only; `None` watches all.
    pub namespace: Option<String>,
    /// How many ExternalSecrets one invocation syncs (or annotates) at once.
    pub concurrency: usize,
    /// Stores whose `spec.controller` names another class are left alone (push mode).
    pub controller_class: String,
    /// ESO's flood gate: refuse stores that are not Ready (push mode).
    pub flood_gate: bool,
    /// Push PushSecrets again when a change names a key they pushed (push mode;
    /// `SECRET_SYNC_PUSH_SECRETS`, default true; needs the PushSecret rights of
    /// `infra/lambda/rbac.yaml`).
    pub push_secrets: bool,
}

/// A configuration error; the Lambda does not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {message}")]
    Invalid { var: &'static str, message: String },
}

fn invalid(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        message: message.into(),
    }
}

/// One entry of `SECRET_SYNC_CLUSTERS`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterEntry {
    name: String,
    #[serde(default)]
    kubeconfig: Option<PathBuf>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    eks: Option<EksCluster>,
}

pub const DEFAULT_CONCURRENCY: usize = 16;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `var` (the environment, or a map in tests).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mode = match set("SECRET_SYNC_MODE").as_deref().map(str::trim) {
            None | Some("push") => Mode::Push,
            Some("nudge") => Mode::Nudge,
            Some(other) => {
                return Err(invalid(
                    "SECRET_SYNC_MODE",
                    format!("{other:?} is neither \"push\" nor \"nudge\""),
                ));
            }
        };
        let clusters = match set("SECRET_SYNC_CLUSTERS") {
            None => vec![ClusterConfig {
                name: "default".into(),
                source: ClusterSource::Ambient,
            }],
            Some(json) => parse_clusters(&json)?,
        };
        let concurrency = match set("SECRET_SYNC_CONCURRENCY") {
            None => DEFAULT_CONCURRENCY,
            Some(n) => match n.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(invalid(
                        "SECRET_SYNC_CONCURRENCY",
                        format!("{n:?} is not a positive integer"),
                    ));
                }
            },
        };
        let flag = |var: &'static str| match set(var).as_deref().map(str::trim) {
            None | Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(invalid(var, format!("{other:?} is neither true nor false"))),
        };
        let flood_gate = flag("SECRET_SYNC_FLOOD_GATE")?;
        let push_secrets = flag("SECRET_SYNC_PUSH_SECRETS")?;
        Ok(Self {
            mode,
            clusters,
            namespace: set("SECRET_SYNC_NAMESPACE").map(|n| n.trim().to_owned()),
            concurrency,
            controller_class: set("SECRET_SYNC_CONTROLLER_CLASS")
                .map(|c| c.trim().to_owned())
                .unwrap_or_else(|| "default".into()),
            flood_gate,
            push_secrets,
        })
    }
}

fn parse_clusters(json: &str) -> Result<Vec<ClusterConfig>, ConfigError> {
    const VAR: &str = "SECRET_SYNC_CLUSTERS";
    let entries: Vec<ClusterEntry> = serde_json::from_str(json).map_err(|e| {
        invalid(
            VAR,
            format!("not a JSON list of {{name, kubeconfig | eks}}: {e}"),
        )
    })?;
    if entries.is_empty() {
        return Err(invalid(VAR, "names no cluster"));
    }
    let mut clusters = Vec::with_capacity(entries.len());
    for entry in entries {
        if clusters
            .iter()
            .any(|c: &ClusterConfig| c.name == entry.name)
        {
            return Err(invalid(
                VAR,
                format!("cluster name {:?} appears twice", entry.name),
            ));
        }
        let source = match (entry.kubeconfig, entry.eks) {
            (Some(path), None) => ClusterSource::Kubeconfig {
                path,
                context: entry.context,
            },
            (None, Some(eks)) if entry.context.is_none() => ClusterSource::Eks(eks),
            (None, None) if entry.context.is_none() => ClusterSource::Ambient,
            _ => {
                return Err(invalid(
                    VAR,
                    format!(
                        "cluster {:?}: give either \"kubeconfig\" (and optionally \"context\") or \"eks\"",
                        entry.name
                    ),
                ));
            }
        };
        clusters.push(ClusterConfig {
            name: entry.name,
            source,
        });
    }
    Ok(clusters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_set_means_push_into_the_ambient_cluster() {
        let c = config(&[]).expect("valid");
        assert_eq!(c.mode, Mode::Push);
        assert_eq!(
            c.clusters,
            [ClusterConfig {
                name: "default".into(),
                source: ClusterSource::Ambient
            }]
        );
        assert_eq!(c.concurrency, DEFAULT_CONCURRENCY);
        assert!(c.flood_gate);
        assert!(c.push_secrets);
        assert_eq!(c.controller_class, "default");
        assert_eq!(c.namespace, None);
    }

    #[test]
    fn clusters_are_read_from_a_json_list() {
        let c = config(&[
            ("SECRET_SYNC_MODE", "nudge"),
            (
                "SECRET_SYNC_CLUSTERS",
                r#"[{"name":"a","kubeconfig":"/etc/a.yaml","context":"ctx"},
                    {"name":"b","eks":{"cluster":"prod","region":"eu-west-1",
                     "endpoint":"https://x.eks.amazonaws.com","caData":"Y2E="}}]"#,
            ),
        ])
        .expect("valid");
        assert_eq!(c.mode, Mode::Nudge);
        assert_eq!(
            c.clusters[0].source,
            ClusterSource::Kubeconfig {
                path: "/etc/a.yaml".into(),
                context: Some("ctx".into())
            }
        );
        assert_eq!(
            c.clusters[1].source,
            ClusterSource::Eks(EksCluster {
                cluster: "prod".into(),
                region: "eu-west-1".into(),
                endpoint: "https://x.eks.amazonaws.com".into(),
                ca_data: "Y2E=".into(),
            })
        );
    }

    #[test]
    fn invalid_settings_are_refused_with_the_variable_named() {
        for vars in [
            [("SECRET_SYNC_MODE", "pull")],
            [("SECRET_SYNC_CONCURRENCY", "0")],
            [("SECRET_SYNC_FLOOD_GATE", "maybe")],
            [("SECRET_SYNC_CLUSTERS", "[]")],
            [(
                "SECRET_SYNC_CLUSTERS",
                r#"[{"name":"a","kubeconfig":"k","eks":{"cluster":"c","region":"r","endpoint":"e","caData":"d"}}]"#,
            )],
            [("SECRET_SYNC_CLUSTERS", r#"[{"name":"a"},{"name":"a"}]"#)],
            [("SECRET_SYNC_CLUSTERS", r#"[{"name":"a","kubecfg":"typo"}]"#)],
        ] {
            let err = config(&vars).expect_err("invalid").to_string();
            assert!(err.starts_with(vars[0].0), "{err}");
        }
    }
}
