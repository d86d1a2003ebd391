//! `resource.Quantity`: parsing, comparison and upstream's canonical form.
//!
//! A quantity is held exactly as a signed count of nano-units (`i128`), which
//! is upstream's precision floor: anything finer is rounded away from zero to
//! the next nano, as upstream does when parsing. The suffix family the value
//! was written in (binary, decimal SI or decimal exponent) is remembered to
//! pick the canonical rendering.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Upstream's error when the text does not look like a quantity.
pub const ERR_FORMAT_WRONG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// Upstream's error when the number part cannot be read.
pub const ERR_NUMERIC: &str = "unable to parse numeric part of quantity";
/// Upstream's error for an unknown suffix.
pub const ERR_SUFFIX: &str = "unable to parse quantity's suffix";
/// Returned when a value does not fit this implementation's range (about
/// ±1.7e29 units), which upstream's arbitrary precision would accept.
pub const ERR_TOO_LARGE: &str = "quantity is too large";

const NANO: i128 = 1_000_000_000;

/// How a quantity prefers to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `1e3`, `12e-3`
    DecimalExponent,
    /// `1Ki`, `5Gi`
    BinarySI,
    /// `1k`, `500m`, `3`
    DecimalSI,
}

/// A Kubernetes resource quantity (`100m`, `1Gi`, `2.5`, `1e3`).
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl Default for Quantity {
    fn default() -> Self {
        Quantity {
            nanos: 0,
            format: Format::DecimalSI,
        }
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

/// The pieces of a quantity string, split as upstream's scanner does.
struct Parts {
    positive: bool,
    num: String,
    denom: String,
    suffix: String,
    /// False when the number part has no digit at all (".", "-k").
    had_digit: bool,
}

fn split_quantity(s: &[u8]) -> Result<Parts, &'static str> {
    let end = s.len();
    let mut pos = 0;
    let mut positive = true;
    match s.first() {
        Some(b'-') => {
            positive = false;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    let ascii = |a: usize, b: usize| String::from_utf8_lossy(&s[a..b]).into_owned();
    let zero = |positive| Parts {
        positive,
        num: "0".into(),
        denom: String::new(),
        suffix: String::new(),
        had_digit: true,
    };

    // Leading zeros; a string of only zeros (or nothing after the sign) is 0.
    let mut had_digit = false;
    while pos < end && s[pos] == b'0' {
        pos += 1;
        had_digit = true;
    }
    if pos >= end {
        return Ok(zero(positive));
    }

    let start = pos;
    while pos < end && s[pos].is_ascii_digit() {
        pos += 1;
    }
    had_digit |= pos > start;
    let mut num = ascii(start, pos);
    if num.is_empty() {
        num = "0".into();
    }
    let mut denom = String::new();
    if pos < end && s[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < end && s[pos].is_ascii_digit() {
            pos += 1;
        }
        had_digit |= pos > start;
        denom = ascii(start, pos);
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&s[pos]) {
        pos += 1;
    }
    if pos < end && (s[pos] == b'-' || s[pos] == b'+') {
        pos += 1;
    }
    while pos < end && s[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(ERR_FORMAT_WRONG);
    }
    Ok(Parts {
        positive,
        num,
        denom,
        suffix: ascii(suffix_start, end),
        had_digit,
    })
}

/// (base, exponent, format) for a suffix.
fn interpret_suffix(suffix: &str) -> Option<(u32, i64, Format)> {
    let dec = |e| Some((10, e, Format::DecimalSI));
    let bin = |e| Some((2, e, Format::BinarySI));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let e: i64 = s[1..].parse().ok()?;
            Some((10, e, Format::DecimalExponent))
        }
        _ => None,
    }
}

fn pow10(e: u32) -> Option<i128> {
    10i128.checked_pow(e)
}

/// `ceil(|n| / d)` with the sign of `n` (upstream rounds away from zero).
fn div_away_from_zero(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d != 0 {
        if n > 0 {
            q + 1
        } else {
            q - 1
        }
    } else {
        q
    }
}

impl Quantity {
    /// Parses a quantity string. Errors carry upstream's messages.
    pub fn parse(s: &str) -> Result<Quantity, String> {
        if s.is_empty() {
            return Err(ERR_FORMAT_WRONG.to_string());
        }
        let parts = split_quantity(s.as_bytes()).map_err(str::to_string)?;
        let (base, exponent, mut format) =
            interpret_suffix(&parts.suffix).ok_or_else(|| ERR_SUFFIX.to_string())?;
        if !parts.had_digit {
            return Err(ERR_NUMERIC.to_string());
        }

        // value = digits × 10^dec_exp × 2^bin_exp
        let mut digits = format!("{}{}", parts.num, parts.denom);
        let mut dec_exp: i64 = -(parts.denom.len() as i64);
        let bin_exp: u32 = if base == 2 { exponent as u32 } else { 0 };
        if base == 10 {
            dec_exp = dec_exp.saturating_add(exponent);
        }
        // Trailing zeros only shift the exponent.
        while digits.len() > 1 && digits.ends_with('0') {
            digits.pop();
            dec_exp = dec_exp.saturating_add(1);
        }
        let digits = digits.trim_start_matches('0');
        let mut magnitude: i128 = if digits.is_empty() {
            0
        } else {
            let shift = dec_exp.saturating_add(9); // to nano-units
            if shift >= 0 {
                if shift > 40 {
                    return Err(ERR_TOO_LARGE.to_string());
                }
                let d: i128 = digits.parse().map_err(|_| ERR_TOO_LARGE.to_string())?;
                d.checked_mul(pow10(shift as u32).ok_or(ERR_TOO_LARGE)?)
                    .and_then(|v| v.checked_mul(1i128 << bin_exp))
                    .ok_or_else(|| ERR_TOO_LARGE.to_string())?
            } else {
                let drop = shift.unsigned_abs();
                if bin_exp == 0 {
                    // Split the digits at the nano boundary and round up.
                    let keep = digits.len() as i128 - drop as i128;
                    if keep <= 0 {
                        1
                    } else {
                        let (int_part, frac) = digits.split_at(keep as usize);
                        let v: i128 = int_part.parse().map_err(|_| ERR_TOO_LARGE.to_string())?;
                        if frac.bytes().any(|b| b != b'0') {
                            v + 1
                        } else {
                            v
                        }
                    }
                } else {
                    let d: i128 = digits.parse().map_err(|_| ERR_TOO_LARGE.to_string())?;
                    let scaled = d.checked_mul(1i128 << bin_exp).ok_or(ERR_TOO_LARGE)?;
                    match if drop <= 38 { pow10(drop as u32) } else { None } {
                        Some(p) => div_away_from_zero(scaled, p),
                        None => 1,
                    }
                }
            }
        };
        if format == Format::BinarySI {
            let max = i64::MAX as i128 * NANO;
            if magnitude > max {
                magnitude = max;
            }
            if magnitude > 0 && magnitude < NANO {
                format = Format::DecimalSI;
            }
        }
        let nanos = if parts.positive {
            magnitude
        } else {
            -magnitude
        };
        Ok(Quantity { nanos, format })
    }

    /// Reads a quantity from JSON: a string, a number, or null (zero).
    pub fn from_value(v: &Value) -> Result<Quantity, String> {
        match v {
            Value::String(s) => Quantity::parse(s.trim()),
            Value::Number(n) => Quantity::parse(&n.to_string()),
            Value::Null => Ok(Quantity::default()),
            _ => Err(ERR_FORMAT_WRONG.to_string()),
        }
    }

    /// A whole-unit quantity (`new(3, DecimalSI)` is "3").
    pub fn new(value: i128, format: Format) -> Quantity {
        Quantity {
            nanos: value.saturating_mul(NANO),
            format,
        }
    }

    /// A quantity of `milli` thousandths (`new_milli(1500, DecimalSI)` is "1500m").
    pub fn new_milli(milli: i128, format: Format) -> Quantity {
        Quantity {
            nanos: milli.saturating_mul(1_000_000),
            format,
        }
    }

    /// The preferred format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The exact value in nano-units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in thousandths, rounded away from zero (upstream `MilliValue`).
    pub fn milli_value(&self) -> i128 {
        div_away_from_zero(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded away from zero (upstream `Value`).
    pub fn value(&self) -> i128 {
        div_away_from_zero(self.nanos, NANO)
    }

    /// The value as a float (for ratios and display).
    pub fn as_f64(&self) -> f64 {
        self.nanos as f64 / NANO as f64
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The sum, keeping this quantity's format; `None` on overflow.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        Some(Quantity {
            nanos: self.nanos.checked_add(other.nanos)?,
            format: self.format,
        })
    }

    /// The difference, keeping this quantity's format; `None` on overflow.
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        Some(Quantity {
            nanos: self.nanos.checked_sub(other.nanos)?,
            format: self.format,
        })
    }

    /// The canonical string as JSON.
    pub fn to_value(&self) -> Value {
        Value::String(self.to_string())
    }

    /// (mantissa, exponent) with the exponent a multiple of 3 and as large as
    /// possible while the mantissa stays whole.
    fn decimal_parts(&self) -> (i128, i32) {
        let mut m = self.nanos;
        let mut e: i32 = -9;
        while m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        match e.rem_euclid(3) {
            1 => {
                m *= 10;
                e -= 1;
            }
            2 => {
                m *= 100;
                e -= 2;
            }
            _ => {}
        }
        (m, e)
    }
}

impl fmt::Display for Quantity {
    /// Upstream's canonical form: `0`; binary suffixes only for whole values
    /// of at least 1024 that divide evenly; otherwise decimal SI (or the
    /// exponent form if that is how the value was written).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let mut format = self.format;
        if format == Format::BinarySI && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0)
        {
            format = Format::DecimalSI;
        }
        match format {
            Format::BinarySI => {
                let mut v = self.nanos / NANO;
                let mut k = 0;
                while k < 6 && v % 1024 == 0 {
                    v /= 1024;
                    k += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k];
                write!(f, "{v}{suffix}")
            }
            Format::DecimalSI => {
                let (mut m, e) = self.decimal_parts();
                let suffix = match e {
                    -9 => "n",
                    -6 => "u",
                    -3 => "m",
                    0 => "",
                    3 => "k",
                    6 => "M",
                    9 => "G",
                    12 => "T",
                    15 => "P",
                    _ => {
                        // Beyond exa: scale the mantissa up and keep "E".
                        for _ in 0..(e - 18).max(0) {
                            m *= 10;
                        }
                        "E"
                    }
                };
                write!(f, "{m}{suffix}")
            }
            Format::DecimalExponent => {
                let (m, e) = self.decimal_parts();
                if e == 0 {
                    write!(f, "{m}")
                } else {
                    write!(f, "{m}e{e}")
                }
            }
        }
    }
}

impl std::str::FromStr for Quantity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Quantity::from_value(&v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(s: &str) -> String {
        Quantity::parse(s).unwrap().to_string()
    }

    #[test]
    fn canonical_forms_match_upstream() {
        let cases = [
            ("0", "0"),
            ("0Ki", "0"),
            ("-0", "0"),
            ("1500m", "1500m"),
            ("1.5", "1500m"),
            ("0.5", "500m"),
            ("1024Ki", "1Mi"),
            ("1000", "1k"),
            ("1k", "1k"),
            ("100Mi", "100Mi"),
            ("1.5Gi", "1536Mi"),
            ("1.1Ki", "1126400m"),
            ("0.5Ki", "512"),
            ("1e3", "1e3"),
            ("129e6", "129e6"),
            ("1E3", "1e3"),
            ("128974848", "128974848"),
            ("123Mi", "123Mi"),
            ("-1Ki", "-1Ki"),
            ("1000Ki", "1000Ki"),
            ("2048", "2048"),
            ("1Ei", "1Ei"),
            ("5G", "5G"),
            ("0.1m", "100u"),
            ("1n", "1n"),
            ("100n", "100n"),
            ("+3", "3"),
            ("10e-1", "1"),
            ("1.", "1"),
            (".5", "500m"),
        ];
        for (input, want) in cases {
            assert_eq!(canon(input), want, "canonical form of {input}");
        }
    }

    #[test]
    fn precision_finer_than_nano_rounds_up() {
        assert_eq!(canon("0.1n"), "1n");
        assert_eq!(canon("-0.1n"), "-1n");
        assert_eq!(canon("1.0000000001"), "1000000001n");
        assert_eq!(canon("1e-20"), "1e-9");
        assert_eq!(canon("0.0000000000001k"), "1n");
    }

    #[test]
    fn milli_and_whole_values_round_away_from_zero() {
        let q = Quantity::parse("1500m").unwrap();
        assert_eq!(q.milli_value(), 1500);
        assert_eq!(q.value(), 2);
        assert_eq!(Quantity::parse("0.1m").unwrap().milli_value(), 1);
        assert_eq!(Quantity::parse("-1500m").unwrap().value(), -2);
        assert_eq!(Quantity::parse("1Gi").unwrap().value(), 1 << 30);
        assert_eq!(Quantity::parse("2").unwrap().milli_value(), 2000);
    }

    #[test]
    fn comparisons_ignore_the_format() {
        let a = Quantity::parse("1Ki").unwrap();
        let b = Quantity::parse("1024").unwrap();
        assert_eq!(a, b);
        assert!(Quantity::parse("1").unwrap() > Quantity::parse("999m").unwrap());
        assert!(Quantity::parse("1Mi").unwrap() > Quantity::parse("1M").unwrap());
        assert!(Quantity::parse("-1").unwrap() < Quantity::parse("0").unwrap());
        assert!(Quantity::parse("0m").unwrap().is_zero());
    }

    #[test]
    fn bad_input_gets_upstream_errors() {
        assert_eq!(Quantity::parse("").unwrap_err(), ERR_FORMAT_WRONG);
        assert_eq!(Quantity::parse("abc").unwrap_err(), ERR_FORMAT_WRONG);
        assert_eq!(Quantity::parse("k").unwrap_err(), ERR_NUMERIC);
        assert_eq!(Quantity::parse(".ki").unwrap_err(), ERR_SUFFIX);
        assert_eq!(Quantity::parse("1ki").unwrap_err(), ERR_SUFFIX);
        assert_eq!(Quantity::parse("1e").unwrap_err(), ERR_SUFFIX);
        assert_eq!(Quantity::parse("1 Gi").unwrap_err(), ERR_FORMAT_WRONG);
        assert_eq!(Quantity::parse("1Gix").unwrap_err(), ERR_FORMAT_WRONG);
        assert_eq!(Quantity::parse(".").unwrap_err(), ERR_NUMERIC);
        assert_eq!(Quantity::parse("1.2.3").unwrap_err(), ERR_FORMAT_WRONG);
        assert_eq!(Quantity::parse("1e999999").unwrap_err(), ERR_TOO_LARGE);
        assert!(Quantity::parse("é").is_err());
    }

    #[test]
    fn json_strings_numbers_and_null_are_accepted() {
        assert_eq!(
            Quantity::from_value(&json!("2Gi")).unwrap().to_string(),
            "2Gi"
        );
        assert_eq!(Quantity::from_value(&json!(3)).unwrap().to_string(), "3");
        assert_eq!(
            Quantity::from_value(&json!(0.25)).unwrap().to_string(),
            "250m"
        );
        assert!(Quantity::from_value(&Value::Null).unwrap().is_zero());
        assert!(Quantity::from_value(&json!(true)).is_err());
    }

    #[test]
    fn serde_round_trips_through_the_canonical_string() {
        let q: Quantity = serde_json::from_value(json!("1024Mi")).unwrap();
        assert_eq!(serde_json::to_value(q).unwrap(), json!("1Gi"));
    }

    #[test]
    fn binary_values_are_capped_at_int64_max() {
        let q = Quantity::parse("100000Ei").unwrap();
        assert_eq!(q.value(), i64::MAX as i128);
    }

    #[test]
    fn arithmetic_keeps_the_left_format() {
        let a = Quantity::parse("1Gi").unwrap();
        let b = Quantity::parse("512Mi").unwrap();
        assert_eq!(a.checked_add(&b).unwrap().to_string(), "1536Mi");
        assert_eq!(a.checked_sub(&b).unwrap().to_string(), "512Mi");
        assert_eq!(
            Quantity::new_milli(250, Format::DecimalSI).to_string(),
            "250m"
        );
        assert_eq!(Quantity::new(4, Format::DecimalSI).to_string(), "4");
    }
}
