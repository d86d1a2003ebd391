//! Resource quantities for the core strategies: a thin layer over
//! `apimachinery::quantity::Quantity` (parse, compare, add, canonical
//! string) with the few extras the strategies need (milli rounding, JSON
//! rewriting of resource lists).

use apimachinery::quantity::Quantity;
use serde_json::Value;
use std::cmp::Ordering;

const NANO: i128 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Qty(Quantity);

fn div_away_from_zero(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else if n > 0 {
        q + 1
    } else {
        q - 1
    }
}

impl Qty {
    pub(crate) fn zero() -> Qty {
        Qty(Quantity::default())
    }

    /// Parses upstream's quantity grammar (`500m`, `1Gi`, `1e3`).
    pub(crate) fn parse(text: &str) -> Option<Qty> {
        let t = text.trim();
        if t.is_empty() {
            return None;
        }
        Quantity::parse(t).ok().map(Qty)
    }

    /// A quantity from JSON: a string, or a number as YAML clients send it.
    pub(crate) fn from_json(v: &Value) -> Option<Qty> {
        match v {
            Value::String(s) => Qty::parse(s),
            Value::Number(_) => Quantity::from_value(v).ok().map(Qty),
            _ => None,
        }
    }

    /// The value in units of 1e-9.
    pub(crate) fn nanos(&self) -> i128 {
        self.0.nanos()
    }

    pub(crate) fn is_negative(&self) -> bool {
        self.nanos() < 0
    }

    pub(crate) fn is_positive(&self) -> bool {
        self.nanos() > 0
    }

    pub(crate) fn add(&self, other: &Qty) -> Qty {
        self.0.checked_add(&other.0).map(Qty).unwrap_or(*self)
    }

    /// Rounds up (away from zero) to a whole milli-unit, as upstream's
    /// `SetDefaults_ResourceList` does.
    pub(crate) fn round_up_milli(&self) -> Qty {
        if self.nanos() % 1_000_000 == 0 {
            return *self;
        }
        Qty(Quantity::new_milli(
            div_away_from_zero(self.nanos(), 1_000_000),
            self.0.format(),
        ))
    }

    /// Whether the value is a whole number of units.
    pub(crate) fn is_integer(&self) -> bool {
        self.nanos() % NANO == 0
    }

    /// The value in milli-units (rounded away from zero).
    pub(crate) fn milli(&self) -> i128 {
        div_away_from_zero(self.nanos(), 1_000_000)
    }

    /// Upstream's canonical string.
    pub(crate) fn canonical(&self) -> String {
        self.0.to_string()
    }
}

impl PartialOrd for Qty {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Qty {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos().cmp(&other.nanos())
    }
}

/// The canonical string of a JSON quantity ("0" when absent), or its text
/// when it does not parse.
pub(crate) fn qty_string(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "0".to_string(),
        Some(v) => match Qty::from_json(v) {
            Some(q) => q.canonical(),
            None => match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        },
    }
}

/// Rewrites every quantity in a resource list (`{"cpu": "1000m"}`) in
/// canonical form; with `round_milli`, values finer than 1m are rounded up
/// first. Entries that do not parse are left for validation to report.
pub(crate) fn canonicalize_list(list: Option<&mut Value>, round_milli: bool) {
    let Some(Value::Object(m)) = list else { return };
    for v in m.values_mut() {
        if let Some(q) = Qty::from_json(v) {
            let q = if round_milli { q.round_up_milli() } else { q };
            *v = Value::String(q.canonical());
        }
    }
}

/// Canonicalizes a single quantity member in place.
pub(crate) fn canonicalize_one(v: Option<&mut Value>) {
    if let Some(v) = v {
        if let Some(q) = Qty::from_json(v) {
            *v = Value::String(q.canonical());
        }
    }
}
