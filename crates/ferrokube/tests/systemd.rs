//! The systemd units of `hack/systemd/` (see docs/deploy.md):
//!
//! * `units_pass_systemd_analyze_verify`: every unit, and Debian's etcd and
//!   containerd units with our drop-ins, pass `systemd-analyze verify` with
//!   no warning at all (the ExecStart binaries are stand-ins in a temporary
//!   directory: verify only checks that they exist and are executable);
//! * `units_follow_the_conventions`: Restart=always, network-online ordering,
//!   the kubelet after containerd, binaries in /usr/local/bin, every
//!   `${VAR}` either defaulted in the unit or documented in the example
//!   environment file of `hack/systemd/default/`, and nothing documented
//!   there that the unit does not use; the etcd drop-in's TLS settings;
//!   containerd's configuration (`containerd config dump`), the CNI template
//!   and the KubeletConfiguration (through the kubelet's own parser);
//! * `unit_command_lines_are_valid_flags`: each daemon's ExecStart, expanded
//!   with the example environment files, is accepted by the daemon itself
//!   (`--help` appended: clap checks every flag and value before it prints
//!   the help). This is the only check of the kubelet, kube-proxy and
//!   cloud-controller-manager units: running them for real needs containerd,
//!   the host's nftables and network namespaces;
//! * `make_install_into_destdir`: `make install` with DESTDIR and PREFIX;
//! * `control_plane_from_units`: a 3-member etcd cluster with mutual TLS run
//!   from the etcd drop-in's variables, and two "control-plane machines"
//!   (each its own /etc/kubernetes from `ferrokube certs`, moved into a
//!   temporary directory) running kube-apiserver, kube-controller-manager
//!   and kube-scheduler with exactly the units' command lines (environment
//!   files with loopback values); kubectl then checks both apiservers, the
//!   leases of the first machine's scheduler and controller-manager, their
//!   takeover by the second machine's when they are killed, the
//!   controller-manager's work, and that a service-account token issued by
//!   one apiserver is accepted by the other.
//!
//! Daemon binaries come from `$FERROKUBE_BIN_DIR` (a missing one is then a
//! failure), else from beside the `ferrokube` binary (`cargo build -p
//! apiserver -p controller-manager -p scheduler ...`; missing ones make the
//! tests skip with a message).

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const DAEMONS: [&str; 6] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "cloud-controller-manager",
];

fn systemd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hack/systemd")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

fn bin_dir_from_env() -> Option<PathBuf> {
    std::env::var_os("FERROKUBE_BIN_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// A daemon binary: from `$FERROKUBE_BIN_DIR` (must exist there), else
/// beside the ferrokube binary (`None` if it was not built).
fn daemon_binary(name: &str) -> Option<PathBuf> {
    let ferrokube = PathBuf::from(env!("CARGO_BIN_EXE_ferrokube"));
    match bin_dir_from_env() {
        Some(d) => {
            let p = d.join(name);
            assert!(
                p.is_file(),
                "FERROKUBE_BIN_DIR={} has no {name}: run `make build`",
                d.display()
            );
            Some(p)
        }
        None => Some(ferrokube.parent()?.join(name)).filter(|p| p.is_file()),
    }
}

// ---- a small systemd unit reader -------------------------------------------

/// A unit file: `(section, key, value)` in file order, continuation lines
/// joined, comments dropped.
struct Unit {
    entries: Vec<(String, String, String)>,
}

impl Unit {
    fn parse(text: &str) -> Unit {
        let mut entries = Vec::new();
        let mut section = String::new();
        let mut pending = String::new();
        for raw in text.lines() {
            let line = raw.trim();
            if pending.is_empty()
                && (line.is_empty() || line.starts_with('#') || line.starts_with(';'))
            {
                continue;
            }
            if let Some(cont) = line.strip_suffix('\\') {
                pending.push_str(cont);
                pending.push(' ');
                continue;
            }
            pending.push_str(line);
            let logical = std::mem::take(&mut pending);
            if logical.starts_with('[') && logical.ends_with(']') {
                section = logical[1..logical.len() - 1].to_string();
            } else if let Some((k, v)) = logical.split_once('=') {
                entries.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
            } else {
                panic!("not a unit file line: {logical:?}");
            }
        }
        assert!(pending.is_empty(), "unit ends in a continuation");
        Unit { entries }
    }

    fn load(path: &Path) -> Unit {
        Unit::parse(&read(path))
    }

    /// The values of `key` in `section`, in order.
    fn values(&self, section: &str, key: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// Space-separated list values (After=, Wants=, ...), all lines together.
    fn list(&self, section: &str, key: &str) -> Vec<String> {
        self.values(section, key)
            .iter()
            .flat_map(|v| v.split_whitespace().map(str::to_string))
            .collect()
    }

    /// The `Environment=` assignments, in order.
    fn environment(&self) -> Vec<(String, String)> {
        self.values("Service", "Environment")
            .iter()
            .flat_map(|v| split_words(v))
            .map(|w| {
                let (k, v) = w.split_once('=').expect("Environment= without '='");
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    /// The effective ExecStart= (an empty assignment resets the list).
    fn exec_start(&self) -> String {
        let mut current = None;
        for v in self.values("Service", "ExecStart") {
            current = if v.is_empty() {
                None
            } else {
                Some(v.to_string())
            };
        }
        current.expect("no ExecStart=")
    }
}

/// Splits at unquoted whitespace; double and single quotes group.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// `KEY=VALUE` lines of an environment file (systemd's EnvironmentFile=).
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// The commented-out `#VAR=value` examples of a `hack/systemd/default/` file.
fn documented_vars(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            (!k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The variables a command line refers to (`$VAR` and `${VAR}`).
fn referenced_vars(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = cmd;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let name: String = if let Some(r) = rest.strip_prefix('{') {
            r.chars().take_while(|c| *c != '}').collect()
        } else {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The unit's environment: its `Environment=` defaults, then `files`
/// (EnvironmentFile= values win, as in systemd).
fn unit_env(unit: &Unit, files: &[Vec<(String, String)>]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = unit.environment().into_iter().collect();
    for f in files {
        env.extend(f.iter().cloned());
    }
    env
}

/// Expands ExecStart as systemd does: `${VAR}` inside a word keeps the word
/// one argument, a bare `$VAR` word becomes its value split at whitespace
/// (no argument when empty). An undefined variable is an error here.
fn expand(cmd: &str, env: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    for word in split_words(cmd) {
        if let Some(name) = word
            .strip_prefix('$')
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            let v = env.get(name).ok_or(format!("${name} is not set"))?;
            args.extend(v.split_whitespace().map(str::to_string));
            continue;
        }
        let mut out = String::new();
        let mut rest = word.as_str();
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let end = rest[i..]
                .find('}')
                .ok_or(format!("unclosed ${{ in {word:?}"))?;
            let name = &rest[i + 2..i + end];
            out.push_str(env.get(name).ok_or(format!("${{{name}}} is not set"))?);
            rest = &rest[i + end + 1..];
        }
        out.push_str(rest);
        args.push(out);
    }
    Ok(args)
}

/// Moves the unit's machine paths under `root` (certificates, kubeconfigs,
/// state).
fn relocate(arg: &str, root: &Path) -> String {
    let mut s = arg.to_string();
    for p in ["/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd"] {
        s = s.replace(p, &format!("{}{p}", root.display()));
    }
    s
}

fn unit_path(daemon: &str) -> PathBuf {
    systemd_dir().join(format!("{daemon}.service"))
}

fn example_env(daemon: &str) -> String {
    read(&systemd_dir().join("default").join(daemon))
}

// ---- processes --------------------------------------------------------------

/// Processes started by a test: killed by pid when dropped.
#[derive(Default)]
struct Procs {
    procs: Vec<(String, Child, PathBuf)>,
}

impl Procs {
    fn spawn(&mut self, name: &str, mut cmd: Command, log: PathBuf) {
        let f = fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.procs.push((name.to_string(), child, log));
    }

    /// Kills the process named `name` (by pid) and forgets it.
    fn kill(&mut self, name: &str) {
        let i = self
            .procs
            .iter()
            .position(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        let (_, mut child, _) = self.procs.remove(i);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Panics (with every log) if one of them exited.
    fn check_running(&mut self) {
        let mut dead = Vec::new();
        for (name, child, _) in &mut self.procs {
            if let Ok(Some(status)) = child.try_wait() {
                dead.push(format!("{name} exited with {status}"));
            }
        }
        if !dead.is_empty() {
            panic!("{}\n{}", dead.join("\n"), self.logs());
        }
    }

    fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|(name, _, log)| {
                let text = fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("---- {name} ({}) ----\n{}", log.display(), tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.procs {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

fn ferrokube(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ferrokube {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(
    what: &str,
    timeout: Duration,
    procs: &mut Procs,
    mut f: impl FnMut() -> Result<(), String>,
) {
    let deadline = Instant::now() + timeout;
    loop {
        procs.check_running();
        match f() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => {
                panic!("{what}: not after {timeout:?}: {e}\n{}", procs.logs())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

// ---- tests ------------------------------------------------------------------

#[test]
fn units_pass_systemd_analyze_verify() {
    let Some(analyze) = which("systemd-analyze") else {
        eprintln!("SKIP: no systemd-analyze (Debian package systemd)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bins = tmp.path().join("bin");
    let units = tmp.path().join("units");
    fs::create_dir_all(&bins).unwrap();
    fs::create_dir_all(&units).unwrap();
    let mut files = Vec::new();
    for d in DAEMONS {
        // Stand-ins: verify only checks that ExecStart's binary is executable.
        let b = bins.join(d);
        fs::write(&b, "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(&b, fs::Permissions::from_mode(0o755)).unwrap();
        let text = read(&unit_path(d)).replace("/usr/local/bin/", &format!("{}/", bins.display()));
        let f = units.join(format!("{d}.service"));
        fs::write(&f, text).unwrap();
        files.push(f);
    }
    // Debian's units with our drop-ins beside them (verify reads drop-ins
    // from the unit's directory).
    for (unit, debian) in [
        ("etcd.service", "/lib/systemd/system/etcd.service"),
        (
            "containerd.service",
            "/lib/systemd/system/containerd.service",
        ),
    ] {
        let dropins = systemd_dir().join(format!("{unit}.d"));
        assert!(dropins.is_dir(), "{}", dropins.display());
        if !Path::new(debian).is_file() {
            eprintln!("note: {debian} is missing (Debian packages etcd-server, containerd): {unit}.d not verified");
            continue;
        }
        fs::copy(debian, units.join(unit)).unwrap();
        let to = units.join(format!("{unit}.d"));
        fs::create_dir_all(&to).unwrap();
        for e in fs::read_dir(&dropins).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
        files.push(units.join(unit));
    }
    let run = |files: &[PathBuf]| {
        Command::new(&analyze)
            .arg("verify")
            .arg("--man=no")
            .args(files)
            .current_dir(&units)
            .output()
            .unwrap()
    };
    let out = run(&files);
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify: {}\n{}",
        out.status,
        output_text(&out)
    );
    // Control: a mistake is reported, so a clean run means something.
    let bad = units.join("bad.service");
    fs::write(
        &bad,
        format!(
            "[Service]\nExecStart={}/kubelet\nRestart=allways\n",
            bins.display()
        ),
    )
    .unwrap();
    let out = run(&[bad]);
    assert!(!out.stderr.is_empty(), "{}", output_text(&out));
}

#[test]
fn units_follow_the_conventions() {
    for d in DAEMONS {
        let unit = Unit::load(&unit_path(d));
        let ctx = format!("{d}.service");
        assert_eq!(unit.values("Service", "Restart"), ["always"], "{ctx}");
        assert!(
            unit.list("Unit", "After")
                .contains(&"network-online.target".into()),
            "{ctx}"
        );
        assert!(
            unit.list("Unit", "Wants")
                .contains(&"network-online.target".into()),
            "{ctx}"
        );
        assert_eq!(
            unit.values("Install", "WantedBy"),
            ["multi-user.target"],
            "{ctx}"
        );
        assert!(!unit.values("Unit", "Description").is_empty(), "{ctx}");
        let cmd = unit.exec_start();
        assert_eq!(
            split_words(&cmd)[0],
            format!("/usr/local/bin/{d}"),
            "{ctx}: binaries live in /usr/local/bin"
        );
        // Per-machine values come from /etc/default/<daemon>.
        let files = unit.values("Service", "EnvironmentFile");
        assert_eq!(files.len(), 1, "{ctx}");
        assert_eq!(
            files[0].trim_start_matches('-'),
            format!("/etc/default/{d}"),
            "{ctx}"
        );
        let defaults: Vec<String> = unit.environment().into_iter().map(|(k, _)| k).collect();
        let documented: Vec<String> = documented_vars(&example_env(d))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let referenced = referenced_vars(&cmd);
        for v in &referenced {
            assert!(
                defaults.contains(v) || documented.contains(v),
                "{ctx}: ${v} has no default and is not in hack/systemd/default/{d}"
            );
            assert!(
                documented.contains(v),
                "{ctx}: ${v} is not documented in hack/systemd/default/{d}"
            );
        }
        for v in documented.iter().chain(&defaults) {
            assert!(
                referenced.contains(v),
                "{ctx}: {v} is set but not used by ExecStart"
            );
        }
        // Only the required variables may lack a default, and then the
        // environment file is required.
        let required: Vec<&String> = referenced
            .iter()
            .filter(|v| !defaults.contains(v))
            .collect();
        if required.is_empty() {
            assert!(
                files[0].starts_with('-'),
                "{ctx}: the environment file should be optional"
            );
        } else {
            assert!(
                !files[0].starts_with('-'),
                "{ctx}: {required:?} are required"
            );
        }
        // Every flag is given as --name=value (or a bare name), one per argument.
        for w in split_words(&cmd).iter().skip(1) {
            assert!(w.starts_with("--") || w.starts_with('$'), "{ctx}: {w:?}");
        }
    }
    let kubelet = Unit::load(&unit_path("kubelet"));
    assert!(kubelet
        .list("Unit", "After")
        .contains(&"containerd.service".into()));
    assert!(kubelet
        .list("Unit", "Wants")
        .contains(&"containerd.service".into()));
    for d in [
        "kube-controller-manager",
        "kube-scheduler",
        "cloud-controller-manager",
    ] {
        let cmd = Unit::load(&unit_path(d)).exec_start();
        assert!(cmd.contains("--leader-elect=true"), "{d}");
    }

    // The etcd drop-in configures TLS for clients and peers from the
    // certificates `ferrokube certs etcd` writes.
    let etcd = Unit::load(&systemd_dir().join("etcd.service.d/10-ferrokube.conf"));
    let env: BTreeMap<String, String> = etcd.environment().into_iter().collect();
    for (k, v) in [
        ("ETCD_CERT_FILE", "/etc/kubernetes/pki/etcd/server.crt"),
        ("ETCD_KEY_FILE", "/etc/kubernetes/pki/etcd/server.key"),
        ("ETCD_TRUSTED_CA_FILE", "/etc/kubernetes/pki/etcd/ca.crt"),
        ("ETCD_CLIENT_CERT_AUTH", "true"),
        ("ETCD_PEER_CERT_FILE", "/etc/kubernetes/pki/etcd/peer.crt"),
        ("ETCD_PEER_KEY_FILE", "/etc/kubernetes/pki/etcd/peer.key"),
        (
            "ETCD_PEER_TRUSTED_CA_FILE",
            "/etc/kubernetes/pki/etcd/ca.crt",
        ),
        ("ETCD_PEER_CLIENT_CERT_AUTH", "true"),
    ] {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert_eq!(etcd.values("Service", "Restart"), ["always"]);
    let member: Vec<String> = documented_vars(&example_env("etcd"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for k in [
        "ETCD_NAME",
        "ETCD_LISTEN_CLIENT_URLS",
        "ETCD_ADVERTISE_CLIENT_URLS",
        "ETCD_LISTEN_PEER_URLS",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        "ETCD_INITIAL_CLUSTER",
    ] {
        assert!(member.contains(&k.to_string()), "{k}");
        assert!(!env.contains_key(k), "{k} is per member");
    }

    let containerd = Unit::load(&systemd_dir().join("containerd.service.d/10-ferrokube.conf"));
    assert_eq!(
        containerd.exec_start(),
        "/usr/bin/containerd --config /etc/containerd/ferrokube.toml"
    );
    let toml = read(&systemd_dir().join("containerd/ferrokube.toml"));
    assert!(toml.contains("conf_template = \"/etc/containerd/ferrokube-cni.template\""));
    // containerd reads its configuration as we mean it.
    if Path::new("/usr/bin/containerd").is_file() {
        let out = Command::new("/usr/bin/containerd")
            .arg("--config")
            .arg(systemd_dir().join("containerd/ferrokube.toml"))
            .args(["config", "dump"])
            .output()
            .unwrap();
        let dump = output_text(&out);
        assert!(out.status.success(), "{dump}");
        for line in [
            "conf_template = \"/etc/containerd/ferrokube-cni.template\"",
            "bin_dir = \"/usr/lib/cni\"",
            "sandbox_image = \"registry.k8s.io/pause:3.10\"",
            "SystemdCgroup = false",
        ] {
            assert!(dump.contains(line), "{line} not in {dump}");
        }
    }
    // The CNI template, rendered as containerd does for one podCIDR, is a
    // bridge + host-local + portmap network.
    let template = read(&systemd_dir().join("containerd/ferrokube-cni.template"));
    let ranges = "[{{range $i, $range := .PodCIDRRanges}}{{if $i}}, {{end}}[{\"subnet\": \"{{$range}}\"}]{{end}}]";
    assert!(template.contains(ranges), "{template}");
    let rendered: serde_json::Value =
        serde_json::from_str(&template.replace(ranges, "[[{\"subnet\": \"10.244.1.0/24\"}]]"))
            .unwrap();
    assert_eq!(rendered["plugins"][0]["type"], "bridge");
    assert_eq!(
        rendered["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
        "10.244.1.0/24"
    );
    assert_eq!(rendered["plugins"][1]["type"], "portmap");

    // The KubeletConfiguration, through the kubelet's own flags and parser.
    let config_path = systemd_dir().join("kubelet/config.yaml");
    let resolved = <kubelet::options::Options as clap::Parser>::parse_from([
        "kubelet".to_string(),
        format!("--config={}", config_path.display()),
        "--hostname-override=worker-1".into(),
        "--node-ip=192.0.2.31".into(),
    ])
    .resolve()
    .unwrap();
    assert_eq!(
        resolved.tls_cert_file.as_deref(),
        Some(Path::new("/etc/kubernetes/pki/kubelet.crt"))
    );
    assert_eq!(
        resolved.client_ca_file.as_deref(),
        Some(Path::new("/etc/kubernetes/pki/ca.crt"))
    );
    assert_eq!(
        resolved.cluster_dns,
        ["10.96.0.10".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(resolved.cluster_domain, "cluster.local");
    assert_eq!(
        resolved.container_runtime_endpoint,
        "unix:///run/containerd/containerd.sock"
    );
    let kubelet_config: serde_yaml::Value = serde_yaml::from_str(&read(&config_path)).unwrap();
    assert_eq!(
        kubelet_config["kind"].as_str(),
        Some("KubeletConfiguration")
    );
    assert_eq!(
        kubelet_config["tlsCertFile"].as_str(),
        Some("/etc/kubernetes/pki/kubelet.crt")
    );
}

#[test]
fn unit_command_lines_are_valid_flags() {
    let mut checked = Vec::new();
    for d in DAEMONS {
        let Some(bin) = daemon_binary(d) else {
            eprintln!("SKIP {d}: not built (cargo build -p <crate>)");
            continue;
        };
        let unit = Unit::load(&unit_path(d));
        // The example values, uncommented: a real machine's environment file.
        let env = unit_env(&unit, &[documented_vars(&example_env(d))]);
        let args = expand(&unit.exec_start(), &env).unwrap_or_else(|e| panic!("{d}: {e}"));
        let out = Command::new(&bin)
            .args(&args[1..])
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{d} {:?} --help: {}\n{}",
            &args[1..],
            out.status,
            output_text(&out)
        );
        // Control: a misspelt flag is refused the same way.
        let out = Command::new(&bin)
            .args(&args[1..])
            .args(["--no-such-flag=1", "--help"])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{d} accepts anything: {}",
            output_text(&out)
        );
        checked.push(d);
    }
    eprintln!("flags checked: {checked:?}");
}

/// Starts Debian's etcd.service for one member: `/usr/bin/etcd` with the
/// drop-in's variables and the member's /etc/default/etcd.
fn start_etcd_member(
    procs: &mut Procs,
    root: &Path,
    member_env: &[(String, String)],
    log: PathBuf,
) {
    let dropin = Unit::load(&systemd_dir().join("etcd.service.d/10-ferrokube.conf"));
    let mut env = unit_env(&dropin, &[member_env.to_vec()]);
    for v in env.values_mut() {
        *v = relocate(v, root);
    }
    let etcd = std::env::var_os("FERROKUBE_ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
    let mut cmd = Command::new(etcd);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(&env);
    procs.spawn("etcd", cmd, log);
}

/// Runs a daemon with its unit's ExecStart, expanded with `env_file`
/// (an /etc/default file's lines) and the paths moved under `root`.
fn start_from_unit(procs: &mut Procs, daemon: &str, name: &str, env_file: &str, root: &Path) {
    let unit = Unit::load(&unit_path(daemon));
    let env = unit_env(&unit, &[parse_env_file(env_file)]);
    let args = expand(&unit.exec_start(), &env).unwrap_or_else(|e| panic!("{daemon}: {e}"));
    let bin = daemon_binary(daemon).expect("checked by the caller");
    let mut cmd = Command::new(bin);
    cmd.args(args[1..].iter().map(|a| relocate(a, root)));
    let log = root.with_file_name(format!("{name}.log"));
    procs.spawn(name, cmd, log);
}

#[test]
fn control_plane_from_units() {
    let kubectl = ["/usr/bin/kubectl"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| which("kubectl"));
    let etcd_ok =
        Path::new("/usr/bin/etcd").is_file() || std::env::var_os("FERROKUBE_ETCD_BIN").is_some();
    let (Some(kubectl), true) = (kubectl, etcd_ok) else {
        eprintln!("SKIP: needs kubectl and etcd (Debian etcd-server)");
        return;
    };
    // Optional: checks the health-check client certificate as docs/deploy.md uses it.
    let etcdctl = which("etcdctl");
    if etcdctl.is_none() {
        eprintln!("note: no etcdctl (Debian etcd-client): etcd health is only seen through the apiservers");
    }
    let daemons = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ];
    if daemons.iter().any(|d| daemon_binary(d).is_none()) {
        eprintln!("SKIP: build the daemons first (cargo build -p apiserver -p controller-manager -p scheduler)");
        return;
    }

    let tmp = tempfile::Builder::new()
        .prefix("ferrokube-systemd-")
        .tempdir()
        .unwrap();
    let t = tmp.path();
    let s = |p: &Path| p.display().to_string();
    // The CAs and the service-account keys.
    let ca_home = t.join("ca");
    ferrokube(&["certs", "ca", "--dir", &s(&ca_home)]);
    ferrokube(&["certs", "sa", "--dir", &s(&ca_home)]);

    let ports = free_ports(12);
    let (client, peer) = (&ports[0..3], &ports[3..6]);
    let (api, kcm_ports, sched_ports) = (&ports[6..8], &ports[8..10], &ports[10..12]);
    let mut procs = Procs::default();

    // etcd: three members, each with its own "machine" root.
    let initial_cluster = (0..3)
        .map(|i| format!("etcd-{i}=https://127.0.0.1:{}", peer[i]))
        .collect::<Vec<_>>()
        .join(",");
    let mut member_roots = Vec::new();
    for i in 0..3 {
        let root = t.join(format!("etcd-{i}"));
        ferrokube(&[
            "certs",
            "etcd",
            "--dir",
            &s(&ca_home),
            "--out",
            &s(&root.join("etc/kubernetes")),
            "--name",
            &format!("etcd-{i}"),
            "--address",
            "127.0.0.1",
        ]);
        let member = format!(
            "ETCD_NAME=etcd-{i}\n\
             ETCD_LISTEN_CLIENT_URLS=https://127.0.0.1:{c}\n\
             ETCD_ADVERTISE_CLIENT_URLS=https://127.0.0.1:{c}\n\
             ETCD_LISTEN_PEER_URLS=https://127.0.0.1:{p}\n\
             ETCD_INITIAL_ADVERTISE_PEER_URLS=https://127.0.0.1:{p}\n\
             ETCD_INITIAL_CLUSTER={initial_cluster}\n",
            c = client[i],
            p = peer[i]
        );
        // The example file documents exactly these variables.
        let mut keys: Vec<String> = parse_env_file(&member)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut doc: Vec<String> = documented_vars(&example_env("etcd"))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        doc.sort();
        assert_eq!(keys, doc);
        start_etcd_member(
            &mut procs,
            &root,
            &parse_env_file(&member),
            t.join(format!("etcd-{i}.log")),
        );
        member_roots.push(root);
    }
    let endpoints = client
        .iter()
        .map(|p| format!("https://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    if let Some(etcdctl) = &etcdctl {
        let etcd_pki = member_roots[0].join("etc/kubernetes/pki/etcd");
        wait_for(
            "etcd cluster healthy",
            Duration::from_secs(60),
            &mut procs,
            || {
                let out = Command::new(etcdctl)
                    .env("ETCDCTL_API", "3")
                    .arg(format!("--endpoints={endpoints}"))
                    .arg(format!("--cacert={}", etcd_pki.join("ca.crt").display()))
                    .arg(format!(
                        "--cert={}",
                        etcd_pki.join("healthcheck-client.crt").display()
                    ))
                    .arg(format!(
                        "--key={}",
                        etcd_pki.join("healthcheck-client.key").display()
                    ))
                    .args(["endpoint", "health"])
                    .output()
                    .unwrap();
                let text = output_text(&out);
                (out.status.success() && text.matches("is healthy").count() == 3)
                    .then_some(())
                    .ok_or(text)
            },
        );
        // The members talk to each other over https.
        let out = Command::new(etcdctl)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .arg(format!("--cacert={}", etcd_pki.join("ca.crt").display()))
            .arg(format!(
                "--cert={}",
                etcd_pki.join("healthcheck-client.crt").display()
            ))
            .arg(format!(
                "--key={}",
                etcd_pki.join("healthcheck-client.key").display()
            ))
            .args(["member", "list"])
            .output()
            .unwrap();
        let text = output_text(&out);
        for p in peer {
            assert!(text.contains(&format!("https://127.0.0.1:{p}")), "{text}");
        }
        // Clients without a certificate are refused.
        let out = Command::new(etcdctl)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://127.0.0.1:{}", client[0]))
            .arg(format!("--cacert={}", etcd_pki.join("ca.crt").display()))
            .args([
                "--command-timeout=3s",
                "--dial-timeout=3s",
                "endpoint",
                "health",
            ])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "etcd accepts clients without a certificate"
        );
    }

    // Two control-plane "machines", each with its own /etc/kubernetes (as
    // docs/deploy.md makes them): an apiserver, and a controller-manager and
    // a scheduler using that apiserver.
    let machines: Vec<PathBuf> = (1..=2).map(|i| t.join(format!("cp-{i}"))).collect();
    for (m, port) in machines.iter().zip(api) {
        let kdir = m.join("etc/kubernetes");
        ferrokube(&[
            "certs",
            "apiserver",
            "--dir",
            &s(&ca_home),
            "--out",
            &s(&kdir),
            "--advertise-address",
            "127.0.0.1",
        ]);
        for component in ["kube-controller-manager", "kube-scheduler", "admin"] {
            ferrokube(&[
                "certs",
                "kubeconfig",
                "--dir",
                &s(&ca_home),
                "--out",
                &s(&kdir),
                "--component",
                component,
                "--server",
                &format!("https://127.0.0.1:{port}"),
            ]);
        }
    }
    let name = |daemon: &str, m: usize| format!("{daemon}@cp-{}", m + 1);
    for (m, port) in api.iter().enumerate() {
        start_from_unit(
            &mut procs,
            "kube-apiserver",
            &name("kube-apiserver", m),
            &format!(
                "# /etc/default/kube-apiserver\nADVERTISE_ADDRESS=127.0.0.1\nBIND_ADDRESS=127.0.0.1\n\
                 ETCD_SERVERS={endpoints}\nSECURE_PORT={port}\n"
            ),
            &machines[m],
        );
    }
    let start_loops = |procs: &mut Procs, m: usize| {
        for (daemon, port) in [
            ("kube-controller-manager", kcm_ports[m]),
            ("kube-scheduler", sched_ports[m]),
        ] {
            start_from_unit(
                procs,
                daemon,
                &name(daemon, m),
                &format!("SECURE_PORT={port}\n"),
                &machines[m],
            );
        }
    };
    start_loops(&mut procs, 0);

    let admin = machines[0].join("etc/kubernetes/admin.conf");
    let kubectl_run = |server_port: u16, args: &[&str]| -> Output {
        Command::new(&kubectl)
            .arg(format!("--kubeconfig={}", admin.display()))
            .arg(format!("--server=https://127.0.0.1:{server_port}"))
            .arg("--request-timeout=10s")
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    };
    for port in api {
        wait_for(
            &format!("apiserver on {port} ready"),
            Duration::from_secs(90),
            &mut procs,
            || {
                let out = kubectl_run(*port, &["get", "--raw", "/readyz"]);
                (out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok")
                    .then_some(())
                    .ok_or_else(|| output_text(&out))
            },
        );
    }
    let out = kubectl_run(api[1], &["get", "namespaces", "-o", "name"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("namespace/kube-system"),
        "{}",
        output_text(&out)
    );
    let holder = |lease: &str| -> Result<String, String> {
        let out = kubectl_run(
            api[1],
            &[
                "-n",
                "kube-system",
                "get",
                "lease",
                lease,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
        );
        let h = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !h.is_empty())
            .then_some(h)
            .ok_or_else(|| output_text(&out))
    };
    // cp-1's control loops take the leases; then cp-2's start and wait.
    let leases = ["kube-scheduler", "kube-controller-manager"];
    let mut first = BTreeMap::new();
    for lease in leases {
        wait_for(
            &format!("lease kube-system/{lease} held"),
            Duration::from_secs(90),
            &mut procs,
            || {
                first.insert(lease, holder(lease)?);
                Ok(())
            },
        );
    }
    start_loops(&mut procs, 1);
    std::thread::sleep(Duration::from_secs(3));
    procs.check_running();
    for lease in leases {
        assert_eq!(
            holder(lease).unwrap(),
            first[lease],
            "{lease} changed hands"
        );
    }
    // cp-1's control loops die: cp-2's take over (lease duration 15 s).
    procs.kill(&name("kube-scheduler", 0));
    procs.kill(&name("kube-controller-manager", 0));
    for lease in leases {
        wait_for(
            &format!("lease kube-system/{lease} taken over"),
            Duration::from_secs(60),
            &mut procs,
            || match holder(lease) {
                Ok(h) if h != first[lease] => Ok(()),
                Ok(h) => Err(format!("still held by {h}")),
                Err(e) => Err(e),
            },
        );
    }
    // cp-2's controller-manager works through its kubeconfig: the
    // serviceaccount controller creates "default" in a new namespace.
    let out = kubectl_run(api[0], &["create", "namespace", "systemd-test"]);
    assert!(out.status.success(), "{}", output_text(&out));
    wait_for(
        "serviceaccount systemd-test/default",
        Duration::from_secs(60),
        &mut procs,
        || {
            let out = kubectl_run(
                api[1],
                &["-n", "systemd-test", "get", "serviceaccount", "default"],
            );
            out.status
                .success()
                .then_some(())
                .ok_or_else(|| output_text(&out))
        },
    );
    // Both apiservers share the service-account keys: a token issued by
    // cp-2's is accepted by cp-1's (anonymous requests are refused).
    let out = kubectl_run(
        api[1],
        &["-n", "systemd-test", "create", "token", "default"],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let ca = machines[0].join("etc/kubernetes/pki/ca.crt");
    let with = |token: Option<&str>| {
        let mut c = Command::new(&kubectl);
        c.arg(format!("--server=https://127.0.0.1:{}", api[0]))
            .arg(format!("--certificate-authority={}", ca.display()))
            .arg("--kubeconfig=/dev/null")
            .args(["get", "--raw", "/api"]);
        if let Some(t) = token {
            c.arg(format!("--token={t}"));
        }
        c.env_remove("KUBECONFIG").output().unwrap()
    };
    let out = with(Some(&token));
    assert!(out.status.success(), "{}", output_text(&out));
    let out = with(None);
    assert!(!out.status.success(), "{}", output_text(&out));
    procs.check_running();
    drop(procs);
}

#[test]
fn make_install_into_destdir() {
    let Some(make) = which("make") else {
        eprintln!("SKIP: no make");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bins = tmp.path().join("bin");
    fs::create_dir_all(&bins).unwrap();
    let mut names: Vec<&str> = DAEMONS.to_vec();
    names.push("ferrokube");
    for b in &names {
        let p = bins.join(b);
        fs::write(&p, format!("#!/bin/sh\necho {b}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let dest = tmp.path().join("dest");
    let install = || {
        Command::new(&make)
            .arg("-C")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
            .arg("--no-print-directory")
            .arg("install")
            .arg(format!("DESTDIR={}", dest.display()))
            .arg(format!("BIN_DIR={}", bins.display()))
            .arg("PREFIX=/opt/fk")
            .output()
            .unwrap()
    };
    let out = install();
    assert!(out.status.success(), "{}", output_text(&out));
    let text = output_text(&out);
    assert!(text.contains("nothing was enabled or started"), "{text}");
    for b in &names {
        let p = dest.join("opt/fk/bin").join(b);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o755,
            "{b}"
        );
    }
    for d in DAEMONS {
        let unit = Unit::load(&dest.join(format!("etc/systemd/system/{d}.service")));
        assert_eq!(
            split_words(&unit.exec_start())[0],
            format!("/opt/fk/bin/{d}"),
            "{d}"
        );
        assert!(dest.join("etc/default").join(d).is_file(), "{d}");
    }
    for f in [
        "etc/systemd/system/etcd.service.d/10-ferrokube.conf",
        "etc/systemd/system/containerd.service.d/10-ferrokube.conf",
        "etc/containerd/ferrokube.toml",
        "etc/containerd/ferrokube-cni.template",
        "var/lib/kubelet/config.yaml",
        "etc/default/etcd",
    ] {
        assert!(dest.join(f).is_file(), "{f}");
    }
    // Nothing was enabled: no WantedBy symlinks.
    assert!(!dest
        .join("etc/systemd/system/multi-user.target.wants")
        .exists());
    // A second install keeps the operator's environment files.
    fs::write(dest.join("etc/default/kubelet"), "NODE_NAME=mine\n").unwrap();
    let out = install();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(read(&dest.join("etc/default/kubelet")), "NODE_NAME=mine\n");
    // Without the binaries it refuses.
    fs::remove_file(bins.join("kubelet")).unwrap();
    let out = install();
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("make build"),
        "{}",
        output_text(&out)
    );
}
