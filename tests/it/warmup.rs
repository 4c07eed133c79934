//! The connection made during start-up (src/aws/warmup.rs): the compiled binary connects before its
//! first event (to HealthLake, or with the shared tier on to the status table), and its first
//! request uses that connection instead of opening another. HealthLake and moto's DynamoDB sit
//! behind TCP relays that count connections.

use crate::binary::{posted, rest_event, Function, DEADLINE};
use crate::common::DS;
use loopback::healthlake::StandIn;
use loopback::moto::Moto;
use loopback::runtime_api::RuntimeApi;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Relays every connection to `backend`; returns its address and the count of connections.
fn counting_relay(backend: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
    let addr = listener.local_addr().expect("relay address");
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            counted.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(backend) else {
                continue;
            };
            let pipe = |mut from: TcpStream, mut to: TcpStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            };
            pipe(
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            pipe(server, client);
        }
    });
    (addr, count)
}

fn wait_for(count: &AtomicUsize, at_least: usize, within: Duration) -> usize {
    let until = Instant::now() + within;
    while count.load(Ordering::SeqCst) < at_least && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    count.load(Ordering::SeqCst)
}

#[test]
fn connects_at_start_up_and_the_first_request_uses_that_connection() {
    let healthlake = StandIn::start();
    healthlake.put_job(DS, "job-warm", "IN_PROGRESS");
    let (relay, connections) = counting_relay(healthlake.addr());
    let api = RuntimeApi::start();
    let endpoint = format!("http://{relay}");
    let _function = Function::start(
        &api,
        &healthlake,
        &[("AWS_ENDPOINT_URL_HEALTHLAKE", &endpoint)],
        &["AWS_ENDPOINT_URL_HEALTHLAKE"],
    );
    assert!(
        api.wait_for_first_poll(Duration::from_secs(10)).is_some(),
        "the function starts"
    );
    assert_eq!(
        wait_for(&connections, 1, Duration::from_secs(5)),
        1,
        "one connection to HealthLake before any event"
    );

    let resp = posted(
        api.invoke(rest_event("warm-1", "GET", DS, "job-warm"), DEADLINE),
        "first request",
    );
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(healthlake.calls_for("job-warm"), 1);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "the first request went over the connection made at start-up"
    );
}

#[test]
fn an_endpoint_that_cannot_be_reached_at_start_up_does_not_stop_start_up() {
    // A port nothing listens on: the pre-connect fails, start-up goes on, and the request
    // connects (and fails) as it would have: a 502 problem, not an invocation error.
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let healthlake = StandIn::start();
    let api = RuntimeApi::start();
    let endpoint = format!("http://{closed}");
    let _function = Function::start(
        &api,
        &healthlake,
        &[
            ("AWS_ENDPOINT_URL_HEALTHLAKE", &endpoint),
            ("UPSTREAM_MAX_ATTEMPTS", "1"),
        ],
        &["AWS_ENDPOINT_URL_HEALTHLAKE"],
    );
    assert!(
        api.wait_for_first_poll(Duration::from_secs(10)).is_some(),
        "start-up is not stopped by the failed pre-connect"
    );
    let resp = posted(
        api.invoke(rest_event("warm-2", "GET", DS, "job-any"), DEADLINE),
        "request to an unreachable HealthLake",
    );
    assert_eq!(resp["statusCode"], 502, "{resp}");
}

#[test]
fn with_the_status_table_it_connects_to_dynamodb_which_the_first_request_calls_first() {
    let moto = Moto::start();
    moto.create_table("export-job-status");
    let (table_relay, table_connections) = counting_relay(moto.addr());
    let healthlake = StandIn::start();
    healthlake.put_job(DS, "job-warm-table", "IN_PROGRESS");
    let (healthlake_relay, healthlake_connections) = counting_relay(healthlake.addr());
    let api = RuntimeApi::start();
    let (table_url, healthlake_url) = (
        format!("http://{table_relay}"),
        format!("http://{healthlake_relay}"),
    );
    let _function = Function::start(
        &api,
        &healthlake,
        &[
            ("STATUS_TABLE", "export-job-status"),
            ("AWS_ENDPOINT_URL_DYNAMODB", &table_url),
            ("AWS_ENDPOINT_URL_HEALTHLAKE", &healthlake_url),
            // Room for a slow moto on a loaded machine: this test is about connections.
            ("TABLE_TIMEOUT_MS", "3000"),
        ],
        &["AWS_ENDPOINT_URL_HEALTHLAKE"],
    );
    assert!(
        api.wait_for_first_poll(Duration::from_secs(10)).is_some(),
        "the function starts"
    );
    assert_eq!(
        wait_for(&table_connections, 1, Duration::from_secs(5)),
        1,
        "one connection to the table before any event"
    );
    assert_eq!(
        healthlake_connections.load(Ordering::SeqCst),
        0,
        "none to HealthLake: with the table, a cold environment mostly answers from it"
    );

    // A job no environment has read: the table, then HealthLake, then the table again.
    let resp = posted(
        api.invoke(rest_event("warm-3", "GET", DS, "job-warm-table"), DEADLINE),
        "first request",
    );
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(healthlake.calls_for("job-warm-table"), 1);
    assert_eq!(
        table_connections.load(Ordering::SeqCst),
        1,
        "every table call of the first request went over the connection made at start-up"
    );
    assert_eq!(healthlake_connections.load(Ordering::SeqCst), 1);
}
