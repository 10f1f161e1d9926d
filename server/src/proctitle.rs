//! Process shell: the process title (`set-proc-title`, `proc-title-template`), as
//! Redis 7.0 sets it, so `ps` shows `tandem-server 10.0.0.5:6379` and never the
//! command line the server was started with (`--requirepass ...`).
//!
//! The template is expanded by a pure function ([`expand`]); the rest is the thin
//! shell that writes the result where the kernel reads `/proc/<pid>/cmdline`: the
//! process's original argument strings, followed in memory by the environment
//! strings (one contiguous block at the top of the main stack, [`Area`]).
//!
//! Why unsafe (this module and `daemon` are the only ones allowed it): writing the
//! title means writing through a raw pointer into memory no Rust value owns, and
//! reusing the environment block means replacing the C library's environment first
//! (`clearenv`). Soundness is argued at each `unsafe` block; in short:
//! * the block's bounds come from the kernel (`/proc/self/stat`, fields 48-51), the
//!   memory is mapped and writable for the life of the process, and every write
//!   stays inside it and keeps its last byte NUL, so any C string into it (the
//!   saved `argv` pointers of std and of the C library) stays terminated;
//! * [`Area::claim`] runs in `main` before any other thread exists, so moving the
//!   environment to the heap races with no reader;
//! * after the claim, nothing reads the block through `argv` (`main` copied its
//!   arguments first; `std::env::args` is not used afterwards) and writes are
//!   serialised by the [`ProcTitle`] mutex.
#![allow(unsafe_code)]

use crate::config::Config;
use parking_lot::Mutex;

/// Why a template cannot be used (Redis's CONFIG SET / config file message).
pub const INVALID: &str = "template format is invalid or contains unknown variables";

/// Values of the template variables Redis documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    /// `{title}`: the program as executed (`argv[0]`).
    pub title: String,
    /// `{listen-addr}`: first bind address and port (or `unixsocket:<path>`).
    pub listen_addr: String,
    /// `{server-mode}`: `[cluster]`/`[sentinel]` in Redis; always empty here.
    pub server_mode: String,
    pub port: String,
    pub tls_port: String,
    pub unixsocket: String,
    /// `{config-file}`: absolute path of the config file, or empty.
    pub config_file: String,
}

impl Vars {
    /// The variables for `config`, with `title` as `{title}`.
    pub fn from_config(config: &Config, title: &str) -> Vars {
        let s = |n: &str| config.get(n).unwrap_or_default().to_string();
        let (port, tls_port, unixsocket) = (s("port"), s("tls-port"), s("unixsocket"));
        let listen_port = if port != "0" { &port } else { &tls_port };
        let listen_addr = if listen_port != "0" {
            let first = config.bind.first().map_or("*", String::as_str);
            format!("{first}:{listen_port}")
        } else {
            format!("unixsocket:{unixsocket}")
        };
        let config_file = config
            .config_file
            .as_deref()
            .map(|p| {
                std::path::absolute(p)
                    .unwrap_or_else(|_| p.to_path_buf())
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        Vars {
            title: title.to_string(),
            listen_addr,
            server_mode: String::new(),
            port,
            tls_port,
            unixsocket,
            config_file,
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        Some(match name {
            "title" => &self.title,
            "listen-addr" => &self.listen_addr,
            "server-mode" => &self.server_mode,
            "port" => &self.port,
            "tls-port" => &self.tls_port,
            "unixsocket" => &self.unixsocket,
            "config-file" => &self.config_file,
            _ => return None,
        })
    }
}

/// Expands `{name}` variables (`{{` is a literal `{`) and trims spaces at both
/// ends; `None` for an unknown variable or an unterminated `{`.
pub fn expand(template: &str, vars: &Vars) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        if let Some(tail) = after.strip_prefix('{') {
            out.push('{');
            rest = tail;
            continue;
        }
        let close = after.find('}')?;
        out.push_str(vars.get(&after[..close])?);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Some(out.trim_matches(' ').to_string())
}

/// Redis's check of a new template: it must expand, with an empty `{title}`, to
/// something non-empty.
pub fn validate(template: &str, config: &Config) -> Result<(), &'static str> {
    match expand(template, &Vars::from_config(config, "")) {
        Some(t) if !t.is_empty() => Ok(()),
        _ => Err(INVALID),
    }
}

/// The title `config` asks for, `{title}` being `argv0`.
pub fn title_for(config: &Config, argv0: &str) -> Option<String> {
    let template = config.get("proc-title-template").unwrap_or_default();
    expand(template, &Vars::from_config(config, argv0))
}

/// The process title of a running server: the claimed [`Area`] (none when
/// `set-proc-title` is `no`, or when not running as the `tandem-server` binary).
#[derive(Debug, Default)]
pub struct ProcTitle {
    claimed: Mutex<Option<Claimed>>,
}

/// What [`Area::claim`] hands to the server.
#[derive(Debug)]
pub struct Claimed {
    pub area: Area,
    /// `argv[0]` as executed, read before the area was overwritten.
    pub argv0: String,
}

impl ProcTitle {
    /// Takes ownership of the claimed area (startup).
    pub fn install(&self, claimed: Option<Claimed>) {
        *self.claimed.lock() = claimed;
    }

    /// Rewrites the title from `config` (startup and CONFIG SET
    /// proc-title-template). A no-op when no area was claimed.
    pub fn refresh(&self, config: &Config) {
        if let Some(c) = self.claimed.lock().as_mut() {
            c.refresh(config);
        }
    }
}

impl Claimed {
    /// Claims the title area for `argv0` (see [`Area::claim`]).
    pub fn claim(argv0: &str) -> Option<Claimed> {
        Area::claim(argv0).map(|area| Claimed {
            area,
            argv0: argv0.to_string(),
        })
    }

    /// Writes the title `config` asks for.
    pub fn refresh(&mut self, config: &Config) {
        if let Some(title) = title_for(config, &self.argv0) {
            self.area.write(&title);
        }
    }
}

/// The argument + environment strings block the kernel shows as the command line.
#[derive(Debug)]
pub struct Area {
    start: usize,
    len: usize,
}

impl Area {
    /// Claims the block: moves the environment to the heap so its strings can be
    /// overwritten, and names the main thread after `argv0`. `None` when the
    /// bounds cannot be read (no /proc) or look wrong.
    ///
    /// Must be called before any other thread exists (see the module doc), after
    /// the process has read its arguments.
    pub fn claim(argv0: &str) -> Option<Area> {
        set_thread_name(argv0);
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let [arg_start, arg_end, env_start, env_end] = bounds(&stat)?;
        if arg_start == 0 || arg_start >= arg_end {
            return None;
        }
        let end = if env_start == arg_end && env_end > env_start && relocate_environment() {
            env_end
        } else {
            arg_end
        };
        Some(Area {
            start: arg_start,
            len: end - arg_start,
        })
    }

    /// Writes `title` (truncated to fit) and zeroes the rest of the block.
    fn write(&mut self, title: &str) {
        let n = title.len().min(self.len.saturating_sub(1));
        let base: *mut u8 = std::ptr::with_exposed_provenance_mut(self.start);
        // SAFETY: [start, start + len) is the argument/environment block the kernel
        // mapped for this process (module doc); `n < len`, so both writes stay in it
        // and its last byte stays NUL. `&mut self` under the ProcTitle mutex means
        // no other writer; no Rust reference into the block exists.
        unsafe {
            std::ptr::copy_nonoverlapping(title.as_ptr(), base, n);
            std::ptr::write_bytes(base.add(n), 0, self.len - n);
        }
    }
}

/// `[arg_start, arg_end, env_start, env_end]` from `/proc/self/stat` (fields
/// 48 to 51; the command name, field 2, may hold spaces, so count after its `)`).
fn bounds(stat: &str) -> Option<[usize; 4]> {
    let (_, after) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after.split_ascii_whitespace().collect();
    // `after` starts at field 3.
    let at = |field: usize| fields.get(field - 3)?.parse::<usize>().ok();
    Some([at(48)?, at(49)?, at(50)?, at(51)?])
}

/// Copies every environment variable to the C library's heap and drops the
/// original array, so no environment pointer refers to the stack block any more.
fn relocate_environment() -> bool {
    let vars: Vec<_> = std::env::vars_os().collect();
    // SAFETY: called from `Area::claim`, before any other thread exists (module
    // doc), so nothing reads the environment concurrently; clearenv only resets
    // the C library's `environ` array.
    if unsafe { libc::clearenv() } != 0 {
        return false;
    }
    for (k, v) in vars {
        // setenv copies "name=value" into memory the C library allocates.
        std::env::set_var(k, v);
    }
    true
}

/// Names the calling thread (what `top` and `/proc/<pid>/comm` show): the
/// program's file name, cut to the kernel's 15 bytes.
fn set_thread_name(argv0: &str) {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    let mut name: Vec<u8> = base.bytes().filter(|&b| b != 0).take(15).collect();
    if name.is_empty() {
        return;
    }
    name.push(0);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from
    // the pointer, which `name` provides for the duration of the call.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            title: "/usr/bin/tandem-server".into(),
            listen_addr: "10.0.0.5:6379".into(),
            server_mode: String::new(),
            port: "6379".into(),
            tls_port: "0".into(),
            unixsocket: String::new(),
            config_file: "/etc/tandem.conf".into(),
        }
    }

    #[test]
    fn default_template_shows_program_and_address() {
        let t = expand("{title} {listen-addr} {server-mode}", &vars());
        assert_eq!(t.as_deref(), Some("/usr/bin/tandem-server 10.0.0.5:6379"));
    }

    #[test]
    fn templates_expand_like_redis() {
        let v = vars();
        for (template, want) in [
            (
                "{port} {tls-port} {config-file}",
                Some("6379 0 /etc/tandem.conf"),
            ),
            ("{{title}", Some("{title}")),
            ("}}{port}", Some("}}6379")),
            ("a{{", Some("a{")),
            ("  {title}  x  ", Some("/usr/bin/tandem-server  x")),
            ("{unixsocket}", Some("")),
            ("{bogus}", None),
            ("{TITLE}", None),
            ("{ port}", None),
            ("{}{title}", None),
            ("{title", None),
            ("x{", None),
        ] {
            assert_eq!(expand(template, &v).as_deref(), want, "{template}");
        }
    }

    #[test]
    fn validation_rejects_empty_results_and_unknown_names() {
        let c = Config::default();
        assert_eq!(validate("{title} {listen-addr} {server-mode}", &c), Ok(()));
        assert_eq!(validate("{port}", &c), Ok(()));
        assert_eq!(validate("{title}", &c), Err(INVALID));
        assert_eq!(validate("", &c), Err(INVALID));
        assert_eq!(validate("{server-mode}", &c), Err(INVALID));
        assert_eq!(validate("{nope} x", &c), Err(INVALID));
    }

    #[test]
    fn listen_addr_is_first_bind_and_port() {
        let mut c = Config::default();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        c.set(
            "bind",
            &s(&["127.0.0.1", "-::1"]),
            crate::config::Origin::Startup,
        )
        .unwrap();
        c.set("port", &s(&["7000"]), crate::config::Origin::Startup)
            .unwrap();
        let v = Vars::from_config(&c, "t");
        assert_eq!(v.listen_addr, "127.0.0.1:7000");
        c.set("port", &s(&["0"]), crate::config::Origin::Startup)
            .unwrap();
        assert_eq!(Vars::from_config(&c, "t").listen_addr, "unixsocket:");
    }

    #[test]
    fn stat_bounds_skip_a_command_name_with_spaces() {
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[48 - 3] = "1000".into();
        fields[49 - 3] = "1100".into();
        fields[50 - 3] = "1100".into();
        fields[51 - 3] = "1300".into();
        let stat = format!("42 (a) b ) {}", fields.join(" "));
        assert_eq!(bounds(&stat), Some([1000, 1100, 1100, 1300]));
        assert_eq!(bounds("42 (x) S 1"), None);
    }
}
