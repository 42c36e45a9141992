//! A TCP proxy the test controls, to cut the link between two cluster nodes and heal it again: `cut` closes
//! every connection through it and refuses new ones (accepted, then closed at once) until `heal`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (o, c) = (open.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().unwrap().push(task);
            }
        });
        Proxy {
            addr,
            open,
            connections,
            accept,
        }
    }

    /// Close every connection through the proxy and refuse new ones. The connections close as their tasks end:
    /// [`Proxy::open_connections`] counts them until then.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        let mut connections = self.connections.lock().unwrap();
        connections.retain(|task| !task.is_finished());
        for task in connections.iter() {
            task.abort();
        }
    }

    /// Let connections through again.
    pub fn heal(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Connections through the proxy still open (those a cut aborted included, until they have closed).
    pub fn open_connections(&self) -> usize {
        self.connections
            .lock()
            .unwrap()
            .iter()
            .filter(|t| !t.is_finished())
            .count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
