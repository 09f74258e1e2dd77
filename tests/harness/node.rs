//! The opt-in node of the local stack (`infra/local/node/node`: containerd, runc and a kubelet
//! joined to the stack's apiserver), with the controller image on it, built from this test
//! profile's binary by `infra/image/build`. Brought up once per process; `infra/local/stack
//! down` stops it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};
use tokio::sync::OnceCell;

use crate::{Stack, repo_root};

/// The image the node runs, as `infra/image/build` tags it.
pub const IMAGE_REPOSITORY: &str = "docker.io/library/secret-sync-controller";
pub const IMAGE_TAG: &str = "dev";

pub struct Node;

static NODE: OnceCell<Node> = OnceCell::const_new();

/// `target/<profile>` of this test binary, and the profile's name.
fn profile_dir() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps");
    let dir = deps.parent().expect("target/<profile>").to_path_buf();
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_owned();
    (dir, profile)
}

/// Builds this test profile's controller binary; its path.
pub(crate) fn build_controller() -> anyhow::Result<PathBuf> {
    let (dir, profile) = profile_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args([
        "build",
        "-p",
        "secret-sync-controller",
        "--bin",
        "secret-sync-controller",
    ]);
    if profile == "release" {
        build.arg("--release");
    }
    run("cargo build of the controller", &mut build)?;
    Ok(dir.join("secret-sync-controller"))
}

pub(crate) fn run(what: &str, command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .current_dir(repo_root())
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed with {status}");
    }
    Ok(())
}

impl Node {
    /// The node, Ready, with the image of this profile's controller binary imported.
    pub async fn get() -> &'static Node {
        Stack::get().await;
        NODE.get_or_init(|| async {
            tokio::task::spawn_blocking(Node::start)
                .await
                .expect("node start task")
                .unwrap_or_else(|e| panic!("the node is unavailable: {e:#}"))
        })
        .await
    }

    fn start() -> anyhow::Result<Node> {
        let (dir, profile) = profile_dir();
        let target = dir.parent().context("target dir")?.to_path_buf();
        build_controller()?;
        let profile_name = if profile == "release" {
            "release"
        } else {
            "debug"
        };
        run(
            "infra/image/build",
            Command::new(repo_root().join("infra/image/build"))
                .args(["--profile", profile_name, "--no-compile"])
                .env("CARGO_TARGET_DIR", &target)
                .env("TAG", format!("secret-sync-controller:{IMAGE_TAG}")),
        )?;
        let node = repo_root().join("infra/local/node/node");
        run("infra/local/node/node up", Command::new(&node).arg("up"))?;
        run(
            "infra/local/node/node import",
            Command::new(&node)
                .arg("import")
                .arg(target.join("image/secret-sync-controller.tar")),
        )?;
        Ok(Node)
    }
}
