//! SLOWLOG: commands slower than `slowlog-log-slower-than` microseconds.

use crate::server::Server;
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SlowEntry {
    pub id: u64,
    pub time: i64,
    pub micros: u64,
    pub argv: Vec<Bytes>,
    pub addr: String,
    pub name: String,
}

#[derive(Debug, Default)]
pub struct SlowLog {
    pub entries: VecDeque<SlowEntry>,
    pub next_id: u64,
}

impl SlowLog {
    /// Records the command if it was slow enough (argv trimmed like Redis: 32 args,
    /// 128 bytes each, secrets redacted by [`crate::redact`]). `name` is the command
    /// table's name. True if an entry was added (at the front).
    pub fn observe(
        &mut self,
        server: &Server,
        name: &str,
        argv: &[Bytes],
        elapsed: Duration,
    ) -> bool {
        let (threshold, max_len) = {
            let c = server.config.read();
            (c.slowlog_log_slower_than, c.slowlog_max_len)
        };
        if threshold < 0 || (elapsed.as_micros() as i64) < threshold {
            return false;
        }
        let argv = crate::redact::redacted(name, argv);
        let mut args: Vec<Bytes> = Vec::new();
        for (i, a) in argv.iter().enumerate() {
            if i == 31 && argv.len() > 32 {
                args.push(Bytes::from(format!(
                    "... ({} more arguments)",
                    argv.len() - 31
                )));
                break;
            }
            if a.len() > 128 {
                let mut v = a[..128].to_vec();
                v.extend_from_slice(format!("... ({} more bytes)", a.len() - 128).as_bytes());
                args.push(Bytes::from(v));
            } else {
                args.push(crate::util::detach(a));
            }
        }
        self.entries.push_front(SlowEntry {
            id: self.next_id,
            time: crate::server::now_ms() / 1000,
            micros: elapsed.as_micros() as u64,
            argv: args,
            addr: String::new(),
            name: String::new(),
        });
        self.next_id += 1;
        while self.entries.len() > max_len {
            self.entries.pop_back();
        }
        true
    }
}
