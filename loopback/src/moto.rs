//! A DynamoDB-compatible server on loopback: moto in server mode (PyPI `moto[server]`, installed
//! by `scripts/moto.sh` into `target/moto/venv`, or into `$MOTO_PYTHON`; see [`python`]), started
//! on a free port and killed when dropped. The function reaches it through
//! `AWS_ENDPOINT_URL_DYNAMODB`, with the real SDK client, signing and all.
//!
//! Tables are made here with plain awsJson1_0 calls (`DynamoDB_20120810.CreateTable`), as the
//! template makes its one table: partition key `pk` (String), on demand, TTL on `expiresAt`.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to start (it imports a lot of Python).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// moto's own server application, served by waitress (PyPI, pinned in `scripts/moto.sh`) with
/// one worker thread rather than by werkzeug's development server, for two reasons. Requests are
/// handled one at a time: werkzeug answers each on a thread of its own and moto's DynamoDB backend
/// takes no lock, so two conditional writes to one item could both pass their condition (seen in
/// the lease test), where DynamoDB applies writes to an item one at a time and the function relies
/// on that. And connections stay open between requests, as DynamoDB's do: werkzeug closes every
/// one, which made the benchmark pay a TLS handshake per call.
const SERIALIZED_SERVER: &str = r#"
import sys
from moto.server import DomainDispatcherApplication, create_backend_app
from waitress import serve
app = DomainDispatcherApplication(create_backend_app)
serve(app, host=sys.argv[1], port=int(sys.argv[2]), threads=1, _quiet=True)
"#;

/// The Python that runs moto: `$MOTO_PYTHON` when set (and not empty); else the python of this
/// checkout's venv, `target/moto/venv`, that `scripts/moto.sh` makes, run directly (a venv's own
/// path, not the interpreter it links to, is what makes it the venv's); else `python3` from PATH.
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("MOTO_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(python);
    }
    // This checkout's: the path is compiled in, so a clone elsewhere uses its own venv.
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/moto/venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

pub struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Moto {
    /// Starts moto's server (see [`SERIALIZED_SERVER`]) with [`python`] on a free port and waits
    /// until it answers.
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let python = python();
        let child = Command::new(&python)
            .args(["-c", SERIALIZED_SERVER, "127.0.0.1", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start moto with {} (run scripts/moto.sh): {e}", python.display()));
        let mut moto = Moto {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let until = Instant::now() + START_TIMEOUT;
        loop {
            if moto.call("ListTables", &json!({})).is_ok() {
                return moto;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto exited at start ({status}) under {}: is moto[server] installed? \
                     run scripts/moto.sh",
                    python.display()
                );
            }
            assert!(
                Instant::now() < until,
                "moto did not answer within {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The endpoint URL, for `AWS_ENDPOINT_URL_DYNAMODB`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates the function's table under `name` and turns its TTL on.
    pub fn create_table(&self, name: &str) {
        self.call(
            "CreateTable",
            &json!({
                "TableName": name,
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
            }),
        )
        .unwrap_or_else(|e| panic!("CreateTable {name}: {e}"));
        self.call(
            "UpdateTimeToLive",
            &json!({
                "TableName": name,
                "TimeToLiveSpecification": {"Enabled": true, "AttributeName": "expiresAt"},
            }),
        )
        .unwrap_or_else(|e| panic!("UpdateTimeToLive {name}: {e}"));
    }

    /// One DynamoDB call (`operation` as in `X-Amz-Target: DynamoDB_20120810.<operation>`);
    /// the answer's JSON, or the error's status and body.
    pub fn call(&self, operation: &str, input: &Value) -> Result<Value, String> {
        let body = input.to_string();
        let mut conn = TcpStream::connect(self.addr).map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        write!(
            conn,
            "POST / HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-amz-json-1.0\r\n\
             x-amz-target: DynamoDB_20120810.{operation}\r\n\
             authorization: AWS4-HMAC-SHA256 Credential=AKIDLOOPBACK/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).map_err(|e| e.to_string())?;
        let (head, payload) = answer.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
        let ok = head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200");
        // Whatever the framing (moto may answer chunked), the JSON is the payload's object.
        let json = payload
            .find('{')
            .and_then(|s| payload.rfind('}').map(|e| &payload[s..=e]))
            .unwrap_or("{}");
        if ok {
            serde_json::from_str(json).map_err(|e| format!("{e}: {json}"))
        } else {
            Err(format!("{}: {json}", head.lines().next().unwrap_or_default()))
        }
    }

    /// The item under `pk` in `table`, in DynamoDB's JSON, if there is one.
    pub fn get_item(&self, table: &str, pk: &str) -> Option<Value> {
        let out = self
            .call(
                "GetItem",
                &json!({"TableName": table, "Key": {"pk": {"S": pk}}, "ConsistentRead": true}),
            )
            .expect("GetItem");
        out.get("Item").cloned()
    }

    /// Writes `item` (DynamoDB's JSON) as it is: for tests that plant bad items.
    pub fn put_item(&self, table: &str, item: Value) {
        self.call("PutItem", &json!({"TableName": table, "Item": item}))
            .expect("PutItem");
    }

    /// Stops moto as an outage would (the port then refuses connections).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}
