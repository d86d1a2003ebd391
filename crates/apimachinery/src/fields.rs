//! Field selectors (`--field-selector`, `fieldSelector=`): `a=b`, `a==b`,
//! `a!=b` terms joined by commas, with upstream's backslash escaping of `\`,
//! `,` and `=` inside values.

use std::fmt;

/// How a field is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    /// `=` or `==`
    Equals,
    /// `!=`
    NotEquals,
}

/// One `field op value` term; `value` is already unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub op: FieldOperator,
    pub value: String,
}

/// A parsed field selector: the AND of its requirements. `Default` matches
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Escapes `\`, `,` and `=` in a value so it can be put in a selector.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reverses [`escape_value`]; unknown escapes and bare `,`/`=` are errors
/// worded as upstream.
pub fn unescape_value(s: &str) -> Result<String, String> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    ))
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                // Upstream prints the rune's code point here.
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ));
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// Splits on commas that are not escaped; escapes stay in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at the first operator (`!=`, `==` or `=`, tried in that
/// order at each position).
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        if let Some(r) = rest.strip_prefix("!=") {
            return Some((&term[..i], FieldOperator::NotEquals, r));
        }
        if let Some(r) = rest.strip_prefix("==") {
            return Some((&term[..i], FieldOperator::Equals, r));
        }
        if let Some(r) = rest.strip_prefix('=') {
            return Some((&term[..i], FieldOperator::Equals, r));
        }
    }
    None
}

impl FieldSelector {
    /// A selector matching everything.
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Parses `a=b,c!=d`. The empty string selects everything; empty terms
    /// are skipped. Errors: `invalid selector: '<s>'; can't understand '<term>'`
    /// and the escape errors of [`unescape_value`].
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut requirements = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let value = unescape_value(rhs)?;
            requirements.push(FieldRequirement {
                field: lhs.to_string(),
                op,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// A selector requiring `field=value`.
    pub fn one_term_equal(field: &str, value: &str) -> FieldSelector {
        FieldSelector {
            requirements: vec![FieldRequirement {
                field: field.to_string(),
                op: FieldOperator::Equals,
                value: value.to_string(),
            }],
        }
    }

    /// The terms, in upstream's (sorted) order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The field names the selector mentions.
    pub fn fields(&self) -> impl Iterator<Item = &str> + '_ {
        self.requirements.iter().map(|r| r.field.as_str())
    }

    /// True when nothing is restricted.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value `field` must equal, if an `=` term pins it.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.op == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Whether an object matches; `get` returns a field's value, and a
    /// missing field counts as the empty string.
    pub fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let have = get(&r.field).unwrap_or_default();
            match r.op {
                FieldOperator::Equals => have == r.value,
                FieldOperator::NotEquals => have != r.value,
            }
        })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match r.op {
                FieldOperator::Equals => "=",
                FieldOperator::NotEquals => "!=",
            };
            write!(f, "{}{}{}", r.field, op, escape_value(&r.value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn getter<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(f, _)| *f == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        let s = FieldSelector::parse("").unwrap();
        assert!(s.is_empty());
        assert!(s.matches(&|_| None));
        assert_eq!(s.to_string(), "");
    }

    #[test]
    fn equality_and_inequality_terms_match() {
        let g = getter(&[("metadata.name", "a"), ("status.phase", "Running")]);
        assert!(FieldSelector::parse("metadata.name=a").unwrap().matches(&g));
        assert!(FieldSelector::parse("metadata.name==a")
            .unwrap()
            .matches(&g));
        assert!(!FieldSelector::parse("metadata.name!=a")
            .unwrap()
            .matches(&g));
        assert!(
            FieldSelector::parse("status.phase!=Pending,metadata.name=a")
                .unwrap()
                .matches(&g)
        );
        assert!(
            !FieldSelector::parse("status.phase=Pending,metadata.name=a")
                .unwrap()
                .matches(&g)
        );
    }

    #[test]
    fn missing_fields_count_as_empty() {
        assert!(FieldSelector::parse("spec.nodeName=")
            .unwrap()
            .matches(&|_| None));
        assert!(FieldSelector::parse("spec.nodeName!=node1")
            .unwrap()
            .matches(&|_| None));
        assert!(!FieldSelector::parse("spec.nodeName=node1")
            .unwrap()
            .matches(&|_| None));
    }

    #[test]
    fn requirements_are_sorted_and_exposed() {
        let s = FieldSelector::parse("b=2,a!=1").unwrap();
        let fields: Vec<&str> = s.fields().collect();
        assert_eq!(fields, vec!["a", "b"]);
        assert_eq!(s.requirements()[0].op, FieldOperator::NotEquals);
        assert_eq!(s.to_string(), "a!=1,b=2");
        assert_eq!(s.requires_exact_match("b"), Some("2"));
        assert_eq!(s.requires_exact_match("a"), None);
    }

    #[test]
    fn escaped_values_round_trip() {
        let s = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(s.requirements()[0].value, r"a,b=c\d");
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d");
    }

    #[test]
    fn terms_without_operator_are_rejected() {
        assert_eq!(
            FieldSelector::parse("a=b,foo").unwrap_err(),
            "invalid selector: 'a=b,foo'; can't understand 'foo'"
        );
    }

    #[test]
    fn bad_escapes_are_rejected_in_upstream_words() {
        assert_eq!(
            FieldSelector::parse(r"a=b\x").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err(),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn first_operator_wins_for_split() {
        let s = FieldSelector::parse("a!=b").unwrap();
        assert_eq!(s.requirements()[0].field, "a");
        let s = FieldSelector::parse("a==b").unwrap();
        assert_eq!(s.requirements()[0].value, "b");
    }

    #[test]
    fn empty_terms_are_skipped() {
        let s = FieldSelector::parse("a=b,,").unwrap();
        assert_eq!(s.requirements().len(), 1);
    }

    #[test]
    fn unicode_input_does_not_panic() {
        let s = FieldSelector::parse("é=ü,ß!=日本").unwrap();
        assert_eq!(s.requirements().len(), 2);
    }
}
