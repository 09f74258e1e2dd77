//! Private OpenBao dev servers for tests that need a server of their own (TLS listeners, mutual
//! TLS, an older release with a built-in auth method) rather than the stack's shared one.
//!
//! [`DevBao::builder`] makes a private directory (certificates, config, the server's log), and
//! [`DevBaoBuilder::start`] runs `bao server -dev` with root token `root` on a free port and
//! waits until `bao status` answers. The server is killed and its directory removed on drop.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::unique_name;

/// A free local port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// How to start a [`DevBao`].
#[derive(Debug)]
pub struct DevBaoBuilder {
    bin: PathBuf,
    dir: PathBuf,
    tls: bool,
    config: Option<PathBuf>,
    ports: Vec<u16>,
}

impl DevBaoBuilder {
    /// Writes `text` to `name` in the private directory; its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path.display().to_string()
    }

    /// The dev listener serves TLS (`-dev-tls`) with certificates made in the private directory;
    /// the CLI trusts their CA.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Extra server configuration (HCL), as `-config`.
    pub fn config(mut self, hcl: &str) -> Self {
        self.config = Some(PathBuf::from(self.write("config.hcl", hcl)));
        self
    }

    /// Also waits until `port` accepts connections (a listener from [`DevBaoBuilder::config`]).
    pub fn wait_for_port(mut self, port: u16) -> Self {
        self.ports.push(port);
        self
    }

    /// Starts the server and waits until it answers. Panics, with its log, if it does not.
    pub fn start(self) -> DevBao {
        let log = self.dir.join("bao.log");
        // A port picked by binding :0 may be taken before the server binds it; try a few.
        for _ in 0..3 {
            let port = free_port();
            let out = std::fs::File::create(&log).expect("bao log");
            let mut args = vec![
                "server".to_owned(),
                "-dev".to_owned(),
                "-dev-no-store-token".to_owned(),
                "-dev-root-token-id=root".to_owned(),
                format!("-dev-listen-address=127.0.0.1:{port}"),
            ];
            if self.tls {
                args.push("-dev-tls".to_owned());
                args.push(format!("-dev-tls-cert-dir={}", self.dir.display()));
            }
            if let Some(config) = &self.config {
                args.push(format!("-config={}", config.display()));
            }
            let child = Command::new(&self.bin)
                .args(&args)
                .env_remove("BAO_ADDR")
                .env_remove("VAULT_ADDR")
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("bao log"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", self.bin.display()));
            let scheme = if self.tls { "https" } else { "http" };
            let mut server = DevBao {
                child,
                addr: format!("{scheme}://127.0.0.1:{port}"),
                bin: self.bin.clone(),
                dir: None,
                ca: self.tls.then(|| self.dir.join("vault-ca.pem")),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if server.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                let up = server.ca.as_ref().is_none_or(|ca| ca.exists())
                    && server.cli(&["status"], None).is_ok()
                    && self
                        .ports
                        .iter()
                        .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
                if up {
                    server.dir = Some(self.dir);
                    return server;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            // Dropping it kills the server; the log is read again on the next failure.
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            drop(server);
            eprintln!(
                "OpenBao ({}) did not come up on port {port}:\n{text}",
                self.bin.display()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        panic!("OpenBao ({}) did not start", self.bin.display());
    }
}

/// A running private OpenBao dev server; killed, and its directory removed, when dropped.
#[derive(Debug)]
pub struct DevBao {
    child: Child,
    /// The dev listener's address.
    pub addr: String,
    bin: PathBuf,
    /// Set once started; removed on drop.
    dir: Option<PathBuf>,
    /// The dev TLS CA, for a TLS dev listener.
    ca: Option<PathBuf>,
}

impl DevBao {
    /// A server run from `bin`, with a private directory named after `prefix`.
    pub fn builder(bin: impl Into<PathBuf>, prefix: &str) -> DevBaoBuilder {
        let dir = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        DevBaoBuilder {
            bin: bin.into(),
            dir,
            tls: false,
            config: None,
            ports: Vec::new(),
        }
    }

    /// The dev TLS CA's file (see [`DevBaoBuilder::tls`]).
    pub fn ca_path(&self) -> PathBuf {
        self.ca.clone().expect("a TLS dev server")
    }

    /// Runs the CLI against the dev listener as root, `stdin` piped in when given: stdout, or
    /// stderr on failure.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", "root")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ca) = &self.ca {
            command.env("BAO_CACERT", ca);
        }
        let mut child = command.spawn().map_err(|e| e.to_string())?;
        let mut input = child.stdin.take().ok_or("no stdin")?;
        if let Some(text) = stdin {
            input
                .write_all(text.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        drop(input);
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// [`DevBao::cli`] that panics on failure.
    pub fn bao(&self, args: &[&str], stdin: Option<&str>) -> String {
        self.cli(args, stdin)
            .unwrap_or_else(|e| panic!("bao {args:?} failed: {e}"))
    }
}

impl Drop for DevBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
