//! A certificate's validity period, read straight from its DER encoding, so a
//! server certificate that expired (or is not valid yet) is refused at startup
//! and on reload with the dates, instead of failing every client's handshake.
//!
//! Layout (RFC 5280): `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE {
//! [0] version OPTIONAL, serialNumber INTEGER, signature SEQUENCE,
//! issuer SEQUENCE, validity SEQUENCE { notBefore Time, notAfter Time }, ... } ... }`
//! where `Time` is UTCTime (tag 0x17, `YYMMDDHHMMSSZ`, years 50-99 are 19xx) or
//! GeneralizedTime (tag 0x18, `YYYYMMDDHHMMSSZ`).

/// Validity bounds in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

/// One DER element: its tag, its content, and what follows it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The validity of a DER certificate; `None` when it cannot be read.
pub fn parse(der: &[u8]) -> Option<Validity> {
    let (0x30, cert, _) = element(der)? else {
        return None;
    };
    let (0x30, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    // serialNumber, signature, issuer
    for want in [0x02, 0x30, 0x30] {
        let (tag, _, after) = element(rest)?;
        if tag != want {
            return None;
        }
        rest = after;
    }
    let (0x30, validity, _) = element(rest)? else {
        return None;
    };
    let (t1, before, after) = element(validity)?;
    let (t2, not_after, _) = element(after)?;
    Some(Validity {
        not_before: time(t1, before)?,
        not_after: time(t2, not_after)?,
    })
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |a, &d| a * 10 + i64::from(d - b'0')))
}

/// UTCTime or GeneralizedTime (`Z` form) to Unix seconds.
fn time(tag: u8, s: &[u8]) -> Option<i64> {
    let (year, rest) = match tag {
        0x17 if s.len() >= 13 => {
            let yy = digits(s.get(..2)?)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        0x18 if s.len() >= 15 => (digits(s.get(..4)?)?, s.get(4..)?),
        _ => return None,
    };
    let f = |i: usize| digits(rest.get(i..i + 2)?);
    let (mon, day, h, m, sec) = (f(0)?, f(2)?, f(4)?, f(6)?, f(8)?);
    if !(1..=12).contains(&mon) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, mon, day) * 86400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `YYYY-MM-DD HH:MM:SS` for Unix seconds (UTC).
pub fn format_utc(t: i64) -> String {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_both_ways() {
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x17, b"491231235959Z"), Some(2524607999));
        assert_eq!(time(0x18, b"20381231000000Z"), Some(2177366400));
        assert_eq!(format_utc(2177366400), "2038-12-31 00:00:00");
        assert_eq!(format_utc(951782400), "2000-02-29 00:00:00");
        assert_eq!(time(0x17, b"701301000000Z"), None);
        assert_eq!(time(0x05, b""), None);
    }

    #[test]
    fn truncated_or_garbage_der_is_none_not_a_panic() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(parse(&[0x30, 0x03, 0x30, 0x01]), None);
        for n in 0..40 {
            let v: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            let _ = parse(&v);
        }
    }
}
