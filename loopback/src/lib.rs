//! Loopback stand-ins for what the function talks to in AWS, for tests, the local run and the
//! benchmark. Nothing here ever reaches a real AWS endpoint.

pub mod healthlake;
pub mod runtime_api;

use std::future::Future;
use std::net::SocketAddr;
use tokio::sync::oneshot;

/// Binds `addr` and runs `serve` on a thread of its own with a current-thread runtime, so that a
/// server works under sync and async tests alike. Returns the bound address and the sender that
/// stops it (when fired or dropped, `serve`'s receiver completes).
pub fn spawn_server<F, Fut>(name: &str, addr: SocketAddr, serve: F) -> (SocketAddr, oneshot::Sender<()>)
where
    F: FnOnce(std::net::TcpListener, oneshot::Receiver<()>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let listener = std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("{name}: bind {addr}: {e}"));
    listener.set_nonblocking(true).expect("non-blocking listener");
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(serve(listener, stopped));
        })
        .expect("spawn the server thread");
    (addr, stop)
}
