//! Running `nft` (and other node tools) on the node, or inside a named
//! network namespace (`ip netns exec NS ...`) for tests.

use std::process::Stdio;

use anyhow::{bail, Context, Result};
use tokio::io::AsyncWriteExt;

use crate::rules::{Existing, FAMILY, TABLE};

/// Build the command for `program args...`, inside `netns` when given.
pub fn command(netns: Option<&str>, program: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => tokio::process::Command::new(program),
    };
    cmd.args(args);
    cmd.kill_on_drop(true);
    cmd
}

/// Run `nft <flags> -f -` with `script` on its stdin; its stdout, or an
/// error carrying nft's stderr when it fails.
async fn run_script(netns: Option<&str>, flags: &[&str], script: &str) -> Result<Vec<u8>> {
    let mut args = flags.to_vec();
    args.extend(["-f", "-"]);
    let mut child = command(netns, "nft", &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .context("writing to nft")?;
        drop(stdin);
    }
    let out = child.wait_with_output().await.context("waiting for nft")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "nft {}-f failed ({}): {}",
            flags.iter().map(|f| format!("{f} ")).collect::<String>(),
            out.status,
            stderr.trim()
        );
    }
    Ok(out.stdout)
}

/// Apply an nft transaction (`nft -f -`): all of it or nothing.
pub async fn apply(transaction: &str, netns: Option<&str>) -> Result<()> {
    run_script(netns, &[], transaction).await.map(drop)
}

/// Blocking variant of [`apply`] (for tests and tools without a runtime).
pub fn apply_blocking(transaction: &str, netns: Option<&str>) -> Result<()> {
    use std::io::Write;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]);
            c
        }
        None => std::process::Command::new("nft"),
    };
    let mut child = cmd
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(transaction.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft -f failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `nft list table ip kube-proxy` (None when the table does not exist).
pub async fn list_table(netns: Option<&str>) -> Result<Option<String>> {
    let out = command(netns, "nft", &["list", "table", FAMILY, TABLE])
        .stdin(Stdio::null())
        .output()
        .await
        .context("running nft list")?;
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No such file") || stderr.contains("does not exist") {
        return Ok(None);
    }
    bail!("nft list table failed: {}", stderr.trim())
}

/// The chains and sets our table holds now (empty when it does not exist).
/// Lists only names (`nft -t list chains/sets/maps`): listing the whole
/// table would print every rule and element, which takes long at scale.
pub async fn existing(netns: Option<&str>) -> Result<Existing> {
    let script = format!("list chains {FAMILY}\nlist sets {FAMILY}\nlist maps {FAMILY}\n");
    let out = run_script(netns, &["-t"], &script).await?;
    Ok(Existing::parse_listing(&String::from_utf8_lossy(&out)))
}
