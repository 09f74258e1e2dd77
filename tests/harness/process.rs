//! The controller as a process of its own: this test profile's `secret-sync-controller` binary
//! (built once per test process), started with the stack's environment and the test's flags,
//! its log kept in a file the test reads, killed (SIGKILL) or stopped (SIGTERM) at will.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tokio::sync::OnceCell;

use crate::node::build_controller;
use crate::{Stack, unique_name};

static BINARY: OnceCell<PathBuf> = OnceCell::const_new();

/// The controller binary of this test profile, built once per test process.
pub async fn controller_binary() -> PathBuf {
    BINARY
        .get_or_init(|| async {
            tokio::task::spawn_blocking(|| build_controller().unwrap_or_else(|e| panic!("{e:#}")))
                .await
                .expect("build task")
        })
        .await
        .clone()
}

/// A free port on 127.0.0.1 (bound, then let go).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// One running controller process.
pub struct ControllerProcess {
    child: Child,
    pub log: PathBuf,
    pub metrics: SocketAddr,
}

impl ControllerProcess {
    /// Starts the controller with `args` (plus `--metrics-addr` on a free port, text logs at
    /// debug level into a file of its own).
    pub async fn start(name: &str, args: &[String]) -> Self {
        let stack = Stack::get().await;
        let binary = controller_binary().await;
        let metrics = free_addr();
        let log = std::env::temp_dir().join(format!("{}.log", unique_name(name)));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary)
            .args([
                "--metrics-addr",
                &metrics.to_string(),
                "--live-addr",
                &metrics.to_string(),
                "--log-format",
                "json",
                "--log-level",
                "debug",
            ])
            .args(args)
            // The stack's clients' settings; not its demo controller's (`SECRET_SYNC_*`).
            .envs(stack.vars().filter(|(k, _)| !k.starts_with("SECRET_SYNC_")))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("start the controller");
        Self {
            child,
            log,
            metrics,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no goodbye, no lease released.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits for it to exit; its exit status.
    pub async fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.kill();
        None
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
