//! A real DynamoDB-compatible server on loopback for tests: moto in server mode (installed, pinned,
//! by scripts/moto.sh), on a free port, killed when dropped. Tests write items with the real SDK
//! client; the function reads them through `AWS_ENDPOINT_URL_DYNAMODB`.

use aws_credential_types::Credentials;
use aws_sdk_dynamodb::config::Region;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto imports its whole service catalogue at start-up: seconds on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Moto {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Moto {
    /// Starts `python3 -m moto.server` on 127.0.0.1 and waits until it accepts connections.
    pub fn start() -> Moto {
        // A free port: bound by us, released, then bound by moto (a race only with another
        // process taking the same port in between).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::env::temp_dir().join(format!("moto-{}-{port}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).expect("moto's log file");
        let mut child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("start python3 -m moto.server (install it with scripts/moto.sh)");
        let until = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            let exited = child.try_wait().expect("query moto");
            if exited.is_some() || Instant::now() > until {
                let _ = child.kill();
                panic!(
                    "moto did not start on {addr} ({exited:?}); install it with scripts/moto.sh:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        // The function's own loader (its HTTPS client), pointed at moto with static credentials.
        let sdk = rt.block_on(
            export_job_status::upstream::sdk_config_loader(&Default::default())
                .endpoint_url(format!("http://{addr}"))
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("AKIDMOTO", "moto-secret", None, None, "tests"))
                .load(),
        );
        Moto {
            child,
            addr,
            log,
            rt,
            client: Client::new(&sdk),
        }
    }

    /// For `AWS_ENDPOINT_URL_DYNAMODB`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates the status table's schema: partition key `pk` (String), nothing else.
    pub fn create_table(&self, name: &str) {
        self.rt
            .block_on(
                self.client
                    .create_table()
                    .table_name(name)
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name("pk")
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .unwrap(),
                    )
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name("pk")
                            .key_type(KeyType::Hash)
                            .build()
                            .unwrap(),
                    )
                    .billing_mode(BillingMode::PayPerRequest)
                    .send(),
            )
            .expect("create the table");
    }

    pub fn put_item(&self, table: &str, item: HashMap<String, AttributeValue>) {
        self.rt
            .block_on(
                self.client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(item))
                    .send(),
            )
            .expect("put an item");
    }

    pub fn delete_item(&self, table: &str, pk: &str) {
        self.rt
            .block_on(
                self.client
                    .delete_item()
                    .table_name(table)
                    .key("pk", AttributeValue::S(pk.to_owned()))
                    .send(),
            )
            .expect("delete an item");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
