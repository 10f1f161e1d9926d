//! TLS test support: certificates made with the `openssl` CLI in a temp dir, a
//! blocking rustls client speaking RESP, and a server started with no plain port.
#![allow(dead_code)]

use crate::common::{free_port, server_bin, wait_until};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::pem::PemObject;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// A directory of test certificates: CAs and leaves signed by them.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
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
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl Pki {
    /// `ca` (CA), `server` and `client` signed by it, and `other-ca` with
    /// `other-client` (a certificate `ca` does not vouch for).
    pub fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        pki.ca("ca");
        pki.leaf("server", "ca", 365);
        pki.leaf("client", "ca", 365);
        pki.ca("other-ca");
        pki.leaf("other-client", "other-ca", 365);
        pki
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A self-signed CA: `<name>.crt`, `<name>.key`.
    pub fn ca(&self, name: &str) {
        let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
        let subj = format!("/CN=Tandem test {name}");
        let mut args = vec!["req", "-x509"];
        args.extend(EC);
        args.extend(["-nodes", "-keyout", &key, "-out", &crt, "-days", "3650"]);
        args.extend(["-subj", &subj]);
        openssl(self.dir.path(), &args);
    }

    /// A leaf for 127.0.0.1 / localhost usable by servers and clients, signed by
    /// `ca`, valid for `days` from now (negative: already expired).
    pub fn leaf(&self, name: &str, ca: &str, days: i64) {
        let d = self.dir.path();
        let (crt, key, csr) = (
            format!("{name}.crt"),
            format!("{name}.key"),
            format!("{name}.csr"),
        );
        let subj = format!("/CN=Tandem test {name}");
        let mut args = vec!["req"];
        args.extend(EC);
        args.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(d, &args);
        let ext = format!("{name}.ext");
        std::fs::write(
            d.join(&ext),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write ext");
        let (ca_crt, ca_key, days) = (format!("{ca}.crt"), format!("{ca}.key"), days.to_string());
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_crt,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                &days,
                "-extfile",
                &ext,
            ],
        );
    }

    /// Server arguments: the `server` pair, the CA, and `tls-port`.
    pub fn server_args(&self, tls_port: u16) -> Vec<String> {
        vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            self.path("server.crt"),
            "--tls-key-file".into(),
            self.path("server.key"),
            "--tls-ca-cert-file".into(),
            self.path("ca.crt"),
        ]
    }

    /// A client configuration trusting `ca`, presenting `cert` if given.
    pub fn client_config(&self, ca: &str, cert: Option<&str>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.path(&format!("{ca}.crt"))).expect("ca") {
            roots.add(c.expect("ca cert")).expect("add ca");
        }
        let b =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots);
        let cfg = match cert {
            None => b.with_no_client_auth(),
            Some(name) => {
                let chain: Vec<_> =
                    CertificateDer::pem_file_iter(self.path(&format!("{name}.crt")))
                        .expect("cert")
                        .map(|c| c.expect("cert"))
                        .collect();
                let key =
                    PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).expect("key");
                b.with_client_auth_cert(chain, key).expect("client cert")
            }
        };
        Arc::new(cfg)
    }
}

/// A blocking TLS client speaking RESP.
pub struct TlsConn {
    s: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsConn {
    /// Connects and completes the handshake (a client certificate the server
    /// refuses may only show at the first read, in TLS 1.3).
    pub fn connect(port: u16, cfg: Arc<ClientConfig>) -> std::io::Result<TlsConn> {
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let name = ServerName::from(std::net::IpAddr::from([127, 0, 0, 1]));
        let conn = ClientConnection::new(cfg, name).map_err(std::io::Error::other)?;
        let mut s = StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(TlsConn {
            s: BufReader::new(s),
        })
    }

    /// Sends a command without reading its reply.
    pub fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.s.get_mut().write_all(out.as_bytes())?;
        self.s.get_mut().flush()
    }

    /// One reply: a status/error/integer line, a bulk's contents, or an
    /// array's items joined by commas.
    pub fn read_reply(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.s.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end().to_string();
        if let Some(n) = line.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            let mut b = vec![0u8; n + 2];
            self.s.read_exact(&mut b)?;
            b.truncate(n);
            return Ok(String::from_utf8_lossy(&b).into_owned());
        }
        if let Some(n) = line.strip_prefix('*').and_then(|n| n.parse::<usize>().ok()) {
            let items: std::io::Result<Vec<String>> = (0..n).map(|_| self.read_reply()).collect();
            return Ok(items?.join(","));
        }
        Ok(line)
    }

    /// Sends a command and returns its reply, or the I/O error (a refused
    /// session).
    pub fn try_cmd(&mut self, args: &[&str]) -> std::io::Result<String> {
        self.send(args)?;
        self.read_reply()
    }

    pub fn cmd(&mut self, args: &[&str]) -> String {
        self.try_cmd(args).expect("TLS command")
    }
}

/// Whether a client with `cfg` is served (PING answered) on `port`.
pub fn served(port: u16, cfg: Arc<ClientConfig>) -> bool {
    TlsConn::connect(port, cfg)
        .and_then(|mut c| c.try_cmd(&["PING"]))
        .is_ok_and(|r| r == "+PONG")
}

/// A tandem-server started by hand (TLS only, or expected to fail), killed by
/// pid on drop.
pub struct Proc {
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl Proc {
    pub fn start(args: &[String]) -> Proc {
        let dir = tempfile::tempdir().expect("tempdir");
        let log =
            |n: &str| Stdio::from(std::fs::File::create(dir.path().join(n)).expect("log file"));
        let child = Command::new(server_bin())
            .args([
                "--bind",
                "127.0.0.1",
                "--dir",
                dir.path().to_str().expect("utf8"),
            ])
            .args(args)
            .current_dir(dir.path())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"))
            .spawn()
            .expect("spawn tandem-server");
        Proc { child, dir }
    }

    pub fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        read("stdout.log") + &read("stderr.log")
    }

    /// Waits for the process to exit; its status code.
    pub fn exit_code(&mut self, limit: Duration) -> Option<i32> {
        let mut code = None;
        wait_until(limit, || match self.child.try_wait() {
            Ok(Some(st)) => {
                code = st.code();
                true
            }
            _ => false,
        });
        code
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port for a TLS listener.
pub fn tls_port() -> u16 {
    free_port()
}

/// The arguments as `&str`s for `TestServer::start`.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The directory of a file.
pub fn parent(p: &str) -> PathBuf {
    Path::new(p).parent().expect("parent").to_path_buf()
}
