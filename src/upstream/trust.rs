//! The roots HTTPS to HealthLake is verified against: `SSL_CERT_FILE` and `SSL_CERT_DIR` when
//! either is set (as OpenSSL and rustls-native-certs read them: they replace the system store),
//! else the system bundle (on Lambda's Amazon Linux 2023, `/etc/pki/tls/certs/ca-bundle.crt`).
//! rustls verifies against them as always; only the reading is ours, because it is a cold
//! start's work: this reader takes about 0.4 ms for Debian's 144-root bundle where
//! rustls-pki-types' PEM reader (constant-time base64) takes about 1.5 ms (bench/README.md).

use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use std::path::Path;

/// Bundles of the common Linux layouts; the first that exists is the system store.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/pki/tls/certs/ca-bundle.crt",   // Amazon Linux (Lambda), Fedora, RHEL
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // RHEL, CentOS
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/ssl/cert.pem",                  // Alpine, macOS
];

/// The roots, from the variables as `env` reads them, else from the system bundle.
pub(super) fn store(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> RootCertStore {
    let set = |name| env(name).filter(|v| !v.is_empty());
    let mut certs = Vec::new();
    let (file, dirs) = (set("SSL_CERT_FILE"), set("SSL_CERT_DIR"));
    if file.is_some() || dirs.is_some() {
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
    } else if let Some(bundle) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
        read_pem_file(bundle, &mut certs);
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
    fn ssl_cert_file_replaces_the_system_store() {
        let dir = std::env::temp_dir().join(format!("ejs-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let env = |name: &str| (name == "SSL_CERT_FILE").then(|| empty.clone().into_os_string());
        assert!(store(&env).is_empty(), "an empty SSL_CERT_FILE trusts nothing");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_system_bundle_is_used_when_nothing_is_set() {
        if SYSTEM_BUNDLES.iter().any(|p| Path::new(p).is_file()) {
            assert!(store(&|_| None).len() > 10, "the system's public roots");
        }
    }
}
