//! Test certificates made with the `openssl` CLI (as server/tests/tls_support does): a CA and
//! leaves signed by it, in a temp dir removed on drop, and the `kubernetes.io/tls` Secret
//! holding a leaf.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

pub struct Pki {
    pub dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (install the openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl Pki {
    /// A fresh directory with the CA `ca`.
    pub fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "tandem-pki-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).expect("pki dir");
        let pki = Pki { dir };
        pki.ca("ca");
        pki
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).expect("read pki file")
    }

    /// A self-signed CA `<name>.crt` / `<name>.key`.
    pub fn ca(&self, name: &str) {
        let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
        let subj = format!("/CN=Tandem operator test {name}");
        let mut args = vec!["req", "-x509"];
        args.extend(EC);
        args.extend(["-nodes", "-keyout", &key, "-out", &crt, "-days", "3650"]);
        args.extend(["-subj", &subj]);
        openssl(&self.dir, &args);
    }

    /// A leaf for 127.0.0.1 / localhost (server and client use) signed by `ca`, valid for
    /// `days` from now (negative: expired); every leaf gets its own serial. File names are
    /// the test's own (no spaces), so each command is one whitespace-split line.
    pub fn leaf(&self, name: &str, ca: &str, days: i64) {
        let run = |line: String| openssl(&self.dir, &line.split(' ').collect::<Vec<_>>());
        std::fs::write(
            self.dir.join(format!("{name}.ext")),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write ext");
        run(format!(
            "req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout {name}.key -out {name}.csr -subj /CN=tandem-operator-test-{name}"
        ));
        // `x509 -req` rather than `req -x509 -CA`: only it takes a negative `-days`.
        run(format!(
            "x509 -req -in {name}.csr -CA {ca}.crt -CAkey {ca}.key -CAcreateserial -out {name}.crt -days {days} -extfile {name}.ext"
        ));
    }

    /// `serial=<hex>` of a certificate file.
    pub fn serial(&self, name: &str) -> String {
        let crt = format!("{name}.crt");
        openssl(&self.dir, &["x509", "-noout", "-serial", "-in", &crt])
            .trim()
            .to_string()
    }

    /// The `kubernetes.io/tls` Secret `secret` with leaf `leaf` (key from `key_of`) and `ca`.
    pub fn secret(&self, secret: &str, leaf: &str, key_of: &str, ca: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret},
            "type": "kubernetes.io/tls",
            "stringData": {
                "tls.crt": self.read(&format!("{leaf}.crt")),
                "tls.key": self.read(&format!("{key_of}.key")),
                "ca.crt": self.read(&format!("{ca}.crt")),
            }
        })
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `serial=<hex>` of the certificate served at `addr` (a new TLS connection), trusting
/// `ca_file`; `None` when the handshake fails.
pub fn served_serial(addr: &str, ca_file: &str) -> Option<String> {
    let script = format!(
        "timeout 5 openssl s_client -connect {addr} -CAfile {ca_file} -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial"
    );
    let out = Command::new("sh").arg("-c").arg(script).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && s.starts_with("serial=")).then_some(s)
}
