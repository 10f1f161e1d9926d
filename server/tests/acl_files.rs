//! ACL users from the configuration: `user` directives, `aclfile` with ACL LOAD /
//! SAVE, startup errors, and the Tandem credential files re-read on change
//! (`aclfile`, `tandem-requirepass-file`), including the Kubernetes Secret layout
//! where the file is a symlink into a directory that is swapped atomically.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Runs the server with `args` expecting it to refuse to start; its output.
fn refused_start(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().to_string();
    let out = Command::new(server_bin())
        .args(["--bind", "127.0.0.1", "--port", &port])
        .args(args)
        .current_dir(dir.path())
        .output()
        .expect("run tandem-server");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn auth(port: u16, user: &str, pass: &str) -> R {
    Conn::connect(port).cmd(&format!("AUTH {user} {pass}"))
}

#[test]
fn user_directives_define_users_at_startup() {
    let s = TestServer::start(&[
        "--user", "app", "on", ">apw", "~app:*", "+@all", "--user", "default", "off",
    ]);
    let mut c = s.conn();
    assert_eq!(c.cmd("GET x"), err("NOAUTH Authentication required."));
    assert_eq!(c.cmd("AUTH default x"), err(WRONGPASS));
    assert_eq!(c.cmd("AUTH app apw"), R::ok());
    assert_eq!(c.cmd("SET app:1 v"), R::ok());
    assert_eq!(
        c.cmd("SET other v"),
        err("NOPERM this user has no permissions to access one of the keys used as arguments")
    );
    assert_eq!(c.cmd("ACL USERS"), arr(&["app", "default"]));
    let R::Arr(list) = c.cmd("ACL LIST") else {
        panic!("ACL LIST")
    };
    assert_eq!(
        list.get(1),
        Some(&R::bulk("user default off nopass ~* &* +@all"))
    );
}

#[test]
fn bad_user_directive_or_both_sources_stop_startup() {
    let out = refused_start(&["--user", "bob", "on", "+nosuch"]);
    assert!(
        out.contains("Error in user declaration 'bob on +nosuch': Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"),
        "{out}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("users.acl");
    std::fs::write(&file, "user default on nopass ~* &* +@all\n").expect("write");
    let out = refused_start(&[
        "--aclfile",
        file.to_str().expect("utf8"),
        "--user",
        "bob",
        "on",
    ]);
    assert!(
        out.contains(
            "users defined in redis.conf and at the same setting an ACL file path is invalid"
        ),
        "{out}"
    );
    std::fs::write(&file, "user bob on +@nosuch\n").expect("write");
    let out = refused_start(&["--aclfile", file.to_str().expect("utf8")]);
    assert!(
        out.contains("users.acl:1: Error in ACL SETUSER modifier '+@nosuch'"),
        "{out}"
    );
}

#[test]
fn aclfile_loads_at_start_and_round_trips_through_save_and_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("users.acl");
    std::fs::write(
        &file,
        "# users\n\nuser default on nopass ~* &* +@all\nuser app on >apw ~app:* &app:* -@all +@read +set (~shared:* +get)\n",
    )
    .expect("write");
    let s = TestServer::start(&["--aclfile", file.to_str().expect("utf8")]);
    let mut admin = s.conn();
    let mut app = s.conn();
    assert_eq!(app.cmd("AUTH app apw"), R::ok());
    assert_eq!(app.cmd("SET app:1 v"), R::ok());
    assert_eq!(app.cmd("GET shared:1"), R::Nil);
    assert_eq!(
        app.cmd("SET shared:1 v"),
        err("NOPERM this user has no permissions to access one of the keys used as arguments")
    );
    // SAVE writes what LIST shows; LOAD brings it back after a change.
    let listed = admin.cmd("ACL LIST");
    assert_eq!(admin.cmd("ACL SAVE"), R::ok());
    let saved = std::fs::read_to_string(&file).expect("read");
    let R::Arr(lines) = &listed else {
        panic!("{listed:?}")
    };
    let expected: String = lines
        .iter()
        .map(|l| match l {
            R::Bulk(b) => format!("{}\n", String::from_utf8_lossy(b)),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(saved, expected);
    assert_eq!(admin.cmd("ACL SETUSER temp on nopass"), R::ok());
    assert_eq!(admin.cmd("ACL DELUSER app"), R::Int(1));
    assert!(app.is_closed(), "deleting a user closes its connections");
    let mut app = s.conn();
    assert_eq!(app.cmd("AUTH app apw"), err(WRONGPASS));
    assert_eq!(admin.cmd("ACL LOAD"), R::ok());
    assert_eq!(admin.cmd("ACL LIST"), listed);
    assert_eq!(app.cmd("AUTH app apw"), R::ok());
    // ACL LOAD replaces every user: their connections are closed, as in Redis 7.0.
    assert_eq!(admin.cmd("ACL LOAD"), R::ok());
    assert!(app.is_closed());
    assert_eq!(admin.cmd("PING"), R::Simple("PONG".into()));
    // A broken file is refused and the users stay.
    std::fs::write(&file, "user app on +nosuch\n").expect("write");
    let e = admin.cmd("ACL LOAD");
    assert!(
        e.err_text()
            .contains("users.acl:1: Error in ACL SETUSER modifier '+nosuch'"),
        "{e:?}"
    );
    assert_eq!(admin.cmd("ACL LIST"), listed);
}

/// A directory laid out like a mounted Kubernetes Secret: `<name>` is a symlink to
/// `..data/<name>`, `..data` a symlink to a timestamped directory, swapped by rename.
struct SecretDir {
    dir: tempfile::TempDir,
    version: u32,
}

impl SecretDir {
    fn new(name: &str, content: &str) -> SecretDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = SecretDir { dir, version: 0 };
        s.update(name, content);
        std::os::unix::fs::symlink(Path::new("..data").join(name), s.dir.path().join(name))
            .expect("symlink");
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a new version and swaps `..data` to it atomically.
    fn update(&mut self, name: &str, content: &str) {
        self.version += 1;
        let v = format!("..v{}", self.version);
        let vdir = self.dir.path().join(&v);
        std::fs::create_dir(&vdir).expect("mkdir");
        std::fs::write(vdir.join(name), content).expect("write");
        let tmp = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&v, &tmp).expect("symlink");
        std::fs::rename(&tmp, self.dir.path().join("..data")).expect("swap");
    }
}

#[test]
fn changed_aclfile_is_applied_without_restart_and_keeps_live_users_connected() {
    let mut secret = SecretDir::new(
        "users.acl",
        "user default on nopass ~* &* +@all\nuser app on >old ~* +@all\nuser gone on >g ~* +@all\n",
    );
    let path = secret.path("users.acl");
    let s = TestServer::start(&["--aclfile", path.to_str().expect("utf8")]);
    let mut app = s.conn();
    let mut gone = s.conn();
    assert_eq!(app.cmd("AUTH app old"), R::ok());
    assert_eq!(gone.cmd("AUTH gone g"), R::ok());
    // Rotation step 1: the new password next to the old one; `gone` removed.
    secret.update(
        "users.acl",
        "user default on nopass ~* &* +@all\nuser app on >old >new ~* +@all\n",
    );
    assert!(
        wait_until(Duration::from_secs(10), || auth(s.port, "app", "new")
            == R::ok()),
        "the new password was not picked up"
    );
    assert_eq!(auth(s.port, "app", "old"), R::ok());
    assert!(gone.is_closed(), "a removed user's connection is closed");
    assert_eq!(app.cmd("PING"), R::Simple("PONG".into()));
    // A broken version is not applied: the users stay and the log says why.
    secret.update("users.acl", "user app on >x +nosuchcommand\n");
    assert!(
        wait_until(Duration::from_secs(10), || s
            .stdout()
            .contains("was not loaded")),
        "{}",
        s.stdout()
    );
    assert_eq!(auth(s.port, "app", "new"), R::ok());
    // Rotation step 2: the old password removed; the live connection stays.
    secret.update(
        "users.acl",
        "user default on nopass ~* &* +@all\nuser app on >new ~* +@all\n",
    );
    assert!(wait_until(Duration::from_secs(10), || auth(
        s.port, "app", "old"
    ) == err(WRONGPASS)));
    assert_eq!(auth(s.port, "app", "new"), R::ok());
    assert_eq!(app.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(app.cmd("ACL WHOAMI"), R::bulk("app"));
}

#[test]
fn requirepass_file_rotates_default_user_passwords() {
    let mut secret = SecretDir::new("password", "old\n");
    let path = secret.path("password");
    let s = TestServer::start(&["--tandem-requirepass-file", path.to_str().expect("utf8")]);
    let mut c = s.conn();
    assert_eq!(c.cmd("PING"), err("NOAUTH Authentication required."));
    assert_eq!(c.cmd("AUTH old"), R::ok());
    secret.update("password", "old\nnew\n");
    assert!(wait_until(Duration::from_secs(10), || auth(
        s.port, "default", "new"
    ) == R::ok()));
    assert_eq!(auth(s.port, "default", "old"), R::ok());
    secret.update("password", "new\n");
    assert!(wait_until(Duration::from_secs(10), || auth(
        s.port, "default", "old"
    ) == err(WRONGPASS)));
    // The connection that authenticated with the old password keeps working.
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    // An empty file is refused: the password stays.
    secret.update("password", "");
    assert!(wait_until(Duration::from_secs(10), || s
        .stdout()
        .contains("old passwords stay")));
    assert_eq!(auth(s.port, "default", "new"), R::ok());
}

/// A server process killed (by pid) when dropped.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server on its config file `conf` (in `dir`) and a free port.
fn start_with_conf(dir: &Path, conf: &Path) -> (Guard, u16) {
    let port = free_port();
    let child = Command::new(server_bin())
        .arg(conf)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let guard = Guard(child);
    let up = wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "server did not start");
    (guard, port)
}

#[test]
fn config_rewrite_persists_users_across_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("tandem.conf");
    std::fs::write(&conf, "user app on >apw ~app:* +@all\n").expect("write");
    let (first, port) = start_with_conf(dir.path(), &conf);
    let mut c = Conn::connect(port);
    assert_eq!(c.cmd("ACL SETUSER ops on >opw ~* +info"), R::ok());
    assert_eq!(c.cmd("ACL DELUSER app"), R::Int(1));
    assert_eq!(c.cmd("CONFIG REWRITE"), R::ok());
    drop(first);
    let text = std::fs::read_to_string(&conf).expect("read");
    assert!(!text.contains("user app"), "{text}");
    assert!(text.contains("user ops on #"), "{text}");
    let (_second, port) = start_with_conf(dir.path(), &conf);
    let mut c = Conn::connect(port);
    assert_eq!(c.cmd("ACL USERS"), arr(&["default", "ops"]));
    assert_eq!(c.cmd("AUTH ops opw"), R::ok());
    assert_eq!(
        c.cmd("ACL USERS"),
        err("NOPERM this user has no permissions to run the 'acl|users' command")
    );
}

#[test]
fn acl_load_keeps_the_password_file_in_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let acl = dir.path().join("users.acl");
    let pass = dir.path().join("password");
    std::fs::write(&acl, "user default on nopass ~* &* +@all\n").expect("write");
    std::fs::write(&pass, "filepw\n").expect("write");
    let s = TestServer::start(&[
        "--aclfile",
        acl.to_str().expect("utf8"),
        "--tandem-requirepass-file",
        pass.to_str().expect("utf8"),
    ]);
    let mut c = s.conn();
    assert_eq!(c.cmd("AUTH filepw"), R::ok());
    assert_eq!(c.cmd("ACL LOAD"), R::ok());
    assert_eq!(auth(s.port, "default", "other"), err(WRONGPASS));
    assert_eq!(auth(s.port, "default", "filepw"), R::ok());
}
