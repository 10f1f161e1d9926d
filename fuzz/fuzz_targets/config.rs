//! The redis.conf reader on arbitrary text (given as standard input, `tandem-server -`):
//! a configuration or a `ConfigError`, never a panic. A loaded configuration must answer
//! CONFIG GET for every parameter.
//!
//! Directives that touch the filesystem are not fuzzed: `include` (could name a FIFO or
//! /dev/zero), `dir` (changes the process's working directory) and `logfile` (creates
//! the file). Inputs holding them are skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Once;
use tandem_server::config::parse::load;

static SANDBOX: Once = Once::new();

fn touches_files(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n').any(|line| {
        let t = tandem_server::resp::split_args(line.trim_ascii()).unwrap_or_default();
        t.first().is_some_and(|d| {
            let d = d.to_ascii_lowercase();
            d == b"include" || d == b"dir" || d == b"logfile"
        })
    })
}

fuzz_target!(|data: &[u8]| {
    // Relative paths the parser resolves (e.g. `dbfilename`) land in a private dir.
    SANDBOX.call_once(|| {
        let _ = std::env::set_current_dir(tandem_fuzz::scratch_dir("config"));
    });
    // Files are read as lossy UTF-8; standard input must be UTF-8, so convert first.
    let text = String::from_utf8_lossy(data);
    if touches_files(text.as_bytes()) {
        return;
    }
    let args = vec!["-".to_string()];
    let Ok(config) = load(&args, &mut text.as_bytes()) else {
        return;
    };
    let all = config.matching(b"*");
    assert!(!all.is_empty(), "CONFIG GET * is empty");
    for (name, value) in all {
        // `dir` is answered from the process's working directory, not the stored value.
        if name == "dir" {
            continue;
        }
        assert_eq!(config.get(name), Some(value.as_str()), "CONFIG GET {name}");
    }
    let _ = config.not_acted_on();
    let _ = config.refused();
});
