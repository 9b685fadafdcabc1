//! Parquet on FHIR annotations: values derived from an element's text for querying.
//!
//! - `__<name>_numeric`: a decimal's value as Decimal128(38, 6).
//! - `__<name>_start` / `__<name>_end`: the UTC instants a `date`/`dateTime` spans at its
//!   precision, in milliseconds since the epoch.
//!
//! Hand-written rather than taken from chrono or rust_decimal: the rules are FHIR's
//! (partial dates whose precision sets the range, exponent decimals that must round to
//! scale 6 or give null), not any crate's parser, and both fit in a page.

/// Precision and scale of the numeric annotation.
pub const DECIMAL_PRECISION: u8 = 38;
pub const DECIMAL_SCALE: i8 = 6;

/// A FHIR decimal's text as an integer scaled by 10^6, rounded half away from zero.
/// `None` when the text is not a JSON number or the value needs more than 38 digits.
pub fn decimal_scaled(text: &str) -> Option<i128> {
    let b = text.as_bytes();
    let mut i = 0;
    let negative = b.first() == Some(&b'-');
    if negative {
        i += 1;
    }
    // Collect significant digits and the position of the decimal point.
    let mut digits: Vec<u8> = Vec::with_capacity(b.len());
    let mut frac_digits: i64 = 0;
    let mut seen_point = false;
    let mut any = false;
    while i < b.len() {
        match b[i] {
            c @ b'0'..=b'9' => {
                any = true;
                if !(digits.is_empty() && c == b'0') {
                    digits.push(c - b'0');
                    if seen_point {
                        frac_digits += 1;
                    }
                } else if seen_point {
                    frac_digits += 1; // leading zero after the point still shifts the scale
                }
            }
            b'.' if !seen_point => seen_point = true,
            b'e' | b'E' => break,
            _ => return None,
        }
        i += 1;
    }
    if !any {
        return None;
    }
    let mut exponent: i64 = 0;
    if i < b.len() {
        let exp: &str = std::str::from_utf8(&b[i + 1..]).ok()?;
        exponent = exp.parse::<i64>().ok()?;
    }
    // value = digits * 10^(exponent - frac_digits); we want value * 10^6.
    let shift = exponent - frac_digits + i64::from(DECIMAL_SCALE);
    if digits.is_empty() {
        return Some(0);
    }
    let mut value: i128 = 0;
    let max = 10i128.pow(u32::from(DECIMAL_PRECISION)) - 1;
    if shift >= 0 {
        if digits.len() as i64 + shift > i64::from(DECIMAL_PRECISION) {
            return None;
        }
        for d in &digits {
            value = value * 10 + i128::from(*d);
        }
        value = value.checked_mul(10i128.checked_pow(shift as u32)?)?;
    } else {
        // Drop -shift trailing digits, rounding half away from zero.
        let keep = digits.len() as i64 + shift;
        if keep < 0 {
            return Some(0);
        }
        let keep = keep as usize;
        if keep > usize::from(DECIMAL_PRECISION) {
            return None;
        }
        for d in &digits[..keep] {
            value = value * 10 + i128::from(*d);
        }
        if digits.get(keep).is_some_and(|d| *d >= 5) {
            value += 1;
        }
    }
    if value > max {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

const MS_PER_DAY: i64 = 86_400_000;

/// The `[start, end]` UTC instants, in milliseconds, that a FHIR `date` or `dateTime`
/// spans at its precision: `2014-06` spans 2014-06-01T00:00:00.000Z to
/// 2014-06-30T23:59:59.999Z. Values without a time zone are taken as UTC. `None` when
/// the text is not a valid date or dateTime.
pub fn date_range(text: &str) -> Option<(i64, i64)> {
    let b = text.as_bytes();
    if b.len() < 4 {
        return None;
    }
    let year = i64::from(num(&b[0..4])?);
    let rest = &b[4..];
    if rest.is_empty() {
        let start = days_from_civil(year, 1, 1) * MS_PER_DAY;
        let end = days_from_civil(year + 1, 1, 1) * MS_PER_DAY - 1;
        return Some((start, end));
    }
    if rest.len() < 3 || rest[0] != b'-' {
        return None;
    }
    let month = num(&rest[1..3])?;
    if !(1..=12).contains(&month) {
        return None;
    }
    let rest = &rest[3..];
    if rest.is_empty() {
        let start = days_from_civil(year, month, 1) * MS_PER_DAY;
        let end = start + i64::from(days_in_month(year, month)) * MS_PER_DAY - 1;
        return Some((start, end));
    }
    if rest.len() < 3 || rest[0] != b'-' {
        return None;
    }
    let day = num(&rest[1..3])?;
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let day_start = days_from_civil(year, month, day) * MS_PER_DAY;
    let rest = &rest[3..];
    if rest.is_empty() {
        return Some((day_start, day_start + MS_PER_DAY - 1));
    }
    // Time: Thh:mm[:ss[.f+]] followed by Z or ±hh:mm (required by FHIR; UTC when absent).
    if rest[0] != b'T' || rest.len() < 6 || rest[3] != b':' {
        return None;
    }
    let hour = num(&rest[1..3])?;
    let minute = num(&rest[4..6])?;
    if hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &rest[6..];
    let mut ms = i64::from(hour * 3600 + minute * 60) * 1000;
    // How many milliseconds one unit of the last given component spans.
    let mut span: i64 = 60_000;
    if rest.first() == Some(&b':') {
        let sec = num(rest.get(1..3)?)?;
        if sec > 60 {
            return None;
        }
        ms += i64::from(sec.min(59)) * 1000;
        span = 1000;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            let frac = &rest[1..1 + digits];
            let mut frac_ms: i64 = 0;
            for (k, c) in frac.iter().take(3).enumerate() {
                frac_ms += i64::from(c - b'0') * 10i64.pow(2 - k as u32);
            }
            ms += frac_ms;
            span = 10i64.pow(3u32.saturating_sub(digits as u32));
            rest = &rest[1 + digits..];
        }
    }
    let offset_ms: i64 = match rest {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = num(&[*h1, *h2])?;
            let om = num(&[*m1, *m2])?;
            if oh > 14 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 60 + om) * 60_000;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let start = day_start + ms - offset_ms;
    Some((start, start + span - 1))
}

/// `ms` since the epoch as `YYYY-MM-DDThh:mm:ss.fffZ`.
pub fn format_utc_ms(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    // civil_from_days
    let z = days + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(ms: i64) -> String {
        format_utc_ms(ms)
    }

    fn range(t: &str) -> (String, String) {
        let (s, e) = date_range(t).unwrap_or_else(|| panic!("{t} should parse"));
        (iso(s), iso(e))
    }

    #[test]
    fn date_precisions() {
        assert_eq!(
            range("2014"),
            (
                "2014-01-01T00:00:00.000Z".into(),
                "2014-12-31T23:59:59.999Z".into()
            )
        );
        assert_eq!(
            range("2014-06"),
            (
                "2014-06-01T00:00:00.000Z".into(),
                "2014-06-30T23:59:59.999Z".into()
            )
        );
        assert_eq!(
            range("2016-02"),
            (
                "2016-02-01T00:00:00.000Z".into(),
                "2016-02-29T23:59:59.999Z".into()
            )
        );
        assert_eq!(
            range("1900-02"),
            (
                "1900-02-01T00:00:00.000Z".into(),
                "1900-02-28T23:59:59.999Z".into()
            )
        );
        assert_eq!(
            range("2014-06-03"),
            (
                "2014-06-03T00:00:00.000Z".into(),
                "2014-06-03T23:59:59.999Z".into()
            )
        );
        assert_eq!(
            range("1925-12-31"),
            (
                "1925-12-31T00:00:00.000Z".into(),
                "1925-12-31T23:59:59.999Z".into()
            )
        );
    }

    #[test]
    fn datetime_precisions_and_zones() {
        assert_eq!(
            range("2014-06-01T12:05Z"),
            (
                "2014-06-01T12:05:00.000Z".into(),
                "2014-06-01T12:05:59.999Z".into()
            )
        );
        assert_eq!(
            range("2014-06-01T12:05:30Z"),
            (
                "2014-06-01T12:05:30.000Z".into(),
                "2014-06-01T12:05:30.999Z".into()
            )
        );
        assert_eq!(
            range("2014-06-01T12:05:30.5Z"),
            (
                "2014-06-01T12:05:30.500Z".into(),
                "2014-06-01T12:05:30.599Z".into()
            )
        );
        assert_eq!(
            range("2014-06-01T12:05:30.25+00:00"),
            (
                "2014-06-01T12:05:30.250Z".into(),
                "2014-06-01T12:05:30.259Z".into()
            )
        );
        assert_eq!(
            range("2014-06-01T12:05:30.123456+00:00"),
            (
                "2014-06-01T12:05:30.123Z".into(),
                "2014-06-01T12:05:30.123Z".into()
            )
        );
        assert_eq!(
            range("2014-06-01T01:05:30+10:00"),
            (
                "2014-05-31T15:05:30.000Z".into(),
                "2014-05-31T15:05:30.999Z".into()
            )
        );
        assert_eq!(
            range("2014-12-31T22:00:00-05:30"),
            (
                "2015-01-01T03:30:00.000Z".into(),
                "2015-01-01T03:30:00.999Z".into()
            )
        );
        assert_eq!(
            range("2014-06-01T12:05:30"),
            (
                "2014-06-01T12:05:30.000Z".into(),
                "2014-06-01T12:05:30.999Z".into()
            )
        );
    }

    #[test]
    fn invalid_dates_give_none() {
        for t in [
            "",
            "201",
            "2014-13",
            "2014-02-30",
            "2014-06-01T25:00:00Z",
            "2014-06-01T12:00:00+5",
            "June 2014",
            "2014-06-01 12:00",
        ] {
            assert!(date_range(t).is_none(), "{t} should not parse");
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal_scaled("36.5"), Some(36_500_000));
        assert_eq!(decimal_scaled("-0.0001"), Some(-100));
        assert_eq!(decimal_scaled("6.3000"), Some(6_300_000));
        assert_eq!(decimal_scaled("0.1e-5"), Some(1));
        assert_eq!(decimal_scaled("1E2"), Some(100_000_000));
        assert_eq!(decimal_scaled("1.5e+1"), Some(15_000_000));
        assert_eq!(decimal_scaled("0.0000005"), Some(1)); // rounds half away from zero
        assert_eq!(decimal_scaled("-0.0000005"), Some(-1));
        assert_eq!(decimal_scaled("0.0000004"), Some(0));
        assert_eq!(decimal_scaled("42.33502708030088"), Some(42_335_027));
        assert_eq!(decimal_scaled("0"), Some(0));
        assert_eq!(decimal_scaled("1e-400"), Some(0));
        // 32 integer digits fit, 33 do not.
        assert!(decimal_scaled("99999999999999999999999999999999").is_some());
        assert_eq!(decimal_scaled("999999999999999999999999999999999"), None);
        assert_eq!(decimal_scaled("1e40"), None);
        // More than 38 significant digits: the value still fits after rounding the fraction.
        assert_eq!(
            decimal_scaled("1.2345678901234567890123456789012345678901"),
            Some(1_234_568)
        );
        assert_eq!(decimal_scaled("abc"), None);
        assert_eq!(decimal_scaled("-"), None);
    }
}
