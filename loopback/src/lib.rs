//! Loopback stand-ins for what the function talks to in AWS, for tests, the local run and the
//! benchmark. Nothing here ever reaches a real AWS endpoint.

pub mod healthlake;
pub mod moto;
pub mod runtime_api;

use std::net::SocketAddr;
use tokio::sync::oneshot;

/// Binds `addr` and accepts connections on a thread of its own with a current-thread runtime, so
/// that a server works under sync and async tests alike; `on_connection` runs inside that runtime
/// for each accepted connection (and may `tokio::spawn`). Returns the bound address and the sender
/// that stops it, when fired or dropped.
pub fn spawn_server<F>(
    name: &str,
    addr: SocketAddr,
    mut on_connection: F,
) -> (SocketAddr, oneshot::Sender<()>)
where
    F: FnMut(tokio::net::TcpStream) + Send + 'static,
{
    let listener = std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("{name}: bind {addr}: {e}"));
    listener.set_nonblocking(true).expect("non-blocking listener");
    let addr = listener.local_addr().expect("local address");
    let (stop, mut stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => {
                            if let Ok((stream, _)) = accepted {
                                on_connection(stream);
                            }
                        }
                    }
                }
            });
        })
        .expect("spawn the server thread");
    (addr, stop)
}
