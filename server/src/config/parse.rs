//! The redis.conf reader (Redis 7.0 `loadServerConfig` semantics) and the
//! `tandem-server [configfile] [-] [--name value ...]` command line.
//!
//! The file is read whole; a lone `-` appends standard input; every `--name value...`
//! becomes one more line after all that, so the command line wins. Lines are trimmed,
//! blank and `#` lines skipped, then tokenised like `sdssplitargs`.

use super::{strerror, table, Config, Origin};
use crate::REDIS_VERSION;
use std::path::{Path, PathBuf};

/// A fatal configuration problem; `Display` gives the exact text for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Redis's `*** FATAL CONFIG FILE ERROR ***` block.
    Line {
        line_no: usize,
        line: String,
        reason: String,
    },
    /// A problem found after all lines were read (no line to show).
    Bare { reason: String },
    /// A config file (or include) that cannot be read.
    Open { path: String, reason: String },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Line {
                line_no,
                line,
                reason,
            } => write!(
                f,
                "\n*** FATAL CONFIG FILE ERROR (Redis {REDIS_VERSION}) ***\n\
                 Reading the configuration file, at line {line_no}\n>>> '{line}'\n{reason}\n"
            ),
            ConfigError::Bare { reason } => write!(
                f,
                "\n*** FATAL CONFIG FILE ERROR (Redis {REDIS_VERSION}) ***\n{reason}\n"
            ),
            ConfigError::Open { path, reason } => {
                writeln!(f, "Fatal error, can't open config file '{path}': {reason}")
            }
        }
    }
}

/// Builds the configuration from the command line. `Err` holds the text to print
/// on stderr before exiting with status 1.
pub fn load_from_args(args: &[String]) -> Result<Config, String> {
    load(args, &mut std::io::stdin().lock()).map_err(|e| e.to_string())
}

/// Like [`load_from_args`], reading a `-` argument's content from `stdin`.
pub fn load(args: &[String], stdin: &mut dyn std::io::Read) -> Result<Config, ConfigError> {
    let mut config = Config {
        no_args: args.is_empty(),
        ..Config::default()
    };
    let mut rest = args;
    let mut file: Option<PathBuf> = None;
    if let Some(first) = args.first() {
        if !first.starts_with('-') {
            let p = Path::new(first);
            let abs = if p.is_absolute() {
                p.to_path_buf()
            } else {
                std::env::current_dir()
                    .map(|d| d.join(p))
                    .unwrap_or_else(|_| p.to_path_buf())
            };
            file = Some(abs);
            rest = &args[1..];
        }
    }
    let mut content = String::new();
    if let Some(f) = &file {
        content = read_file(f, first_arg(args))?;
        config.config_file = Some(f.clone());
    }
    let (options, from_stdin) = options_to_lines(rest, file.is_none());
    if from_stdin {
        let mut s = String::new();
        stdin
            .read_to_string(&mut s)
            .map_err(|e| ConfigError::Open {
                path: "-".into(),
                reason: strerror(&e),
            })?;
        content.push('\n');
        content.push_str(&s);
    }
    content.push('\n');
    content.push_str(&options);
    let mut loader = Loader::default();
    loader.load_string(&mut config, &content)?;
    loader.check_logfile(&config)?;
    Ok(config)
}

fn first_arg(args: &[String]) -> &str {
    args.first().map(String::as_str).unwrap_or("")
}

fn read_file(path: &Path, shown: &str) -> Result<String, ConfigError> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| ConfigError::Open {
            path: shown.to_string(),
            reason: strerror(&e),
        })
}

/// Turns `--name value...` arguments into config lines; values are quoted so that
/// spaces and special characters survive tokenising. Returns the lines and whether
/// a lone `-` asked for standard input.
fn options_to_lines(args: &[String], no_file: bool) -> (String, bool) {
    let mut out = String::new();
    let mut stdin = false;
    let mut expecting_value = false;
    for (j, a) in args.iter().enumerate() {
        let first = j == 0 && no_file;
        if a == "-" && (first || j == args.len() - 1) {
            stdin = true;
        } else if !expecting_value && a.starts_with("--") {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&a[2..]);
            out.push(' ');
            // `--save` directly followed by another option means `save ""`.
            let next_is_option = args.get(j + 1).is_some_and(|n| n.starts_with("--"));
            if a.eq_ignore_ascii_case("--save") && next_is_option {
                out.push_str("\"\"");
            } else {
                expecting_value = true;
            }
        } else {
            out.push('"');
            out.push_str(&crate::util::repr_bytes(a.as_bytes()));
            out.push_str("\" ");
            expecting_value = false;
        }
    }
    (out, stdin)
}

#[derive(Default)]
struct Loader {
    /// The first `save` line replaces the defaults; later ones add save points.
    save_loaded: bool,
    depth: usize,
}

impl Loader {
    fn load_string(&mut self, config: &mut Config, content: &str) -> Result<(), ConfigError> {
        for (i, raw) in content.split('\n').enumerate() {
            let line = raw.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: String| ConfigError::Line {
                line_no: i + 1,
                line: line.to_string(),
                reason,
            };
            let Some(tokens) = crate::resp::split_args(line.as_bytes()) else {
                return Err(err("Unbalanced quotes in configuration line".into()));
            };
            let mut tokens: Vec<String> = tokens
                .into_iter()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .collect();
            if tokens.is_empty() {
                continue;
            }
            tokens[0] = tokens[0].to_ascii_lowercase();
            let name = tokens[0].clone();
            let args = &tokens[1..];
            self.directive(config, &name, args).map_err(|e| match e {
                Directed::Reason(r) => err(r),
                Directed::Fatal(f) => f,
            })?;
        }
        Ok(())
    }

    fn directive(
        &mut self,
        config: &mut Config,
        name: &str,
        args: &[String],
    ) -> Result<(), Directed> {
        if let Some(d) = table::find(name) {
            let mut args = args.to_vec();
            if d.name == "save" {
                let empty = args.iter().all(|a| a.is_empty());
                if self.save_loaded && !empty {
                    let old = config.get("save").unwrap_or("").to_string();
                    if !old.is_empty() {
                        args = old
                            .split(' ')
                            .map(String::from)
                            .chain(args.iter().flat_map(|a| a.split(' ').map(String::from)))
                            .filter(|s| !s.is_empty())
                            .collect();
                    }
                }
                self.save_loaded = true;
            }
            if !d.has(table::M) && args.len() != 1 {
                return Err(Directed::Reason("wrong number of arguments".into()));
            }
            config
                .set(d.name, &args, Origin::Startup)
                .map_err(Directed::Reason)?;
            config.explicit.insert(d.name);
            if d.has(table::U) && config.values.get(d.name).map(String::as_str) != Some(d.default) {
                return Err(Directed::Reason(format!(
                    "'{}' is set, but {}.",
                    d.name,
                    table::unsafe_reason(d.name)
                )));
            }
            return Ok(());
        }
        match name {
            // Deprecated and ignored by Redis 7.0 as well.
            "list-max-ziplist-entries" | "list-max-ziplist-value" | "lua-replicate-commands" => {
                Ok(())
            }
            "include" if args.len() == 1 => self.include(config, &args[0]),
            "rename-command" if args.len() == 2 => Err(Directed::Reason(
                "rename-command is not supported by Tandem: refusing to start with commands still available that this configuration renames or disables.".into(),
            )),
            // Applied at startup, after the whole file (`commands::acl::init`).
            "user" if !args.is_empty() => {
                config.acl_users.push(args.to_vec());
                Ok(())
            }
            "loadmodule" if !args.is_empty() => Err(Directed::Reason(
                "Modules are not supported by Tandem.".into(),
            )),
            "sentinel" => Err(Directed::Reason(
                "Sentinel mode is not supported by Tandem.".into(),
            )),
            n if n.contains('.') => Err(Directed::Reason(
                "Module configuration is not supported by Tandem (modules cannot be loaded).".into(),
            )),
            _ => Err(Directed::Reason(
                "Bad directive or wrong number of arguments".into(),
            )),
        }
    }

    /// `include <path>`: relative to the current directory now; glob patterns allowed
    /// (no match = nothing to include), a missing plain file is fatal.
    fn include(&mut self, config: &mut Config, pattern: &str) -> Result<(), Directed> {
        if self.depth > 32 {
            return Err(Directed::Reason("Too many nested includes".into()));
        }
        let files = if pattern.contains(['*', '?', '[']) {
            glob_paths(pattern)
        } else {
            vec![PathBuf::from(pattern)]
        };
        for f in files {
            let content = read_file(&f, &f.to_string_lossy()).map_err(Directed::Fatal)?;
            self.depth += 1;
            let r = self.load_string(config, &content);
            self.depth -= 1;
            r.map_err(Directed::Fatal)?;
        }
        Ok(())
    }

    /// The log file must be openable once the whole configuration (and `dir`) is applied.
    fn check_logfile(&self, config: &Config) -> Result<(), ConfigError> {
        if config.logfile.is_empty() {
            return Ok(());
        }
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.logfile)
        {
            Ok(_) => Ok(()),
            Err(e) => Err(ConfigError::Bare {
                reason: format!("Can't open the log file: {}", strerror(&e)),
            }),
        }
    }
}

enum Directed {
    Reason(String),
    Fatal(ConfigError),
}

/// Expands a glob pattern (`*`, `?`, `[...]` in any path component), sorted like glob(3).
fn glob_paths(pattern: &str) -> Vec<PathBuf> {
    let absolute = pattern.starts_with('/');
    let mut current: Vec<PathBuf> = vec![if absolute {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    }];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &current {
            if comp.contains(['*', '?', '[']) {
                let dir = if base.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    base.as_path()
                };
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') || comp.starts_with('.'))
                    .filter(|n| crate::util::glob_match(comp.as_bytes(), n.as_bytes(), false))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| base.join(n)));
            } else {
                let p = base.join(comp);
                if p.exists() {
                    next.push(p);
                }
            }
        }
        current = next;
    }
    current.retain(|p| p.is_file());
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Tests that `dir` change the process's cwd: run them one at a time and restore it.
    static CWD: std::sync::Mutex<()> = std::sync::Mutex::new(());

    struct CwdGuard(
        PathBuf,
        #[allow(dead_code)] std::sync::MutexGuard<'static, ()>,
    );

    impl Drop for CwdGuard {
        fn drop(&mut self) {
            let _ = std::env::set_current_dir(&self.0);
        }
    }

    fn cwd_guard() -> CwdGuard {
        let g = CWD.lock().unwrap_or_else(|e| e.into_inner());
        CwdGuard(std::env::current_dir().unwrap(), g)
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn load_text(text: &str, extra: &[&str]) -> Result<Config, ConfigError> {
        let _g = cwd_guard();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.conf");
        std::fs::write(&p, text).unwrap();
        let mut args = vec![p.to_string_lossy().into_owned()];
        args.extend(s(extra));
        let r = load(&args, &mut std::io::empty());
        drop(dir);
        r
    }

    #[test]
    fn quotes_units_and_case() {
        let c = load_text(
            "# comment\n  PORT 7000\nrequirepass \"a b\\x41\"\nmasterauth 'it\\'s'\nMaxMemory 2GB\nappendonly YES\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.requirepass.as_deref(), Some("a bA"));
        assert_eq!(c.maxmemory, 2 << 30);
        assert_eq!(c.masterauth.as_deref(), Some("it's"));
        assert!(c.appendonly);
        assert!(c.explicit.contains("port"));
    }

    #[test]
    fn single_quote_closing_must_end_token() {
        let e = load_text("masterauth 'it''s'\n", &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Line { line_no: 1, .. }), "{e:?}");
        assert!(e
            .to_string()
            .contains("Unbalanced quotes in configuration line"));
    }

    #[test]
    fn errors_name_the_line_in_redis_format() {
        let e = load_text("port 7000\n\n# x\nfoo bar\n", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 4\n>>> 'foo bar'\nBad directive or wrong number of arguments\n"
        );
        let e = load_text("maxmemory 10xb\n", &[]).unwrap_err();
        assert!(e
            .to_string()
            .ends_with(">>> 'maxmemory 10xb'\nargument must be a memory value\n"));
        let e = load_text("port 1 2\n", &[]).unwrap_err();
        assert!(e.to_string().ends_with("wrong number of arguments\n"));
        let e = load_text("cluster-enabled yes\n", &[]).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn command_line_overrides_the_file() {
        let c = load_text(
            "port 7000\nbind 10.0.0.1\nsave 900 1\n",
            &["--port", "7001", "--bind", "127.0.0.1 ::1", "--save", ""],
        )
        .unwrap();
        assert_eq!(c.port, 7001);
        assert_eq!(c.bind, vec!["127.0.0.1", "::1"]);
        assert!(c.save.is_empty());
        // Error line numbers count the appended option lines too.
        let e = load_text("port 7000\n", &["--port", "x"]).unwrap_err();
        assert!(matches!(e, ConfigError::Line { line_no: 3, .. }), "{e:?}");
        assert!(e.to_string().contains(">>> 'port \"x\"'"));
    }

    #[test]
    fn no_file_only_options() {
        let _g = cwd_guard();
        let c = load(
            &s(&["--port", "7002", "--maxmemory", "1mb"]),
            &mut std::io::empty(),
        )
        .unwrap();
        assert_eq!(c.port, 7002);
        assert_eq!(c.maxmemory, 1 << 20);
        assert!(c.config_file.is_none());
        assert!(!c.no_args);
        // `-` reads more configuration from stdin.
        let c = load(
            &s(&["-", "--port", "7003"]),
            &mut &b"maxmemory 5mb\nport 1\n"[..],
        )
        .unwrap();
        assert_eq!((c.port, c.maxmemory), (7003, 5 << 20));
    }

    #[test]
    fn option_lines_quote_values_and_handle_bare_save() {
        let (lines, stdin) = options_to_lines(
            &s(&[
                "--save",
                "--requirepass",
                "a b\"c",
                "--bind",
                "1.2.3.4",
                "::1",
                "-",
            ]),
            true,
        );
        assert!(stdin);
        assert_eq!(
            lines,
            "save \"\"\nrequirepass \"a b\\\"c\" \nbind \"1.2.3.4\" \"::1\" "
        );
        // A value that looks like an option is still the value of the previous name.
        let (lines, _) = options_to_lines(&s(&["--requirepass", "--x"]), true);
        assert_eq!(lines, "requirepass \"--x\" ");
    }

    #[test]
    fn save_lines_accumulate_and_replace_defaults() {
        let c = load_text("save 900 1\nsave 300 10\n", &[]).unwrap();
        assert_eq!(c.save, vec![(900, 1), (300, 10)]);
        let c = load_text("save \"900 1 60 5\"\n", &[]).unwrap();
        assert_eq!(c.save, vec![(900, 1), (60, 5)]);
        let c = load_text("save 900 1\nsave \"\"\n", &[]).unwrap();
        assert!(c.save.is_empty());
        assert!(load_text("save 900\n", &[]).is_err());
    }

    #[test]
    fn include_is_relative_to_cwd_and_globs() {
        let _g = cwd_guard();
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("conf.d");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("a.conf"), "maxmemory 1mb\n").unwrap();
        std::fs::write(sub.join("b.conf"), "maxmemory 2mb\n").unwrap();
        std::fs::write(sub.join("c.txt"), "port x\n").unwrap();
        let main = dir.path().join("main.conf");
        let mut f = std::fs::File::create(&main).unwrap();
        // `dir` changes the cwd, so the relative include resolves inside it.
        writeln!(
            f,
            "dir {}\ninclude conf.d/*.conf\ninclude nothing-*.conf",
            dir.path().display()
        )
        .unwrap();
        let c = load(
            &[main.to_string_lossy().into_owned()],
            &mut std::io::empty(),
        )
        .unwrap();
        assert_eq!(c.maxmemory, 2 << 20);
        // A missing plain include is fatal.
        std::fs::write(&main, "include /nonexistent/x.conf\n").unwrap();
        let e = load(
            &[main.to_string_lossy().into_owned()],
            &mut std::io::empty(),
        )
        .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("Fatal error, can't open config file '/nonexistent/x.conf'"));
    }

    #[test]
    fn include_errors_report_the_included_line() {
        let _g = cwd_guard();
        let dir = tempfile::tempdir().unwrap();
        let inc = dir.path().join("inc.conf");
        std::fs::write(&inc, "\n\nhz abc\n").unwrap();
        let main = dir.path().join("main.conf");
        std::fs::write(&main, format!("include {}\n", inc.display())).unwrap();
        let e = load(
            &[main.to_string_lossy().into_owned()],
            &mut std::io::empty(),
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::Line { line_no: 3, .. }), "{e:?}");
    }

    #[test]
    fn seed_config_parses_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let seed = format!(
            "bind 192.168.xx.1\nport 6379\ndaemonize yes\nlogfile \"redis.log\"\ndir {}\nmasterauth 123456\nrequirepass 123456\nappendonly yes\nappendfilename \"appendonly.aof\"\n",
            dir.path().display()
        );
        let c = load_text(&seed, &[]).unwrap();
        assert_eq!(c.bind, vec!["192.168.xx.1"]);
        assert!(c.daemonize);
        assert_eq!(c.logfile, "redis.log");
        assert_eq!(c.masterauth.as_deref(), Some("123456"));
        assert_eq!(c.requirepass.as_deref(), Some("123456"));
        assert!(c.appendonly);
        assert_eq!(c.appendfilename, "appendonly.aof");
        assert!(c.not_acted_on().is_empty(), "{:?}", c.not_acted_on());
        assert!(!c.not_acted_on().contains(&"port"));
    }

    #[test]
    fn unsupported_directives_stop_startup() {
        for line in [
            "rename-command FLUSHALL \"\"",
            "loadmodule /x.so",
            "tls-cluster yes",
            "foo.bar 1",
        ] {
            let e = load_text(line, &[]).unwrap_err();
            assert!(
                matches!(e, ConfigError::Line { line_no: 1, .. }),
                "{line}: {e:?}"
            );
        }
        // ACL users are collected for startup, in order.
        let c = load_text("user bob on >pw ~k*\nuser default off\n", &[]).expect("users");
        assert_eq!(
            c.acl_users,
            vec![vec!["bob", "on", ">pw", "~k*"], vec!["default", "off"]]
        );
        // Deprecated names are accepted silently, as Redis does.
        assert!(load_text("list-max-ziplist-entries 5\n", &[]).is_ok());
    }
}
