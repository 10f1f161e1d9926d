//! The open-files limit that `maxclients` needs, adjusted as Redis does at start-up
//! and when CONFIG SET raises `maxclients`: each client takes a descriptor, and the
//! server keeps [`RESERVED_FDS`] more for its own files, listeners and replicas.
//!
//! The soft limit is raised (soft and hard set to the wanted value, stepping down 16
//! at a time while the kernel refuses) when it is lower than `maxclients + 32`; if it
//! cannot reach that, `maxclients` is lowered to what the limit allows, with Redis's
//! log lines, instead of the accept loop failing with EMFILE once that many clients
//! are connected.
//!
//! Why unsafe: `getrlimit`/`setrlimit` write to or read from a `struct rlimit` by
//! pointer; each call passes a local of the right type.
#![allow(unsafe_code)]

use crate::warning;

/// Descriptors kept for the server itself (Redis's `CONFIG_MIN_RESERVED_FDS`).
pub const RESERVED_FDS: u64 = 32;

/// What [`adjust`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adjusted {
    /// The limit already allowed `maxclients` (or was raised to): keep it.
    Enough,
    /// The limit stays below what `maxclients` needs: use this many clients.
    Reduced(u64),
    /// Not even the reserved descriptors fit: the server cannot start.
    TooLow { current: u64, wanted: u64 },
}

fn get() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable `rlimit` for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

fn set(limit: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: `lim` is a valid `rlimit`, only read by the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes room for `maxclients` clients in the process's open-files limit, logging
/// what Redis logs; says how many clients the limit allows.
pub fn adjust(maxclients: u64) -> Adjusted {
    let wanted = maxclients.saturating_add(RESERVED_FDS);
    let old = match get() {
        Ok((cur, _)) => cur,
        Err(e) => {
            warning!(
                "Unable to obtain the current NOFILE limit ({}), assuming 1024 and setting the max clients configuration accordingly.",
                crate::config::strerror(&e)
            );
            return Adjusted::Reduced(1024 - RESERVED_FDS);
        }
    };
    if old >= wanted {
        return Adjusted::Enough;
    }
    let mut best = wanted;
    let mut error = None;
    while best > old {
        match set(best) {
            Ok(()) => break,
            Err(e) => error = Some(e),
        }
        if best < 16 {
            best = old;
            break;
        }
        best -= 16;
    }
    let best = best.max(old);
    if best >= wanted {
        crate::notice!(
            "Increased maximum number of open files to {wanted} (it was originally set to {old})."
        );
        return Adjusted::Enough;
    }
    if best <= RESERVED_FDS {
        // The caller reports it (and exits).
        return Adjusted::TooLow {
            current: old,
            wanted,
        };
    }
    let allowed = best - RESERVED_FDS;
    warning!("You requested maxclients of {maxclients} requiring at least {wanted} max file descriptors.");
    let why = error.map_or_else(String::new, |e| crate::config::strerror(&e));
    warning!("Server can't set maximum open files to {wanted} because of OS error: {why}.");
    warning!(
        "Current maximum open files is {best}. maxclients has been reduced to {allowed} to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'."
    );
    Adjusted::Reduced(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_that_already_fits_is_left_alone() {
        let (cur, max) = get().expect("getrlimit");
        assert!(cur > RESERVED_FDS + 1);
        assert_eq!(adjust(cur - RESERVED_FDS), Adjusted::Enough);
        assert_eq!(get().expect("getrlimit"), (cur, max));
    }
}
