//! Label selectors: the `-l`/`labelSelector=` string syntax and
//! `metav1.LabelSelector` objects, with upstream matching, canonical string
//! form and error messages.

use crate::validation::{is_qualified_name, is_valid_label_value};
use serde_json::{Map, Value};
use std::fmt;

/// A requirement's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `a=b`
    Equals,
    /// `a==b`
    DoubleEquals,
    /// `a!=b`
    NotEquals,
    /// `a in (x,y)`
    In,
    /// `a notin (x,y)`
    NotIn,
    /// `a`
    Exists,
    /// `!a`
    DoesNotExist,
    /// `a>3`
    GreaterThan,
    /// `a<3`
    LessThan,
}

impl Operator {
    /// The operator's name as upstream's `selection.Operator` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// One `key op values` term of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    op: Operator,
    values: Vec<String>,
}

/// Renders a value as Go's `%#v` would for a `[]string`.
fn go_string_slice(vals: &[String]) -> String {
    let parts: Vec<String> = vals.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", parts.join(", "))
}

/// Joins errors as upstream's aggregate error does.
fn aggregate(errs: Vec<String>) -> Result<(), String> {
    let mut uniq: Vec<String> = Vec::new();
    for e in errs {
        if !uniq.contains(&e) {
            uniq.push(e);
        }
    }
    match uniq.len() {
        0 => Ok(()),
        1 => Err(uniq.remove(0)),
        _ => Err(format!("[{}]", uniq.join(", "))),
    }
}

impl Requirement {
    /// Builds a validated requirement (upstream `NewRequirement`, no path).
    /// Errors read like `key: Invalid value: "x": ...` or
    /// `values[0][app]: Invalid value: "-x": ...`.
    pub fn new(key: &str, op: Operator, values: Vec<String>) -> Result<Requirement, String> {
        let mut errs = Vec::new();
        let key_errs = is_qualified_name(key);
        if !key_errs.is_empty() {
            errs.push(format!(
                "key: Invalid value: {key:?}: {}",
                key_errs.join("; ")
            ));
        }
        match op {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(format!(
                        "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
                        "[]string(nil)"
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {}: exact-match compatibility requires one single value",
                        go_string_slice(&values)
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(format!(
                        "values: Invalid value: {}: values set must be empty for exists and does not exist",
                        go_string_slice(&values)
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                        go_string_slice(&values)
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(format!(
                            "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let msgs = is_valid_label_value(v);
            if !msgs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {v:?}: {}",
                    msgs.join("; ")
                ));
            }
        }
        aggregate(errs)?;
        Ok(Requirement {
            key: key.to_string(),
            op,
            values,
        })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.op
    }

    /// The values, as given.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` satisfies this requirement.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let lookup = |k: &str| labels.and_then(|m| m.get(k)).and_then(Value::as_str);
        let has = |k: &str| labels.is_some_and(|m| m.contains_key(k));
        match self.op {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                lookup(&self.key).is_some_and(|v| self.values.iter().any(|x| x == v))
            }
            Operator::NotIn | Operator::NotEquals => match lookup(&self.key) {
                None => true,
                Some(v) => !self.values.iter().any(|x| x == v),
            },
            Operator::Exists => has(&self.key),
            Operator::DoesNotExist => !has(&self.key),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = lookup(&self.key).and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                if self.values.len() != 1 {
                    return false;
                }
                let Ok(want) = self.values[0].parse::<i64>() else {
                    return false;
                };
                if self.op == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let sep = match self.op {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(sep)?;
        let set = matches!(self.op, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        let mut vals = self.values.clone();
        vals.sort();
        f.write_str(&vals.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A label selector: the AND of its requirements.
///
/// `Default` (and [`Selector::everything`]) matches every object;
/// [`Selector::nothing`] matches none (a null `metav1.LabelSelector`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Eos,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn symbol_token(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits a selector string into tokens (upstream's lexer rules).
fn lex(input: &str) -> Result<Vec<(Tok, String)>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < chars.len() && is_space(chars[pos]) {
            pos += 1;
        }
        if pos >= chars.len() {
            out.push((Tok::Eos, String::new()));
            return Ok(out);
        }
        if is_special(chars[pos]) {
            // Longest run of special characters that still forms a token.
            let mut buf = String::new();
            let mut best: Option<(Tok, String)> = None;
            while pos < chars.len() && is_special(chars[pos]) {
                buf.push(chars[pos]);
                if let Some(t) = symbol_token(&buf) {
                    best = Some((t, buf.clone()));
                    pos += 1;
                } else if best.is_some() {
                    break;
                } else {
                    pos += 1;
                }
            }
            match best {
                Some(item) => out.push(item),
                None => return Err(format!("error expected: keyword found '{buf}'")),
            }
        } else {
            let mut buf = String::new();
            while pos < chars.len() && !is_special(chars[pos]) && !is_space(chars[pos]) {
                buf.push(chars[pos]);
                pos += 1;
            }
            match symbol_token(&buf) {
                Some(t) => out.push((t, buf)),
                None => out.push((Tok::Identifier, buf)),
            }
        }
    }
}

struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

/// Whether `in`/`notin` count as keywords or as plain identifiers.
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

impl Parser {
    fn at(&self, i: usize, ctx: Ctx) -> (Tok, String) {
        let (t, l) = self
            .items
            .get(i)
            .cloned()
            .unwrap_or((Tok::Eos, String::new()));
        let t = if ctx == Ctx::Values && matches!(t, Tok::In | Tok::NotIn) {
            Tok::Identifier
        } else {
            t
        };
        (t, l)
    }

    fn lookahead(&self, ctx: Ctx) -> (Tok, String) {
        self.at(self.pos, ctx)
    }

    fn consume(&mut self, ctx: Ctx) -> (Tok, String) {
        let r = self.at(self.pos, ctx);
        if self.pos < self.items.len() {
            self.pos += 1;
        }
        r
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Ctx::Values);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Tok::Eos => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Ctx::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::Eos => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op) = op {
            return Requirement::new(&key, op, Vec::new());
        }
        let op = self.parse_operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(&key, op, values)
    }

    /// Returns the key and, for `a` / `!a`, the inferred unary operator.
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut op = None;
        let (mut tok, mut lit) = self.consume(Ctx::Values);
        if tok == Tok::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Ctx::Values);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let errs = is_qualified_name(&lit);
        if !errs.is_empty() {
            return Err(format!(
                "<nil>: Invalid value: {lit:?}: {}",
                errs.join("; ")
            ));
        }
        let (next, _) = self.lookahead(Ctx::Values);
        if (next == Tok::Eos || next == Tok::Comma) && op.is_none() {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.consume(Ctx::KeyAndOperator);
        Ok(match tok {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ))
            }
        })
    }

    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Ctx::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Ctx::Values);
        match tok {
            Tok::Identifier | Tok::Comma => {
                let set = self.parse_identifiers_list()?;
                let (t, _) = self.consume(Ctx::Values);
                if t != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set)
            }
            Tok::ClosedPar => {
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut set: Vec<String> = Vec::new();
        let insert = |set: &mut Vec<String>, v: String| {
            if !set.contains(&v) {
                set.push(v);
            }
        };
        loop {
            let (tok, lit) = self.consume(Ctx::Values);
            match tok {
                Tok::Identifier => {
                    insert(&mut set, lit);
                    let (t2, l2) = self.lookahead(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(sorted(set)),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        insert(&mut set, String::new());
                    }
                    let (t2, _) = self.lookahead(Ctx::Values);
                    if t2 == Tok::ClosedPar {
                        insert(&mut set, String::new());
                        return Ok(sorted(set));
                    }
                    if t2 == Tok::Comma {
                        insert(&mut set, String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Ctx::Values);
        if tok == Tok::Eos || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Ctx::Values);
        if tok == Tok::Identifier {
            return Ok(vec![lit]);
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

impl Selector {
    /// A selector matching every object.
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// A selector matching no object.
    pub fn nothing() -> Selector {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the string syntax (`a=b,c in (x,y),!d,e>3`). An empty or
    /// all-blank string selects everything.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let items = lex(s)?;
        let mut p = Parser { items, pos: 0 };
        let mut reqs = p.parse()?;
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector {
            requirements: reqs,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` JSON object. `null` selects
    /// nothing; `{}` selects everything. An In/NotIn expression without
    /// values, an unknown operator or an invalid key/value is an error.
    pub fn from_label_selector(v: &Value) -> Result<Selector, String> {
        let m = match v {
            Value::Null => return Ok(Selector::nothing()),
            Value::Object(m) => m,
            other => {
                return Err(format!(
                    "invalid label selector: expected an object, got {other}"
                ))
            }
        };
        let labels = match m.get("matchLabels") {
            None | Some(Value::Null) => None,
            Some(Value::Object(l)) => Some(l),
            Some(_) => {
                return Err(
                    "invalid label selector: matchLabels must be a map of strings".to_string(),
                )
            }
        };
        let exprs = match m.get("matchExpressions") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a),
            Some(_) => {
                return Err("invalid label selector: matchExpressions must be a list".to_string())
            }
        };
        let mut reqs = Vec::new();
        for (k, val) in labels.into_iter().flatten() {
            let Some(val) = val.as_str() else {
                return Err(format!(
                    "invalid label selector: matchLabels value for {k:?} must be a string"
                ));
            };
            reqs.push(Requirement::new(
                k,
                Operator::Equals,
                vec![val.to_string()],
            )?);
        }
        for e in exprs.into_iter().flatten() {
            let Some(em) = e.as_object() else {
                return Err(
                    "invalid label selector: each matchExpressions entry must be an object"
                        .to_string(),
                );
            };
            let key = em.get("key").and_then(Value::as_str).unwrap_or("");
            let op_name = em.get("operator").and_then(Value::as_str).unwrap_or("");
            let op = match op_name {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            let mut values = Vec::new();
            match em.get("values") {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) => {
                    for x in a {
                        match x.as_str() {
                            Some(s) => values.push(s.to_string()),
                            None => {
                                return Err(format!(
                                    "invalid label selector: values for {key:?} must be strings"
                                ))
                            }
                        }
                    }
                }
                Some(_) => {
                    return Err(format!(
                        "invalid label selector: values for {key:?} must be a list"
                    ))
                }
            }
            reqs.push(Requirement::new(key, op, values)?);
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector {
            requirements: reqs,
            nothing: false,
        })
    }

    /// A selector requiring every `key=value` of the map (upstream
    /// `SelectorFromSet`, unvalidated). Non-string values are skipped.
    pub fn from_map(labels: &Map<String, Value>) -> Selector {
        let mut reqs: Vec<Requirement> = labels
            .iter()
            .filter_map(|(k, v)| {
                v.as_str().map(|v| Requirement {
                    key: k.clone(),
                    op: Operator::Equals,
                    values: vec![v.to_string()],
                })
            })
            .collect();
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Selector {
            requirements: reqs,
            nothing: false,
        }
    }

    /// Adds a requirement, keeping requirements sorted by key.
    pub fn with_requirement(mut self, r: Requirement) -> Selector {
        if !self.nothing {
            self.requirements.push(r);
            self.requirements.sort_by(|a, b| a.key.cmp(&b.key));
        }
        self
    }

    /// Whether the object with these `metadata.labels` is selected.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when the selector does not restrict anything (matches all).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for the match-nothing selector.
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The single value `key` must have, if the selector pins one
    /// (`key=v`, `key==v` or `key in (v)`).
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match r.op {
            Operator::Equals | Operator::DoubleEquals | Operator::In if r.values.len() == 1 => {
                Some(&r.values[0])
            }
            _ => None,
        }
    }
}

impl fmt::Display for Selector {
    /// Upstream's canonical `String()`: requirements sorted by key, joined
    /// with commas; the match-nothing selector prints as "".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nothing {
            return Ok(());
        }
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn empty_string_selects_everything() {
        let s = Selector::parse("").unwrap();
        assert!(s.is_empty());
        assert!(s.matches(None));
        assert_eq!(s.to_string(), "");
        assert!(Selector::parse("   ").unwrap().is_empty());
    }

    #[test]
    fn equality_forms_parse_and_match() {
        let l = labels(json!({"app": "web", "tier": "fe"}));
        assert!(Selector::parse("app=web").unwrap().matches(Some(&l)));
        assert!(Selector::parse("app==web").unwrap().matches(Some(&l)));
        assert!(!Selector::parse("app!=web").unwrap().matches(Some(&l)));
        assert!(Selector::parse("app!=db").unwrap().matches(Some(&l)));
        assert!(Selector::parse("missing!=x").unwrap().matches(Some(&l)));
        assert!(!Selector::parse("app=db").unwrap().matches(Some(&l)));
    }

    #[test]
    fn set_based_forms_parse_and_match() {
        let l = labels(json!({"env": "prod"}));
        assert!(Selector::parse("env in (prod, dev)")
            .unwrap()
            .matches(Some(&l)));
        assert!(!Selector::parse("env notin (prod)")
            .unwrap()
            .matches(Some(&l)));
        assert!(Selector::parse("other notin (prod)")
            .unwrap()
            .matches(Some(&l)));
        assert!(Selector::parse("env").unwrap().matches(Some(&l)));
        assert!(!Selector::parse("!env").unwrap().matches(Some(&l)));
        assert!(Selector::parse("!other").unwrap().matches(Some(&l)));
        assert!(Selector::parse("!other").unwrap().matches(None));
    }

    #[test]
    fn comma_means_and_and_whitespace_is_tolerated() {
        let l = labels(json!({"a": "1", "b": "2"}));
        assert!(Selector::parse(" a = 1 , b in ( 2 ) ")
            .unwrap()
            .matches(Some(&l)));
        assert!(!Selector::parse("a=1,b=3").unwrap().matches(Some(&l)));
    }

    #[test]
    fn integer_comparisons_work() {
        let l = labels(json!({"replicas": "5", "name": "x"}));
        assert!(Selector::parse("replicas>3").unwrap().matches(Some(&l)));
        assert!(!Selector::parse("replicas<3").unwrap().matches(Some(&l)));
        assert!(!Selector::parse("name>3").unwrap().matches(Some(&l)));
        assert!(!Selector::parse("absent>3").unwrap().matches(Some(&l)));
        let e = Selector::parse("replicas>abc").unwrap_err();
        assert_eq!(e, "unable to parse requirement: values[0]: Invalid value: \"abc\": for 'Gt', 'Lt' operators, the value must be an integer");
    }

    #[test]
    fn canonical_string_sorts_by_key_and_values() {
        let s = Selector::parse("tier in (b,a),app=web,!gone,x,n>1").unwrap();
        assert_eq!(s.to_string(), "app=web,!gone,n>1,tier in (a,b),x");
        assert_eq!(Selector::parse("a==b").unwrap().to_string(), "a==b");
        assert_eq!(
            Selector::parse("a notin (z,y)").unwrap().to_string(),
            "a notin (y,z)"
        );
    }

    #[test]
    fn empty_values_are_allowed() {
        let s = Selector::parse("a=").unwrap();
        assert!(s.matches(Some(&labels(json!({"a": ""})))));
        assert_eq!(s.to_string(), "a=");
        let s = Selector::parse("x in (foo,,baz),y,z notin ()").unwrap();
        assert_eq!(s.to_string(), "x in (,baz,foo),y,z notin ()");
    }

    #[test]
    fn in_and_notin_may_be_values_and_keys() {
        let s = Selector::parse("in in (in)").unwrap();
        assert!(s.matches(Some(&labels(json!({"in": "in"})))));
        assert!(Selector::parse("a=notin")
            .unwrap()
            .matches(Some(&labels(json!({"a": "notin"})))));
    }

    #[test]
    fn syntax_errors_use_upstream_wording() {
        assert_eq!(
            Selector::parse("a b").unwrap_err(),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            Selector::parse("a in b").unwrap_err(),
            "unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            Selector::parse("a=b c").unwrap_err(),
            "found 'c', expected: ',' or 'end of string'"
        );
        assert_eq!(
            Selector::parse("a=b,").unwrap_err(),
            "found '', expected: identifier after ','"
        );
        assert_eq!(
            Selector::parse("=a").unwrap_err(),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            Selector::parse("a in (b").unwrap_err(),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            Selector::parse("!").unwrap_err(),
            "unable to parse requirement: found '', expected: identifier"
        );
    }

    #[test]
    fn invalid_keys_and_values_are_rejected() {
        let e = Selector::parse("bad_key_=x").unwrap_err();
        assert!(e.starts_with("unable to parse requirement: <nil>: Invalid value: \"bad_key_\": name part must consist of"), "{e}");
        let e = Selector::parse("app=-x").unwrap_err();
        assert!(e.starts_with("unable to parse requirement: values[0][app]: Invalid value: \"-x\": a valid label must be"), "{e}");
    }

    #[test]
    fn label_selector_object_converts() {
        let s = Selector::from_label_selector(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]},
                                 {"key": "canary", "operator": "DoesNotExist"}]
        }))
        .unwrap();
        assert_eq!(s.to_string(), "app=web,!canary,tier in (a,b)");
        assert!(s.matches(Some(&labels(json!({"app": "web", "tier": "a"})))));
        assert!(!s.matches(Some(&labels(
            json!({"app": "web", "tier": "a", "canary": "1"})
        ))));
    }

    #[test]
    fn null_label_selector_matches_nothing_and_empty_matches_everything() {
        let none = Selector::from_label_selector(&Value::Null).unwrap();
        assert!(!none.matches(Some(&labels(json!({"a": "b"})))));
        assert!(!none.matches(None));
        assert!(!none.is_empty());
        assert!(none.matches_nothing());
        let all = Selector::from_label_selector(&json!({})).unwrap();
        assert!(all.is_empty());
        assert!(all.matches(None));
    }

    #[test]
    fn label_selector_in_without_values_is_an_error() {
        let e = Selector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
        )
        .unwrap_err();
        assert_eq!(e, "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty");
        let e = Selector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]}),
        )
        .unwrap_err();
        assert_eq!(e, "\"Foo\" is not a valid label selector operator");
    }

    #[test]
    fn exact_match_is_reported() {
        let s = Selector::parse("a=b,c in (d),e in (f,g)").unwrap();
        assert_eq!(s.requires_exact_match("a"), Some("b"));
        assert_eq!(s.requires_exact_match("c"), Some("d"));
        assert_eq!(s.requires_exact_match("e"), None);
        assert_eq!(s.requires_exact_match("z"), None);
    }

    #[test]
    fn selector_from_map_matches_the_map() {
        let l = labels(json!({"b": "2", "a": "1"}));
        let s = Selector::from_map(&l);
        assert_eq!(s.to_string(), "a=1,b=2");
        assert!(s.matches(Some(&l)));
    }

    #[test]
    fn requirements_can_be_built_and_added() {
        let r = Requirement::new("tier", Operator::NotIn, vec!["b".into(), "a".into()]).unwrap();
        let s = Selector::parse("app=web").unwrap().with_requirement(r);
        assert_eq!(s.to_string(), "app=web,tier notin (a,b)");
        assert_eq!(s.requirements()[1].operator(), Operator::NotIn);
        let e = Requirement::new("bad key", Operator::Exists, vec![]).unwrap_err();
        assert!(
            e.starts_with("key: Invalid value: \"bad key\": name part must consist of"),
            "{e}"
        );
        let e = Requirement::new("a", Operator::Equals, vec![]).unwrap_err();
        assert_eq!(e, "values: Invalid value: []string{}: exact-match compatibility requires one single value");
        assert!(Selector::nothing()
            .with_requirement(Requirement::new("a", Operator::Exists, vec![]).unwrap())
            .matches_nothing());
    }

    #[test]
    fn odd_input_never_panics() {
        for s in [
            "(", ")", "!!", "a!", "a in (", "a in ()", ",", "é=ü", "a>", "a<<1", "a=(b)", "\u{0}",
        ] {
            let _ = Selector::parse(s);
        }
    }
}
