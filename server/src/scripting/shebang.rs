//! Script flags: what a script declares in its `#!lua flags=...` first line (EVAL),
//! or what its caller implies (EVAL_RO). Functions carry the same flags.

use thiserror::Error;

/// The flags Redis 7.0 defines for scripts and functions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptFlags {
    /// No shebang: Redis's compatibility mode, where OOM and replica checks are made
    /// per command inside the script instead of once when it starts.
    pub compat: bool,
    pub no_writes: bool,
    pub allow_oom: bool,
    pub allow_stale: bool,
    pub no_cluster: bool,
    pub allow_cross_slot_keys: bool,
    /// Not declared by the script: the run comes from EVAL_RO, EVALSHA_RO or FCALL_RO,
    /// which refuse a script that declares it may write.
    pub ro_command: bool,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShebangError {
    #[error("ERR Invalid script shebang")]
    NoNewline,
    #[error("ERR Unexpected engine in script shebang: {0}")]
    Engine(String),
    #[error("ERR Unknown lua shebang option: {0}")]
    Option(String),
    #[error("ERR Unexpected flag in script shebang: {0}")]
    Flag(String),
}

impl ScriptFlags {
    /// Sets one flag by its Redis name; false if the name is unknown.
    pub fn set(&mut self, name: &str) -> bool {
        match name {
            "no-writes" => self.no_writes = true,
            "allow-oom" => self.allow_oom = true,
            "allow-stale" => self.allow_stale = true,
            "no-cluster" => self.no_cluster = true,
            "allow-cross-slot-keys" => self.allow_cross_slot_keys = true,
            _ => return false,
        }
        true
    }
}

/// Splits an EVAL script into its flags and the body to compile. The shebang line is
/// dropped but its newline kept, so line numbers in errors match the source.
pub fn parse(src: &[u8]) -> Result<(ScriptFlags, &[u8]), ShebangError> {
    if !src.starts_with(b"#!") {
        return Ok((
            ScriptFlags {
                compat: true,
                ..Default::default()
            },
            src,
        ));
    }
    let nl = src
        .iter()
        .position(|&c| c == b'\n')
        .ok_or(ShebangError::NoNewline)?;
    let line = String::from_utf8_lossy(&src[..nl]);
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or("");
    if engine != "#!lua" {
        return Err(ShebangError::Engine(engine.to_string()));
    }
    let mut flags = ScriptFlags::default();
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(ShebangError::Option(part.to_string()));
        };
        if list.is_empty() {
            continue;
        }
        for f in list.split(',') {
            if !flags.set(f) {
                return Err(ShebangError::Flag(f.to_string()));
            }
        }
    }
    Ok((flags, &src[nl..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_flags_and_errors_match_redis() {
        let (f, body) = parse(b"return 1").unwrap();
        assert!(f.compat);
        assert_eq!(body, b"return 1");
        let (f, body) = parse(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert!(f.no_writes && f.allow_oom && !f.compat);
        assert_eq!(body, b"\nreturn 1");
        assert_eq!(parse(b"#!lua"), Err(ShebangError::NoNewline));
        assert_eq!(
            parse(b"#!luax\nx").unwrap_err().to_string(),
            "ERR Unexpected engine in script shebang: #!luax"
        );
        assert_eq!(
            parse(b"#!lua name=x\nx").unwrap_err().to_string(),
            "ERR Unknown lua shebang option: name=x"
        );
        assert_eq!(
            parse(b"#!lua flags=no-writes,\nx").unwrap_err().to_string(),
            "ERR Unexpected flag in script shebang: "
        );
        assert!(parse(b"#!lua flags=\nx").is_ok());
    }
}
