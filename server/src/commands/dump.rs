//! Command family: DUMP and RESTORE, the serialized form of one key's value.
//!
//! Payload layout (Redis 7.0's, byte for byte):
//!
//! ```text
//! [type byte][value body as the RDB writer encodes it]   (rdb::value_bytes)
//! [RDB version: u16 little-endian, 10]
//! [CRC64 (Jones) of every byte before it: u64 little-endian]
//! ```
//!
//! RESTORE with a relative TTL is propagated as `RESTORE key <abs-ms> payload ...
//! ABSTTL`, so replicas and the AOF get the same deadline; a RESTORE whose absolute
//! TTL is already past deletes the key (propagated as `DEL key`) and creates nothing.

use super::{arg_i64, err, flags::*, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::rdb;
use crate::resp::Reply;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("dump", 2, READONLY, dump).keys(1, 1, 1),
    Command::new("restore", -4, WRITE | DENYOOM, restore).keys(1, 1, 1),
];

/// The RDB version DUMP writes (Redis 7.0's) and the highest RESTORE accepts.
const DUMP_RDB_VERSION: u16 = 10;
/// Footer length: 2-byte version + 8-byte CRC64.
const FOOTER_LEN: usize = 10;

const BAD_PAYLOAD: CmdError = CmdError(std::borrow::Cow::Borrowed(
    "ERR DUMP payload version or checksum are wrong",
));
const BAD_DATA: CmdError = CmdError(std::borrow::Cow::Borrowed("ERR Bad data format"));
const BUSYKEY: CmdError = CmdError(std::borrow::Cow::Borrowed(
    "BUSYKEY Target key name already exists.",
));

/// Serializes a value into a DUMP payload.
pub fn serialize(v: &crate::types::Value, compression: bool) -> Vec<u8> {
    let mut out = rdb::value_bytes(v, compression);
    out.extend_from_slice(&DUMP_RDB_VERSION.to_le_bytes());
    let crc = rdb::crc64::crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a payload's footer and returns the value bytes it protects.
fn verify(payload: &[u8]) -> Option<&[u8]> {
    let body_len = payload.len().checked_sub(FOOTER_LEN)?;
    let (body, footer) = payload.split_at(body_len);
    let (ver, crc) = footer.split_at(2);
    let ver = u16::from_le_bytes(ver.try_into().ok()?);
    let crc = u64::from_le_bytes(crc.try_into().ok()?);
    let covered = payload.get(..body_len + 2)?;
    (ver <= DUMP_RDB_VERSION && crc == rdb::crc64::crc64(covered)).then_some(body)
}

fn dump(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let compression = ctx.config().rdbcompression;
    match ctx.get(&argv[1]) {
        Some(v) => out.bulk(&serialize(v, compression)),
        None => out.null(),
    }
    Ok(())
}

/// RESTORE's options after the payload.
#[derive(Debug, Default, PartialEq, Eq)]
struct RestoreOpts {
    replace: bool,
    absttl: bool,
    idletime: Option<i64>,
    freq: Option<i64>,
}

fn parse_opts(args: &[Bytes]) -> Result<RestoreOpts, CmdError> {
    let mut o = RestoreOpts::default();
    let mut j = 0;
    while let Some(a) = args.get(j) {
        let next = args.get(j + 1);
        if is_kw(a, "replace") {
            o.replace = true;
        } else if is_kw(a, "absttl") {
            o.absttl = true;
        } else if let (true, Some(n), None) = (is_kw(a, "idletime"), next, o.freq) {
            let v = arg_i64(n)?;
            if v < 0 {
                return Err(CmdError::msg("ERR Invalid IDLETIME value, must be >= 0"));
            }
            o.idletime = Some(v);
            j += 1;
        } else if let (true, Some(n), None) = (is_kw(a, "freq"), next, o.idletime) {
            let v = arg_i64(n)?;
            if !(0..=255).contains(&v) {
                return Err(CmdError::msg(
                    "ERR Invalid FREQ value, must be >= 0 and <= 255",
                ));
            }
            o.freq = Some(v);
            j += 1;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

pub(super) fn restore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let opts = parse_opts(argv.get(4..).unwrap_or(&[]))?;
    let key = &argv[1];
    // Redis refuses an existing key before it reads the TTL.
    if !opts.replace && ctx.exists(key) {
        return Err(BUSYKEY);
    }
    let ttl = arg_i64(&argv[2])?;
    if ttl < 0 {
        return Err(CmdError::msg("ERR Invalid TTL value, must be >= 0"));
    }
    verify(&argv[3]).ok_or(BAD_PAYLOAD)?;
    // Decoded from the whole payload, footer included, as Redis does: a value whose
    // declared length runs into the footer reads the footer bytes, like in Redis.
    let load = rdb::LoadOptions {
        now_ms: ctx.now_ms,
        drop_expired: false,
        shapes: rdb::Shapes::of(&ctx.config()),
    };
    let value = rdb::value_from_bytes(&argv[3], &load).map_err(|_| BAD_DATA)?;
    // Redis refuses empty collections in a payload like in an RDB file.
    if value.is_empty_container() {
        return Err(BAD_DATA);
    }
    let db = ctx.client.db;
    let deleted = opts.replace && ctx.store.dbs[db].remove(key).is_some();
    let at = match ttl {
        0 => None,
        t if opts.absttl => Some(t),
        t => Some(t.saturating_add(ctx.now_ms)),
    };
    if let Some(at) = at {
        let already_expired = at <= ctx.now_ms && !ctx.store.is_replica && !ctx.client.is_master;
        if already_expired {
            if deleted {
                ctx.rewrite = Some(vec![Bytes::from_static(b"DEL"), key.clone()]);
                ctx.store.touch_key(db, key);
                ctx.dirty(1);
                ctx.notify(crate::notify::GENERIC, "del", key);
            }
            out.ok();
            return Ok(());
        }
    }
    // The LRU clock starts at `LRU_EPOCH`, so an IDLETIME up to that (8.5 years)
    // longer than the uptime is kept; a longer one is clamped.
    let idle = opts
        .idletime
        .map_or(0, |s| u32::try_from(s).unwrap_or(u32::MAX));
    let lru = match (ctx.store.hot.lfu, opts.freq) {
        // FREQ sets the counter under an LFU policy (IDLETIME is for LRU ones).
        (Some(_), Some(f)) => {
            crate::evict::Lfu::with_counter(u8::try_from(f).unwrap_or(u8::MAX), ctx.now_ms)
        }
        (Some(_), None) => ctx.lru,
        (None, _) => ctx.lru.saturating_sub(idle),
    };
    ctx.store.dbs[db].set_with_expire(key.clone(), value, at, lru);
    if let (Some(at), false) = (at, opts.absttl) {
        let mut v = argv.to_vec();
        v[2] = Bytes::copy_from_slice(itoa::Buffer::new().format(at).as_bytes());
        v.push(Bytes::from_static(b"ABSTTL"));
        ctx.rewrite = Some(v);
    }
    ctx.store.touch_key(db, key);
    ctx.dirty(1);
    ctx.notify(crate::notify::GENERIC, "restore", key);
    out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Value;

    #[test]
    fn payload_round_trips_and_rejects_a_flipped_byte() {
        let p = serialize(&Value::Str(b"hello".into()), false);
        // type 0, len 5, "hello", version 10 LE, crc.
        assert_eq!(&p[..9], b"\x00\x05hello\x0a\x00");
        let body = verify(&p).expect("valid payload");
        assert!(
            matches!(rdb::value_from_bytes(body, &rdb::LoadOptions::default()), Ok(Value::Str(s)) if &s[..] == b"hello")
        );
        for i in 0..p.len() {
            let mut bad = p.clone();
            bad[i] ^= 0x01;
            assert!(verify(&bad).is_none(), "flip at {i} accepted");
        }
        assert!(verify(&p[..p.len() - 1]).is_none());
        assert!(verify(b"").is_none());
    }

    #[test]
    fn a_newer_rdb_version_is_refused() {
        let mut p = rdb::value_bytes(&Value::Str(b"x".into()), false);
        p.extend_from_slice(&11u16.to_le_bytes());
        let crc = rdb::crc64::crc64(&p);
        p.extend_from_slice(&crc.to_le_bytes());
        assert!(verify(&p).is_none());
    }

    #[test]
    fn idletime_and_freq_together_are_a_syntax_error() {
        let a = |v: &[&str]| {
            v.iter()
                .map(|s| Bytes::from(s.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            parse_opts(&a(&["IDLETIME", "1", "FREQ", "2"])),
            Err(err::SYNTAX)
        );
        assert_eq!(parse_opts(&a(&["IDLETIME"])), Err(err::SYNTAX));
        let o = parse_opts(&a(&["replace", "absttl", "freq", "7"]));
        assert_eq!(
            o,
            Ok(RestoreOpts {
                replace: true,
                absttl: true,
                idletime: None,
                freq: Some(7)
            })
        );
    }
}
