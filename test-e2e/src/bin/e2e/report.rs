//! The suite's report: one line per test, the summary line, JUnit XML.

use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone)]
pub struct TestResult {
    pub group: String,
    pub name: String,
    pub outcome: Outcome,
    pub elapsed: Duration,
    /// Why it failed or was skipped.
    pub message: String,
}

impl TestResult {
    pub fn line(&self) -> String {
        let word = match self.outcome {
            Outcome::Passed => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "skipped",
        };
        let mut s = format!(
            "[{}] {} ... {word} ({:.1}s)",
            self.group,
            self.name,
            self.elapsed.as_secs_f64()
        );
        if !self.message.is_empty() {
            for l in self.message.lines().take(30) {
                s.push_str("\n    ");
                s.push_str(l);
            }
        }
        s
    }
}

/// The closing lines: skipped tests (if any), then `N passed, M failed`.
pub fn summary(results: &[TestResult]) -> String {
    let count = |o| results.iter().filter(|r| r.outcome == o).count();
    let mut s = String::new();
    let skipped = count(Outcome::Skipped);
    if skipped > 0 {
        s.push_str(&format!("{skipped} skipped\n"));
    }
    s.push_str(&format!(
        "{} passed, {} failed\n",
        count(Outcome::Passed),
        count(Outcome::Failed)
    ));
    s
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one `<testsuite>` per group.
pub fn junit(results: &[TestResult]) -> String {
    let mut groups: BTreeMap<&str, Vec<&TestResult>> = BTreeMap::new();
    for r in results {
        groups.entry(r.group.as_str()).or_default().push(r);
    }
    let total = |rs: &[&TestResult], o| rs.iter().filter(|r| r.outcome == o).count();
    let time = |rs: &[&TestResult]| rs.iter().map(|r| r.elapsed.as_secs_f64()).sum::<f64>();
    let all: Vec<&TestResult> = results.iter().collect();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&format!(
        "<testsuites name=\"ferrokube-e2e\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
        all.len(),
        total(&all, Outcome::Failed),
        total(&all, Outcome::Skipped),
        time(&all)
    ));
    for (g, rs) in &groups {
        s.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
            xml_escape(g),
            rs.len(),
            total(rs, Outcome::Failed),
            total(rs, Outcome::Skipped),
            time(rs)
        ));
        for r in rs {
            s.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml_escape(g),
                xml_escape(&r.name),
                r.elapsed.as_secs_f64()
            ));
            match r.outcome {
                Outcome::Passed => s.push_str("/>\n"),
                Outcome::Failed => s.push_str(&format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    xml_escape(r.message.lines().next().unwrap_or("failed")),
                    xml_escape(&r.message)
                )),
                Outcome::Skipped => s.push_str(&format!(
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                    xml_escape(&r.message)
                )),
            }
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(group: &str, name: &str, outcome: Outcome, message: &str) -> TestResult {
        TestResult {
            group: group.into(),
            name: name.into(),
            outcome,
            elapsed: Duration::from_millis(1500),
            message: message.into(),
        }
    }

    #[test]
    fn summary_and_junit() {
        let rs = vec![
            r("apps", "a <deployment>", Outcome::Passed, ""),
            r("apps", "b", Outcome::Failed, "boom & \"bust\"\nline 2"),
            r("node", "c", Outcome::Skipped, "needs --ferrokube-cluster"),
        ];
        assert_eq!(summary(&rs), "1 skipped\n1 passed, 1 failed\n");
        assert_eq!(rs[0].line(), "[apps] a <deployment> ... ok (1.5s)");
        assert!(rs[1]
            .line()
            .starts_with("[apps] b ... FAILED (1.5s)\n    boom"));
        let x = junit(&rs);
        assert!(x.contains(
            "<testsuites name=\"ferrokube-e2e\" tests=\"3\" failures=\"1\" skipped=\"1\""
        ));
        assert!(x.contains("<testsuite name=\"apps\" tests=\"2\" failures=\"1\" skipped=\"0\""));
        assert!(x.contains("name=\"a &lt;deployment&gt;\""));
        assert!(x.contains("<failure message=\"boom &amp; &quot;bust&quot;\">"));
        assert!(x.contains("<skipped message=\"needs --ferrokube-cluster\"/>"));
    }
}
