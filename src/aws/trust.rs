//! The roots HTTPS to HealthLake and DynamoDB is verified against: `SSL_CERT_FILE` and
//! `SSL_CERT_DIR` when either is set (as OpenSSL and rustls-native-certs read them: they replace
//! the built-in roots; the tests trust their own CA this way), else the roots compiled in
//! (webpki-roots: Mozilla's root program, with the Amazon and Starfield roots AWS endpoints chain
//! to). Compiled in, they cost nothing at start-up, where reading and parsing the system bundle
//! was about 3% of a cold start's CPU (0.15 ms, some 2 ms of wall time at 128 MB); the price is that new or withdrawn roots arrive with a
//! rebuild, not with the OS image (bench/README.md). The PEM reader is ours because it is still
//! start-up work when the variables are set: about 0.4 ms for a 144-root bundle where
//! rustls-pki-types' reader (constant-time base64) takes about 1.5 ms.

use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use std::path::Path;

/// The roots, from the variables as `env` reads them, else the compiled-in ones.
pub(super) fn store(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> RootCertStore {
    let set = |name| env(name).filter(|v| !v.is_empty());
    let (file, dirs) = (set("SSL_CERT_FILE"), set("SSL_CERT_DIR"));
    if file.is_none() && dirs.is_none() {
        return RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
    }
    let mut certs = Vec::new();
    if let Some(file) = file {
        read_pem_file(Path::new(&file), &mut certs);
    }
    for dir in dirs.iter().flat_map(std::env::split_paths) {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_file() {
                read_pem_file(&entry.path(), &mut certs);
            }
        }
    }
    let mut store = RootCertStore::empty();
    let (added, _unusable) = store.add_parsable_certificates(certs);
    if added == 0 {
        tracing::warn!("no trusted root certificates found: HTTPS calls will fail");
    }
    store
}

fn read_pem_file(path: &Path, out: &mut Vec<CertificateDer<'static>>) {
    match std::fs::read(path) {
        Ok(bytes) => match std::str::from_utf8(&bytes) {
            Ok(text) => pem_certificates(text, out),
            Err(_) => pem_certificates(&String::from_utf8_lossy(&bytes), out),
        },
        Err(err) => tracing::warn!(path = %path.display(), error = %err, "cannot read certificates"),
    }
}

/// Every `CERTIFICATE` block of PEM text (other blocks, `TRUSTED CERTIFICATE` included, are
/// skipped), line by line (memchr and memcpy: a system bundle is 200 KB), decoded with
/// aws-smithy-types' vectorized base64.
fn pem_certificates(text: &str, out: &mut Vec<CertificateDer<'static>>) {
    let mut b64: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match (&mut b64, line) {
            (None, "-----BEGIN CERTIFICATE-----") => b64 = Some(String::with_capacity(2048)),
            (Some(body), "-----END CERTIFICATE-----") => {
                if let Ok(der) = aws_smithy_types::base64::decode(&*body) {
                    out.push(CertificateDer::from(der));
                }
                b64 = None;
            }
            (Some(_), l) if l.starts_with("-----") => b64 = None, // a broken block
            (Some(body), l) => body.push_str(l),
            (None, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of SEQUENCE { INTEGER 1 }: enough to test the PEM layer alone.
    fn sample_der() -> Vec<u8> {
        vec![0x30, 0x03, 0x02, 0x01, 0x01]
    }

    #[test]
    fn reads_certificate_blocks_and_skips_the_rest() {
        let b64 = aws_smithy_types::base64::encode(sample_der());
        let text = format!(
            "junk\n-----BEGIN TRUSTED CERTIFICATE-----\nAAAA\n-----END TRUSTED CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\n{}\n{}\n-----END CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\n{b64}\n",
            &b64[..4],
            &b64[4..]
        );
        let mut out = Vec::new();
        pem_certificates(&text, &mut out);
        assert_eq!(out.len(), 1, "one whole, valid CERTIFICATE block");
        assert_eq!(out[0].as_ref(), sample_der().as_slice());
    }

    #[test]
    fn ssl_cert_file_replaces_the_built_in_roots() {
        let dir = std::env::temp_dir().join(format!("ejs-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let env = |name: &str| (name == "SSL_CERT_FILE").then(|| empty.clone().into_os_string());
        assert!(store(&env).is_empty(), "an empty SSL_CERT_FILE trusts nothing");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_compiled_in_roots_are_used_when_nothing_is_set() {
        let store = store(&|_| None);
        assert!(store.len() > 100, "Mozilla's public roots");
        // Amazon Root CA 1, the root of AWS endpoints' chains.
        let amazon = store.roots.iter().any(|r| {
            let subject: &[u8] = r.subject.as_ref();
            subject.windows(16).any(|w| w == b"Amazon Root CA 1")
        });
        assert!(amazon, "the roots AWS endpoints chain to");
    }
}
