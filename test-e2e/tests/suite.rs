//! `make e2e`'s suite (the `e2e` binary) run the way `make test` runs it:
//! against a fresh three-node ferrokube cluster, with the disruptive tests
//! on (`--ferrokube-cluster`). The report is printed and written as JUnit XML
//! to `_output/e2e/junit.xml`; every test must pass.

use std::process::Command;
use std::time::Duration;

use test_e2e::{describe_output, run_with_timeout, Cluster};

#[test]
fn conformance_suite_on_a_fresh_cluster() {
    let c = Cluster::create_with(&["--nodes", "3"]);
    let junit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../_output/e2e/junit.xml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_e2e"));
    cmd.args(["--kubeconfig"])
        .arg(&c.kubeconfig)
        .args([
            "--context",
            &c.context,
            "--ferrokube-cluster",
            &c.name,
            "--junit",
        ])
        .arg(&junit)
        .env("FERROKUBE_HOME", c.home())
        .env("FERROKUBE_BIN_DIR", test_e2e::bin_dir());
    let out = run_with_timeout(cmd, None, Duration::from_secs(1500));
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    assert!(out.status.success(), "{}", describe_output("e2e", &out));
    let summary = report
        .lines()
        .find(|l| l.ends_with(" failed") && l.contains(" passed, "))
        .unwrap_or_else(|| panic!("no summary line in\n{report}"));
    assert!(summary.ends_with(", 0 failed"), "{summary}");
    let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 12, "{summary}");
    let xml = std::fs::read_to_string(&junit).expect("JUnit report");
    assert!(xml.contains("<testsuites name=\"ferrokube-e2e\""), "{xml}");
    assert!(xml.contains("failures=\"0\""), "{xml}");
}
