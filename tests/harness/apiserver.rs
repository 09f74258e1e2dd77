//! A control plane of a test's own (the stack's `kas`: etcd and kube-apiserver in one process),
//! for faults the shared one must not suffer: killed and restarted under a controller. Its data
//! directory outlives a restart, so what was written before is there after, as with a real
//! apiserver whose etcd survives.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

pub struct Apiserver {
    dir: PathBuf,
    port: u16,
    etcd_port: u16,
    child: Option<Child>,
}

/// A loopback port that is free, and whose successor is free too (etcd's peer port).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
        let port = probe.local_addr().expect("addr").port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free ports");
}

impl Apiserver {
    /// Starts one in a fresh data directory and waits until it serves.
    pub async fn start() -> Apiserver {
        // The stack's `kas` binary.
        crate::Stack::get().await;
        let dir = std::env::temp_dir().join(crate::unique_name("kas"));
        std::fs::create_dir_all(&dir).expect("data directory");
        let mut api = Apiserver {
            dir,
            port: free_port_pair(),
            etcd_port: free_port_pair(),
            child: None,
        };
        api.spawn();
        api.wait_ready().await;
        api
    }

    fn spawn(&mut self) {
        let stack_dir = std::env::var("SECRET_SYNC_STACK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| crate::repo_root().join(".stack"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("kas.log"))
            .expect("log file");
        let child = Command::new(stack_dir.join("bin/kas"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--apiserver-port")
            .arg(self.port.to_string())
            .arg("--etcd-port")
            .arg(self.etcd_port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting kas");
        self.child = Some(child);
    }

    /// Waits until it answers `/readyz` (at most two minutes).
    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("kas exited with {status}:\n{}", self.log());
            }
            if self.dir.join("kubeconfig").exists() {
                let client = self.client().await;
                let ready = client
                    .request_text(
                        http::Request::get("/readyz")
                            .body(Vec::new())
                            .expect("request"),
                    )
                    .await;
                if ready.is_ok_and(|body| body == "ok") {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "kas not ready within 2 minutes:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A client, as any controller would build it from the kubeconfig.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = Kubeconfig::read_from(self.dir.join("kubeconfig")).expect("kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubeconfig is valid");
        kube::Client::try_from(config).expect("kube client")
    }

    /// Kills it (SIGKILL: no draining, connections just break).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data, and waits until it serves.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready().await;
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kas.log")).unwrap_or_default()
    }
}

impl Drop for Apiserver {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
