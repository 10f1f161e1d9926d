//! Loading one AOF file at startup: an RDB base (`REDIS...`) and/or RESP commands.
//!
//! Command layout: `*<argc>\r\n` then `argc` times `$<len>\r\n<bytes>\r\n`; a line
//! starting with `#` (a `#TS:` annotation) is skipped. Every command meets the
//! checks a client request meets before it runs (`exec::check_argv`: the table
//! lookup and the arity), so a corrupt file is refused with a message instead of
//! reaching a handler with the wrong arguments. An unknown command is fatal, as in
//! Redis ("Unknown command '%s' reading the append only file %s"); a wrong arity
//! is fatal too (Redis 7.0.15 runs such a command anyway, with undefined results).
//! A command that runs but answers an error (WRONGTYPE...) is logged as Redis logs
//! it ("== CRITICAL == ... AOF-loading-client ...") and loading goes on.
//!
//! A file ending inside a command (or inside MULTI) is cut back to the last
//! complete command when `aof-load-truncated yes` and it is the last file.

use crate::commands;
use crate::db::Db;
use crate::exec::{self, ArgvRefusal};
use crate::rdb;
use crate::resp::Reply;
use crate::server::{now_ms, Server, Store};
use crate::{notice, warning};
use bytes::Bytes;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

/// Why an AOF file could not be loaded; the text is what the log shows.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("Fatal error: can't open the append log file {name} for read: {source}")]
    Open {
        name: String,
        source: std::io::Error,
    },
    #[error("Error reading the RDB base file {name}: {reason}")]
    Base { name: String, reason: String },
    #[error("Bad file format reading the append only file {name}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>")]
    BadFormat { name: String },
    #[error("Unknown command '{command}' reading the append only file {name}")]
    UnknownCommand { command: String, name: String },
    #[error(
        "Wrong number of arguments for '{command}' command reading the append only file {name}"
    )]
    WrongArity { command: String, name: String },
    #[error("Bad SELECT in the append only file {name}")]
    BadSelect { name: String },
    #[error("Fatal error: the truncated file is not the last file")]
    TruncatedNotLast,
    #[error("Unexpected end of file reading the append only file {name}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server.")]
    UnexpectedEof { name: String },
    #[error("Error truncating the AOF file {name}: {source}")]
    Truncate {
        name: String,
        source: std::io::Error,
    },
}

pub(super) enum Parsed {
    Cmd(Vec<Bytes>, usize),
    /// A `#` annotation line, skipped.
    Skip(usize),
    Truncated,
    Bad,
}

fn read_line(data: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = data.get(pos..)?;
    let nl = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..nl], pos + nl + 2))
}

fn parse_num(b: &[u8]) -> Option<usize> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Parses one command at `pos` (`pos < data.len()`).
pub(super) fn parse_command(data: &[u8], pos: usize) -> Parsed {
    match data.get(pos) {
        Some(b'#') => {
            return match read_line(data, pos) {
                Some((_, next)) => Parsed::Skip(next),
                None => Parsed::Truncated,
            }
        }
        Some(b'*') => {}
        _ => return Parsed::Bad,
    }
    let Some((line, mut p)) = read_line(data, pos) else {
        return Parsed::Truncated;
    };
    let Some(argc) = line.get(1..).and_then(parse_num).filter(|&n| n >= 1) else {
        return Parsed::Bad;
    };
    let mut argv = Vec::with_capacity(argc.min(1024));
    for _ in 0..argc {
        let Some((line, next)) = read_line(data, p) else {
            return Parsed::Truncated;
        };
        if line.first() != Some(&b'$') {
            return Parsed::Bad;
        }
        let Some(len) = line.get(1..).and_then(parse_num) else {
            return Parsed::Bad;
        };
        let end = next.saturating_add(len);
        let Some(crlf) = data.get(end..end.saturating_add(2)) else {
            return Parsed::Truncated;
        };
        if crlf != b"\r\n" {
            return Parsed::Bad;
        }
        argv.push(Bytes::copy_from_slice(&data[next..end]));
        p = end + 2;
    }
    Parsed::Cmd(argv, p)
}

/// Looks a replayed command up and checks its arity, as for a client request.
fn check(argv: &[Bytes], name: &str) -> Result<&'static commands::Command, LoadError> {
    let command = || String::from_utf8_lossy(argv.first().map_or(&[][..], |a| &a[..])).into_owned();
    exec::check_argv(argv).map_err(|r| match r {
        ArgvRefusal::UnknownCommand => LoadError::UnknownCommand {
            command: command(),
            name: name.into(),
        },
        ArgvRefusal::WrongArity(cmd) => LoadError::WrongArity {
            command: cmd.name.into(),
            name: name.into(),
        },
    })
}

/// Runs replayed commands with a client that stands for the file (Redis's
/// AOF-loading client: authenticated, never refused, never blocked).
struct Replayer<'a> {
    server: &'a Arc<Server>,
    client: commands::ClientState,
    out: Reply,
    name: &'a str,
}

impl Replayer<'_> {
    fn run(
        &mut self,
        store: &mut Store,
        cmd: &'static commands::Command,
        argv: &[Bytes],
    ) -> Result<(), LoadError> {
        if cmd.name == "select" {
            let db = argv
                .get(1)
                .and_then(|d| parse_num(d))
                .filter(|&d| d < store.dbs.len())
                .ok_or_else(|| LoadError::BadSelect {
                    name: self.name.into(),
                })?;
            self.client.db = db;
            return Ok(());
        }
        self.out.buf.clear();
        // Checked once more by the door itself; `check` refused bad commands early,
        // before anything of the file ran.
        let _ = exec::replay(self.server, store, &mut self.client, argv, &mut self.out);
        store.propagated.clear();
        store.propagate_only.clear();
        if self.out.buf.first() == Some(&b'-') {
            let line = self.out.buf.split(|&b| b == b'\r').next().unwrap_or(&[]);
            warning!(
                "== CRITICAL == This server is sending an error to its AOF-loading-client: '{}' after processing the command '{}'",
                String::from_utf8_lossy(line),
                cmd.name
            );
            use crate::config::propagation::{must_stop, stop, Source};
            let config = self.server.config.read();
            if must_stop(&config, Source::Aof) {
                stop(&config, Source::Aof, cmd.name);
            }
        }
        Ok(())
    }
}

/// Replays the commands in `data` (starting at `start`). Returns Ok(None) when fully
/// read, Ok(Some(offset)) when the file ends inside a command (or an open MULTI) and
/// everything before `offset` was applied.
fn replay(
    server: &Arc<Server>,
    store: &mut Store,
    data: &[u8],
    start: usize,
    name: &str,
) -> Result<Option<usize>, LoadError> {
    let mut client = commands::ClientState::new(0);
    client.authenticated = true;
    client.is_master = true;
    let mut r = Replayer {
        server,
        client,
        out: Reply::new(false),
        name,
    };
    let mut pos = start;
    type Queued = Vec<(&'static commands::Command, Vec<Bytes>)>;
    let mut multi: Option<(usize, Queued)> = None;
    while pos < data.len() {
        match parse_command(data, pos) {
            Parsed::Skip(next) => pos = next,
            Parsed::Truncated => return Ok(Some(multi.map_or(pos, |(at, _)| at))),
            Parsed::Bad => return Err(LoadError::BadFormat { name: name.into() }),
            Parsed::Cmd(argv, next) => {
                let start_of_cmd = pos;
                pos = next;
                let cmd = check(&argv, name)?;
                match (cmd.name, multi.as_mut()) {
                    ("multi", _) => multi = Some((start_of_cmd, Vec::new())),
                    ("exec", _) => {
                        for (cmd, argv) in multi.take().map(|(_, q)| q).unwrap_or_default() {
                            r.run(store, cmd, &argv)?;
                        }
                    }
                    (_, Some((_, q))) => q.push((cmd, argv)),
                    (_, None) => r.run(store, cmd, &argv)?,
                }
            }
        }
    }
    if let Some((at, _)) = multi {
        notice!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
        return Ok(Some(at));
    }
    Ok(None)
}

/// Loads an RDB base at the start of `data` into `store`; returns where the
/// commands after it (if any) start.
fn load_base(
    store: &mut Store,
    data: &[u8],
    name: &str,
    (key_delay, shapes): (i32, rdb::Shapes),
) -> Result<usize, LoadError> {
    notice!("Reading RDB base file on AOF loading...");
    let mut slice = data;
    let mut dbs: Vec<Db> = (0..store.dbs.len()).map(|_| Db::new()).collect();
    let info = rdb::load_delayed(
        &mut slice,
        &mut dbs,
        &rdb::LoadOptions {
            now_ms: now_ms(),
            drop_expired: false,
            shapes,
        },
        key_delay,
    )
    .map_err(|e| LoadError::Base {
        name: name.into(),
        reason: e.to_string(),
    })?;
    notice!(
        "Done loading RDB, keys loaded: {}, keys expired: {}.",
        info.keys,
        info.expired
    );
    if store.dbs.iter().all(|d| d.is_empty()) {
        store.dbs = dbs;
    } else {
        for (d, src) in store.dbs.iter_mut().zip(dbs) {
            for (k, e) in src.iter() {
                d.set_with_expire(k.to_bytes(), e.value.clone(), src.expire_of(k), 0);
            }
        }
    }
    crate::commands::function_lib::install_loaded(store, &info.functions);
    Ok(data.len() - slice.len())
}

/// Loads one AOF file (RDB base or commands). `last`: the last file of the manifest,
/// where a torn tail may be truncated.
pub(super) fn load_file(
    server: &Arc<Server>,
    store: &mut Store,
    dir: &Path,
    name: &str,
    last: bool,
    truncate_ok: bool,
) -> Result<(), LoadError> {
    let path = dir.join(name);
    let data = std::fs::read(&path).map_err(|source| LoadError::Open {
        name: name.into(),
        source,
    })?;
    let start = if data.starts_with(b"REDIS") {
        let tuning = {
            let c = server.config.read();
            (c.key_load_delay, rdb::Shapes::of(&c))
        };
        load_base(store, &data, name, tuning)?
    } else {
        0
    };
    let Some(at) = replay(server, store, &data, start, name)? else {
        return Ok(());
    };
    if !last {
        return Err(LoadError::TruncatedNotLast);
    }
    if !truncate_ok {
        return Err(LoadError::UnexpectedEof { name: name.into() });
    }
    warning!("!!! Warning: short read while loading the AOF file {name}!!!");
    warning!("!!! Truncating the AOF {name} at offset {at} !!!");
    OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(at as u64).map(|_| f))
        .and_then(|f| f.sync_all())
        .map_err(|source| LoadError::Truncate {
            name: name.into(),
            source,
        })?;
    warning!("AOF {name} loaded anyway because aof-load-truncated is enabled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_parser_detects_truncation_and_garbage() {
        let mut data = Vec::new();
        crate::propagate::encode_command(&[Bytes::from("SET"), Bytes::from("k")], &mut data);
        match parse_command(&data, 0) {
            Parsed::Cmd(argv, next) => {
                assert_eq!(argv.len(), 2);
                assert_eq!(next, data.len());
            }
            _ => panic!("expected a command"),
        }
        for cut in 1..data.len() {
            assert!(
                matches!(parse_command(&data[..cut], 0), Parsed::Truncated),
                "cut {cut}"
            );
        }
        assert!(matches!(parse_command(b"hello\r\n", 0), Parsed::Bad));
        assert!(matches!(
            parse_command(b"*1\r\n$3\r\nabcX\n", 0),
            Parsed::Bad
        ));
        assert!(matches!(parse_command(b"#TS:123\r\n", 0), Parsed::Skip(9)));
        assert!(matches!(parse_command(b"*0\r\n", 0), Parsed::Bad));
        assert!(matches!(
            parse_command(b"*1\r\n$99999999999999999999\r\n", 0),
            Parsed::Bad
        ));
        assert!(matches!(
            parse_command(b"*1\r\n$18446744073709551615\r\nab\r\n", 0),
            Parsed::Truncated
        ));
    }

    #[test]
    fn replayed_commands_get_the_lookup_and_arity_checks() {
        let argv = |a: &[&str]| {
            a.iter()
                .map(|s| Bytes::from(s.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(matches!(
            check(&argv(&["SET", "k"]), "f.aof"),
            Err(LoadError::WrongArity { ref command, .. }) if command == "set"
        ));
        let e = check(&argv(&["NOPE", "k"]), "f.aof").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unknown command 'NOPE' reading the append only file f.aof"
        );
        assert!(check(&argv(&["set", "k", "v"]), "f.aof").is_ok());
    }
}
