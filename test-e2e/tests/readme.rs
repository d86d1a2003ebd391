//! The README's commands, run as printed: every shell block marked
//! `<!-- readme-test: NAME -->` is run line by line with bash against a
//! fresh cluster (`kubectl` on its context, `ferrokube` on PATH, the
//! `_output/images/` the README names), and each line must succeed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use test_e2e::{describe_output, run_with_timeout, Cluster};

/// The marked blocks of README.md: (name, command lines).
fn blocks(readme: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(l) = lines.next() {
        let Some(name) = l
            .trim()
            .strip_prefix("<!-- readme-test:")
            .and_then(|r| r.strip_suffix("-->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or("");
        assert!(
            fence.starts_with("```sh"),
            "block {name}: no ```sh after the marker"
        );
        let cmds: Vec<String> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(String::from)
            .collect();
        out.push((name.trim().to_string(), cmds));
    }
    out
}

fn images_dir() -> PathBuf {
    std::env::var_os("FERROKUBE_IMAGES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../_output/images"))
}

#[test]
fn readme_commands_work_as_printed() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let blocks = blocks(&readme);
    let names: Vec<&str> = blocks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["kubectl", "multinode", "load"], "README blocks");

    let c = Cluster::create();
    // The multinode block creates and deletes cluster "multi"; if a line
    // fails in between, remove it anyway.
    struct DeleteMulti<'a>(&'a Cluster);
    impl Drop for DeleteMulti<'_> {
        fn drop(&mut self) {
            let _ = self.0.ferrokube(
                &["delete", "cluster", "--name", "multi"],
                Duration::from_secs(120),
            );
        }
    }
    let _multi = DeleteMulti(&c);
    // A working directory where the README's relative paths exist.
    let work = c.scratch("readme-cwd");
    std::fs::create_dir_all(work.join("_output")).unwrap();
    std::os::unix::fs::symlink(images_dir(), work.join("_output/images")).unwrap();
    let path = format!(
        "{}:{}",
        test_e2e::bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (name, cmds) in &blocks {
        for cmd in cmds {
            eprintln!("[readme:{name}] $ {cmd}");
            let mut sh = Command::new("bash");
            sh.args(["-euo", "pipefail", "-c", cmd])
                .current_dir(&work)
                .env("PATH", &path)
                .env("KUBECONFIG", &c.kubeconfig)
                .env("KUBECACHEDIR", c.scratch("kube-cache"))
                .env("FERROKUBE_HOME", c.home())
                .env("FERROKUBE_CLUSTER_NAME", &c.name)
                .env_remove("KUBECTL_KUBERC");
            let out = run_with_timeout(sh, None, Duration::from_secs(300));
            assert!(out.status.success(), "{}", describe_output(cmd, &out));
            let stdout = String::from_utf8_lossy(&out.stdout);
            eprint!("{stdout}");
            // Spot checks of what a reader is told to expect.
            if cmd.contains("wget -qO- http://web/hostname")
                || cmd.contains("curl -s http://127.0.0.1:18080")
            {
                assert!(stdout.contains("web-"), "{cmd}: {stdout}");
            }
            if cmd.starts_with("kubectl --context ferrokube-multi get nodes") {
                for n in ["multi-control-plane", "multi-worker ", "multi-worker2"] {
                    assert!(stdout.contains(n), "{stdout}");
                }
                assert_eq!(stdout.matches(" Ready ").count(), 3, "{stdout}");
            }
            if cmd.starts_with("kubectl get nodes") {
                assert!(
                    stdout.contains(&format!("{}-control-plane", c.name)),
                    "{stdout}"
                );
            }
        }
    }
}
