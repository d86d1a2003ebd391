//! Go-style durations, as flags, config files and messages spell them:
//! [`parse`] follows Go's `time.ParseDuration` (`90s`, `5m0s`, `1h2m3.5s`,
//! `300ms`, `1.5µs`, `0`) and [`format`] Go's `time.Duration.String()`
//! (`1h0m0s`, `1m30s`, `1.5s`, `500ms`, `0s`).
//!
//! Differences from Go: surrounding white space is ignored, and a negative
//! duration is an error (a [`Duration`] cannot be negative).

use std::time::Duration;

/// Why a duration did not parse. The texts are Go's without its `time: `
/// prefix and name the (trimmed) input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a duration at all, or larger than Go's (about 292 years).
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// A number without a unit (`"10"`, `"1m30"`).
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit other than ns, us (µs, μs), ms, s, m, h.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
    /// A duration with a leading `-`.
    #[error("invalid duration {0:?}")]
    Negative(String),
}

/// Go's largest duration, in nanoseconds.
const MAX_NANOS: u64 = i64::MAX as u64;

/// Parse like Go's `time.ParseDuration`: a sequence of decimal numbers, each
/// with an optional fraction and a unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`,
/// `m`, `h`), with an optional leading `+`; `"0"` needs no unit.
pub fn parse(s: &str) -> Result<Duration, ParseError> {
    let input = s.trim();
    let invalid = || ParseError::Invalid(input.to_string());
    let mut s = input;
    if let Some(rest) = s.strip_prefix('-') {
        if rest.is_empty() {
            return Err(invalid());
        }
        return Err(ParseError::Negative(input.to_string()));
    }
    s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        // [0-9]*
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut v: u64 = 0;
        for b in s[..int_len].bytes() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .filter(|v| *v <= MAX_NANOS)
                .ok_or_else(invalid)?;
        }
        s = &s[int_len..];
        // (\.[0-9]*)? — digits past what fits are dropped, as in Go.
        let (mut f, mut scale, mut frac_len) = (0u64, 1f64, 0usize);
        if let Some(rest) = s.strip_prefix('.') {
            frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for b in rest[..frac_len].bytes() {
                if overflow || f > MAX_NANOS / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + u64::from(b - b'0');
                if y > MAX_NANOS + 1 {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            s = &rest[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            // No digits at all: "s", ".s", "-".
            return Err(invalid());
        }
        // The unit runs to the next digit or dot.
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(ParseError::MissingUnit(input.to_string()));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let nanos_per_unit: u64 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => {
                return Err(ParseError::UnknownUnit {
                    unit: unit.to_string(),
                    input: input.to_string(),
                })
            }
        };
        let mut v = v
            .checked_mul(nanos_per_unit)
            .filter(|v| *v <= MAX_NANOS)
            .ok_or_else(invalid)?;
        if f > 0 {
            // As Go: float64(f) * (float64(unit) / scale), truncated.
            v = v
                .checked_add((f as f64 * (nanos_per_unit as f64 / scale)) as u64)
                .filter(|v| *v <= MAX_NANOS)
                .ok_or_else(invalid)?;
        }
        total = total
            .checked_add(v)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(invalid)?;
    }
    Ok(Duration::from_nanos(total))
}

/// Format like Go's `time.Duration.String()`: `0s`; below a second in the
/// largest of ns, µs, ms that keeps the integer part non-zero (`500ms`,
/// `1.5µs`); otherwise `[<h>h][<m>m]<s>[.<frac>]s` (`1h0m0s`, `1m20s`,
/// `1.5s`), trailing zeros of the fraction dropped.
pub fn format(d: Duration) -> String {
    let secs = d.as_secs();
    let nanos = u64::from(d.subsec_nanos());
    if secs == 0 {
        return match nanos {
            0 => "0s".to_string(),
            1..=999 => format!("{nanos}ns"),
            1_000..=999_999 => format!("{}µs", decimal(nanos, 3)),
            _ => format!("{}ms", decimal(nanos, 6)),
        };
    }
    let s = format!("{}{}s", secs % 60, fraction(nanos, 9));
    let (m, h) = ((secs / 60) % 60, secs / 3600);
    if h > 0 {
        format!("{h}h{m}m{s}")
    } else if m > 0 {
        format!("{m}m{s}")
    } else {
        s
    }
}

/// `v / 10^prec` with its fraction.
fn decimal(v: u64, prec: u32) -> String {
    let p = 10u64.pow(prec);
    format!("{}{}", v / p, fraction(v % p, prec))
}

/// `.ddd` for `v` as `prec` fractional digits, trailing zeros dropped; empty
/// for zero.
fn fraction(v: u64, prec: u32) -> String {
    if v == 0 {
        return String::new();
    }
    let digits = format!("{v:0width$}", width = prec as usize);
    format!(".{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_like_go() {
        let ok: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("10s", Duration::from_secs(10)),
            ("+5s", Duration::from_secs(5)),
            ("5m0s", Duration::from_secs(300)),
            ("5m", Duration::from_secs(300)),
            ("1h30m", Duration::from_secs(5400)),
            ("1h2m3.5s", ms(3_723_500)),
            ("1.5m", Duration::from_secs(90)),
            ("300ms", ms(300)),
            ("250ms", ms(250)),
            (".5s", ms(500)),
            ("5.s", Duration::from_secs(5)),
            ("0.1s", ms(100)),
            ("1.5µs", Duration::from_nanos(1500)),
            ("1.5μs", Duration::from_nanos(1500)),
            ("2us", Duration::from_micros(2)),
            ("7ns", Duration::from_nanos(7)),
            ("1h1h", Duration::from_secs(7200)),
            (" 2m ", Duration::from_secs(120)),
            (
                "2562047h47m16.854775807s",
                Duration::from_nanos(i64::MAX as u64),
            ),
            // Fraction digits beyond what fits are dropped, as in Go.
            (
                "0.3333333333333333333333h",
                Duration::from_nanos(1_200_000_000_000),
            ),
        ];
        for (s, want) in ok {
            assert_eq!(parse(s).as_ref(), Ok(want), "{s}");
        }
    }

    #[test]
    fn rejects_like_go() {
        let inv = |s: &str| ParseError::Invalid(s.into());
        let cases: Vec<(&str, ParseError)> = vec![
            ("", inv("")),
            ("   ", inv("")),
            ("s", inv("s")),
            ("s5", inv("s5")),
            (".s", inv(".s")),
            ("-", inv("-")),
            ("+", inv("+")),
            ("1..5s", ParseError::MissingUnit("1..5s".into())),
            ("2562047h47m16.854775808s", inv("2562047h47m16.854775808s")),
            ("9999999999999999999999h", inv("9999999999999999999999h")),
            ("3000000h", inv("3000000h")),
            ("10", ParseError::MissingUnit("10".into())),
            ("1m30", ParseError::MissingUnit("1m30".into())),
            (
                "10x",
                ParseError::UnknownUnit {
                    unit: "x".into(),
                    input: "10x".into(),
                },
            ),
            (
                "1e400h",
                ParseError::UnknownUnit {
                    unit: "e".into(),
                    input: "1e400h".into(),
                },
            ),
            ("-1s", ParseError::Negative("-1s".into())),
            ("-0s", ParseError::Negative("-0s".into())),
        ];
        for (s, want) in cases {
            assert_eq!(parse(s), Err(want), "{s}");
        }
    }

    #[test]
    fn error_texts() {
        let text = |s: &str| parse(s).unwrap_err().to_string();
        assert_eq!(text("x"), r#"invalid duration "x""#);
        assert_eq!(text("10"), r#"missing unit in duration "10""#);
        assert_eq!(text("10x"), r#"unknown unit "x" in duration "10x""#);
        assert_eq!(text("-1s"), r#"invalid duration "-1s""#);
    }

    #[test]
    fn formats_like_go() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (ms(5), "5ms"),
            (ms(500), "500ms"),
            (Duration::from_micros(1_500), "1.5ms"),
            (ms(1_500), "1.5s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(45), "45s"),
            (Duration::from_secs(80), "1m20s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(120), "2m0s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (ms(3_723_500), "1h2m3.5s"),
            (Duration::from_nanos(1_000_000_001), "1.000000001s"),
            (
                Duration::from_nanos(i64::MAX as u64),
                "2562047h47m16.854775807s",
            ),
        ];
        for (d, want) in cases {
            assert_eq!(format(*d), *want, "{d:?}");
        }
    }

    #[test]
    fn round_trips() {
        for s in ["1h2m3.5s", "300ms", "1.5µs", "7ns", "0s", "5m0s"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }
}
