//! C's `printf("%.*g")` for doubles, as glibc prints them: cjson formats numbers with it
//! (`%.14g` by default) and Lua 5.1 converts numbers to strings with `%.14g`.
//! Rust's `{:e}` formatting is exact (correctly rounded, round-half-even on the exact
//! binary value) like glibc's, so the digits agree; this module only arranges them.

/// `%.{precision}g` of `x` (precision 0 counts as 1, as in C).
pub fn format_g(x: f64, precision: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() {
            "-nan".into()
        } else {
            "nan".into()
        };
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf".into() } else { "inf".into() };
    }
    let p = precision.clamp(1, 400);
    // Scientific form with p significant digits decides the exponent after rounding.
    let sci = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let p_i = i32::try_from(p).unwrap_or(i32::MAX);
    if exp < -4 || exp >= p_i {
        let m = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.unsigned_abs())
    } else {
        let decimals = usize::try_from(p_i - 1 - exp).unwrap_or(0);
        let fixed = format!("{:.*}", decimals, x);
        strip_zeros(&fixed).to_string()
    }
}

/// Drops trailing zeros after a decimal point, and the point itself if nothing follows.
fn strip_zeros(s: &str) -> &str {
    if !s.contains('.') {
        return s;
    }
    let t = s.trim_end_matches('0');
    t.strip_suffix('.').unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::format_g;

    #[test]
    fn matches_printf_g_for_typical_values() {
        let cases: &[(f64, usize, &str)] = &[
            (0.0, 14, "0"),
            (-0.0, 14, "-0"),
            (1.0, 14, "1"),
            (0.1, 14, "0.1"),
            (1.5, 14, "1.5"),
            (100.0, 14, "100"),
            (1e15, 14, "1e+15"),
            (123456789012345.0, 14, "1.2345678901234e+14"),
            (12345678901234.0, 14, "12345678901234"),
            (0.0001, 14, "0.0001"),
            (0.00001, 14, "1e-05"),
            (1.0 / 3.0, 14, "0.33333333333333"),
            (2.5, 1, "2"),
            (3.5, 1, "4"),
            (9.5, 1, "1e+01"),
            (1e300, 14, "1e+300"),
            (5e-324, 14, "4.9406564584125e-324"),
            (f64::INFINITY, 14, "inf"),
            (f64::NEG_INFINITY, 14, "-inf"),
            (-123.456, 5, "-123.46"),
            (99999.5, 5, "1e+05"),
        ];
        for (x, p, want) in cases {
            assert_eq!(format_g(*x, *p), *want, "%.{p}g of {x}");
        }
    }
}
