//! A TCP proxy a test can cut, to make a real server unreachable for a while: cut, its port
//! refuses connections and every open connection is closed, as when the server stops; restored,
//! it listens on the same port again. The server behind it keeps running and keeps its state
//! (moto loses everything when it restarts), and the test still reaches it directly.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    serving: Mutex<Option<(CancellationToken, JoinHandle<()>)>>,
}

impl Proxy {
    /// Listens on a free loopback port, forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let proxy = Proxy {
            addr,
            target,
            serving: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    /// `http://<address>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening and closes every open connection.
    pub async fn cut(&self) {
        let serving = self.serving.lock().expect("proxy").take();
        if let Some((stop, task)) = serving {
            stop.cancel();
            let _ = task.await;
        }
    }

    /// Listens again, on the same port.
    pub async fn restore(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("rebinding the proxy on {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let target = self.target;
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let connections = tokio_util::task::TaskTracker::new();
                loop {
                    let accepted = tokio::select! {
                        () = stop.cancelled() => break,
                        accepted = listener.accept() => accepted,
                    };
                    let Ok((inbound, _)) = accepted else { continue };
                    let stop = stop.clone();
                    connections.spawn(async move {
                        let Ok(outbound) = TcpStream::connect(target).await else {
                            return;
                        };
                        let (mut inbound, mut outbound) = (inbound, outbound);
                        tokio::select! {
                            () = stop.cancelled() => {}
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        }
                    });
                }
                drop(listener);
                connections.close();
                connections.wait().await;
            }
        });
        *self.serving.lock().expect("proxy") = Some((stop, task));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some((stop, _)) = self.serving.get_mut().expect("proxy").take() {
            stop.cancel();
        }
    }
}
