use super::source::FakeSource;
use super::*;
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection, DownwardAPIVolumeSource,
    EmptyDirVolumeSource, HostAlias, ObjectFieldSelector, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeClaimVolumeSource,
    PersistentVolumeSpec, PodSpec, ProjectedVolumeSource, ResourceFieldSelector,
    ResourceRequirements, SecretProjection, SecretVolumeSource, ServiceAccountTokenProjection,
    VolumeMount, VolumeProjection,
};
use std::os::unix::fs::PermissionsExt;

fn pod_with(volumes: Vec<Volume>, mounts: Vec<VolumeMount>) -> Pod {
    Pod {
        metadata: kube::api::ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("11111111-2222".into()),
            labels: Some(
                [
                    ("app".to_string(), "web".to_string()),
                    ("tier".to_string(), "a\"b".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                volume_mounts: Some(mounts),
                resources: Some(ResourceRequirements {
                    limits: Some([("memory".to_string(), ApiQuantity("32Mi".into()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mnt(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn vol(name: &str) -> Volume {
    Volume {
        name: name.into(),
        ..Default::default()
    }
}

fn cm_vol(
    name: &str,
    cm: &str,
    items: Option<Vec<KeyToPath>>,
    mode: Option<i32>,
    optional: bool,
) -> Volume {
    Volume {
        config_map: Some(ConfigMapVolumeSource {
            name: cm.into(),
            items,
            default_mode: mode,
            optional: Some(optional),
        }),
        ..vol(name)
    }
}

fn ktp(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
    KeyToPath {
        key: key.into(),
        path: path.into(),
        mode,
    }
}

fn manager(src: FakeSource) -> (tempfile::TempDir, Arc<Mutex<FakeSource>>, VolumeManager) {
    let tmp = tempfile::tempdir().unwrap();
    let src = Arc::new(Mutex::new(src));
    let vm = VolumeManager::with_source(src.clone(), tmp.path().to_path_buf(), "node-a".into());
    vm.set_node_allocatable(
        [
            ("cpu".to_string(), ApiQuantity("2".into())),
            ("memory".to_string(), ApiQuantity("4Gi".into())),
        ]
        .into(),
    );
    (tmp, src, vm)
}

fn mode_of(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn container(pod: &Pod) -> Container {
    pod.spec.as_ref().unwrap().containers[0].clone()
}

#[tokio::test]
async fn config_map_volume_items_modes_and_updates() {
    let mut src = FakeSource::default();
    src.add_config_map("default", "cfg", &[("a", "1"), ("b", "2")]);
    let (_tmp, src, vm) = manager(src);
    let pod = pod_with(
        vec![
            cm_vol("all", "cfg", None, Some(0o600), false),
            cm_vol(
                "some",
                "cfg",
                Some(vec![ktp("b", "dir/b.txt", Some(0o400))]),
                None,
                false,
            ),
        ],
        vec![mnt("all", "/etc/all"), mnt("some", "/etc/some")],
    );
    vm.setup_pod(&pod).await.unwrap();
    let all = vm
        .pod_dir("11111111-2222")
        .join("volumes/kubernetes.io~configmap/all");
    assert_eq!(fs::read_to_string(all.join("a")).unwrap(), "1");
    assert_eq!(mode_of(&all.join("a")), 0o600);
    assert_eq!(fs::read_link(all.join("a")).unwrap(), Path::new("..data/a"));
    let some = vm
        .pod_dir("11111111-2222")
        .join("volumes/kubernetes.io~configmap/some");
    assert_eq!(fs::read_to_string(some.join("dir/b.txt")).unwrap(), "2");
    assert_eq!(mode_of(&some.join("dir/b.txt")), 0o400);
    assert!(fs::symlink_metadata(some.join("a")).is_err());

    let mounts = vm.container_mounts(&pod, &container(&pod)).unwrap();
    assert_eq!(
        mounts[0],
        MountSpec {
            host_path: all.clone(),
            container_path: "/etc/all".into(),
            readonly: true,
            selinux_relabel: true,
            propagation: Propagation::Private,
        }
    );

    // Unchanged: the timestamped dir stays; changed: new content appears.
    let ts = fs::read_link(all.join("..data")).unwrap();
    vm.setup_pod(&pod).await.unwrap();
    assert_eq!(fs::read_link(all.join("..data")).unwrap(), ts);
    src.lock()
        .unwrap()
        .add_config_map("default", "cfg", &[("a", "new"), ("b", "2")]);
    vm.setup_pod(&pod).await.unwrap();
    assert_eq!(fs::read_to_string(all.join("a")).unwrap(), "new");
    assert_ne!(fs::read_link(all.join("..data")).unwrap(), ts);
}

#[tokio::test]
async fn config_map_errors_and_optional() {
    let mut src = FakeSource::default();
    src.add_config_map("default", "cfg", &[("a", "1")]);
    let (_tmp, _src, vm) = manager(src);
    let pod = pod_with(vec![cm_vol("cfgvol", "missing", None, None, false)], vec![]);
    let err = vm.setup_pod(&pod).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"cfgvol\" : configmap \"missing\" not found"
    );
    assert_eq!(err.reason(), "FailedMount");

    let pod = pod_with(
        vec![cm_vol(
            "v",
            "cfg",
            Some(vec![ktp("zz", "zz", None)]),
            None,
            false,
        )],
        vec![],
    );
    assert_eq!(
        vm.setup_pod(&pod).await.unwrap_err().to_string(),
        "MountVolume.SetUp failed for volume \"v\" : configmap references non-existent config key: zz"
    );

    let pod = pod_with(
        vec![
            cm_vol("opt", "missing", None, None, true),
            cm_vol(
                "optkey",
                "cfg",
                Some(vec![ktp("zz", "zz", None), ktp("a", "x", None)]),
                None,
                true,
            ),
        ],
        vec![],
    );
    vm.setup_pod(&pod).await.unwrap();
    let dir = vm
        .pod_dir("11111111-2222")
        .join("volumes/kubernetes.io~configmap");
    assert!(dir.join("opt/..data").exists());
    assert_eq!(fs::read_to_string(dir.join("optkey/x")).unwrap(), "1");
    assert!(!dir.join("optkey/zz").exists());
}

#[tokio::test]
async fn secret_downward_and_projected_volumes() {
    let mut src = FakeSource::default();
    src.add_config_map("default", "cfg", &[("a", "1")]);
    src.add_secret(
        "default",
        "sec",
        &[("token", b"\x00\x01bin"), ("user", b"admin")],
    );
    let (_tmp, fake, vm) = manager(src);
    let field = |path: &str, fp: &str| DownwardAPIVolumeFile {
        path: path.into(),
        field_ref: Some(ObjectFieldSelector {
            api_version: Some("v1".into()),
            field_path: fp.into(),
        }),
        ..Default::default()
    };
    let res = |path: &str, r: &str, divisor: Option<&str>| DownwardAPIVolumeFile {
        path: path.into(),
        resource_field_ref: Some(ResourceFieldSelector {
            container_name: Some("c".into()),
            resource: r.into(),
            divisor: divisor.map(|d| ApiQuantity(d.into())),
        }),
        ..Default::default()
    };
    let pod = pod_with(
        vec![
            Volume {
                secret: Some(SecretVolumeSource {
                    secret_name: Some("sec".into()),
                    items: Some(vec![ktp("user", "u", Some(0o440))]),
                    ..Default::default()
                }),
                ..vol("s")
            },
            Volume {
                secret: Some(SecretVolumeSource {
                    secret_name: Some("sec".into()),
                    ..Default::default()
                }),
                ..vol("s2")
            },
            Volume {
                downward_api: Some(DownwardAPIVolumeSource {
                    items: Some(vec![
                        field("labels", "metadata.labels"),
                        field("name", "metadata.name"),
                        field("app", "metadata.labels['app']"),
                        res("mem", "limits.memory", Some("1Mi")),
                        res("cpu", "limits.cpu", Some("1m")),
                    ]),
                    default_mode: None,
                }),
                ..vol("d")
            },
            Volume {
                projected: Some(ProjectedVolumeSource {
                    default_mode: Some(0o640),
                    sources: Some(vec![
                        VolumeProjection {
                            config_map: Some(ConfigMapProjection {
                                name: "cfg".into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        VolumeProjection {
                            secret: Some(SecretProjection {
                                name: "sec".into(),
                                items: Some(vec![ktp("user", "creds/user", None)]),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        VolumeProjection {
                            downward_api: Some(DownwardAPIProjection {
                                items: Some(vec![field("ns", "metadata.namespace")]),
                            }),
                            ..Default::default()
                        },
                        VolumeProjection {
                            service_account_token: Some(ServiceAccountTokenProjection {
                                path: "token".into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                }),
                ..vol("p")
            },
        ],
        vec![],
    );
    vm.setup_pod(&pod).await.unwrap();
    let v = vm.pod_dir("11111111-2222").join("volumes");
    assert_eq!(
        fs::read_to_string(v.join("kubernetes.io~secret/s/u")).unwrap(),
        "admin"
    );
    assert_eq!(mode_of(&v.join("kubernetes.io~secret/s/u")), 0o440);
    assert_eq!(
        fs::read(v.join("kubernetes.io~secret/s2/token")).unwrap(),
        b"\x00\x01bin"
    );
    assert_eq!(mode_of(&v.join("kubernetes.io~secret/s2/token")), 0o644);
    let d = v.join("kubernetes.io~downward-api/d");
    assert_eq!(
        fs::read_to_string(d.join("labels")).unwrap(),
        "app=\"web\"\ntier=\"a\\\"b\""
    );
    assert_eq!(fs::read_to_string(d.join("name")).unwrap(), "web");
    assert_eq!(fs::read_to_string(d.join("app")).unwrap(), "web");
    assert_eq!(fs::read_to_string(d.join("mem")).unwrap(), "32");
    assert_eq!(fs::read_to_string(d.join("cpu")).unwrap(), "2000"); // node allocatable
    let p = v.join("kubernetes.io~projected/p");
    assert_eq!(fs::read_to_string(p.join("a")).unwrap(), "1");
    assert_eq!(mode_of(&p.join("a")), 0o640);
    assert_eq!(fs::read_to_string(p.join("creds/user")).unwrap(), "admin");
    assert_eq!(fs::read_to_string(p.join("ns")).unwrap(), "default");
    // The token of the pod's service account, bound to the pod.
    assert_eq!(fs::read_to_string(p.join("token")).unwrap(), "token-1");
    assert_eq!(mode_of(&p.join("token")), 0o640);
    {
        let s = fake.lock().unwrap();
        let (ns, sa, tr) = &s.token_requests[0];
        assert_eq!((ns.as_str(), sa.as_str()), ("default", "default"));
        let b = tr.spec.bound_object_ref.as_ref().unwrap();
        assert_eq!(b.kind.as_deref(), Some("Pod"));
        assert_eq!(b.name.as_deref(), Some("web"));
        assert_eq!(b.uid.as_deref(), Some("11111111-2222"));
        assert!(tr.spec.audiences.is_empty());
    }

    // Secrets live on tmpfs when the kubelet may mount; teardown unmounts.
    let secret_dir = v.join("kubernetes.io~secret/s");
    let on_tmpfs = mount::is_mount_point(&secret_dir);
    vm.teardown_pod("11111111-2222").await.unwrap();
    assert!(!vm.pod_dir("11111111-2222").exists());
    if on_tmpfs {
        assert!(mount::mounts_under(&vm.pod_dir("11111111-2222")).is_empty());
    }
}

#[tokio::test]
async fn empty_dir_disk_and_memory() {
    let (_tmp, _src, vm) = manager(FakeSource::default());
    let pod = pod_with(
        vec![
            Volume {
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..vol("scratch")
            },
            Volume {
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("Memory".into()),
                    size_limit: Some(ApiQuantity("1Mi".into())),
                }),
                ..vol("mem")
            },
        ],
        vec![mnt("scratch", "/scratch"), mnt("mem", "/mem")],
    );
    let root_can_mount = nix_is_root();
    let res = vm.setup_pod(&pod).await;
    if !root_can_mount {
        // Without privileges only the tmpfs volume fails.
        assert!(res.unwrap_err().to_string().contains("volume \"mem\""));
        return;
    }
    res.unwrap();
    let v = vm
        .pod_dir("11111111-2222")
        .join("volumes/kubernetes.io~empty-dir");
    assert_eq!(mode_of(&v.join("scratch")), 0o777);
    assert!(mount::is_mount_point(&v.join("mem")));
    // Idempotent: no second mount stacked.
    vm.setup_pod(&pod).await.unwrap();
    assert_eq!(mount::mounts_under(&v.join("mem")).len(), 1);
    fs::write(v.join("mem/f"), b"x").unwrap();
    let mounts = vm.container_mounts(&pod, &container(&pod)).unwrap();
    assert_eq!(mounts[1].host_path, v.join("mem"));
    assert!(!mounts[1].readonly);
    vm.teardown_pod("11111111-2222").await.unwrap();
    assert!(!vm.pod_dir("11111111-2222").exists());
    assert!(mount::mounts_under(&v).is_empty());
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn hp_vol(name: &str, path: &Path, ty: Option<&str>) -> Volume {
    Volume {
        host_path: Some(HostPathVolumeSource {
            path: path.to_string_lossy().into_owned(),
            type_: ty.map(str::to_string),
        }),
        ..vol(name)
    }
}

#[tokio::test]
async fn host_path_type_checks() {
    let (tmp, _src, vm) = manager(FakeSource::default());
    let base = tmp.path().join("host");
    fs::create_dir_all(&base).unwrap();
    fs::write(base.join("file"), b"").unwrap();
    let check = |v: Volume| {
        let pod = pod_with(vec![v], vec![]);
        let vm = &vm;
        async move { vm.setup_pod(&pod).await.map_err(|e| e.to_string()) }
    };
    check(hp_vol(
        "h",
        &base.join("new/dir"),
        Some("DirectoryOrCreate"),
    ))
    .await
    .unwrap();
    assert!(base.join("new/dir").is_dir());
    check(hp_vol("h", &base.join("newfile"), Some("FileOrCreate")))
        .await
        .unwrap();
    assert!(base.join("newfile").is_file());
    check(hp_vol("h", &base.join("file"), Some("File")))
        .await
        .unwrap();
    check(hp_vol("h", &base.join("nothing"), None))
        .await
        .unwrap();
    let f = base.join("file");
    assert_eq!(
        check(hp_vol("h", &f, Some("Directory"))).await.unwrap_err(),
        format!("MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: {} is not a directory", f.display())
    );
    assert_eq!(
        check(hp_vol("h", &base, Some("File"))).await.unwrap_err(),
        format!("MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: {} is not a file", base.display())
    );
    assert!(check(hp_vol("h", &f, Some("Socket")))
        .await
        .unwrap_err()
        .ends_with("is not a socket file"));
    assert!(check(hp_vol("h", &f, Some("CharDevice")))
        .await
        .unwrap_err()
        .ends_with("is not a character device"));
    assert!(check(hp_vol("h", &f, Some("BlockDevice")))
        .await
        .unwrap_err()
        .ends_with("is not a block device"));
    check(hp_vol("h", Path::new("/dev/null"), Some("CharDevice")))
        .await
        .unwrap();
    assert!(check(hp_vol("h", &f, Some("Bogus")))
        .await
        .unwrap_err()
        .ends_with("Bogus is an invalid volume type"));

    // A hostPath mount is the path itself, not relabelled.
    let pod = pod_with(
        vec![hp_vol("h", &base, None)],
        vec![VolumeMount {
            read_only: Some(true),
            ..mnt("h", "/host")
        }],
    );
    let m = vm.container_mounts(&pod, &container(&pod)).unwrap();
    assert_eq!(m[0].host_path, base);
    assert!(m[0].readonly);
    assert!(!m[0].selinux_relabel);
}

#[tokio::test]
async fn persistent_volume_claims() {
    let tmpdata = tempfile::tempdir().unwrap();
    let mut src = FakeSource::default();
    let pvc = |name: &str, bound: bool, pv: &str| PersistentVolumeClaim {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            volume_name: Some(pv.into()),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some(if bound { "Bound" } else { "Pending" }.into()),
            ..Default::default()
        }),
    };
    src.pvcs
        .insert(("default".into(), "data".into()), pvc("data", true, "pv1"));
    src.pvcs.insert(
        ("default".into(), "pending".into()),
        pvc("pending", false, ""),
    );
    src.pvs.insert(
        "pv1".into(),
        PersistentVolume {
            metadata: kube::api::ObjectMeta {
                name: Some("pv1".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                host_path: Some(HostPathVolumeSource {
                    path: tmpdata.path().to_string_lossy().into_owned(),
                    type_: None,
                }),
                ..Default::default()
            }),
            status: None,
        },
    );
    let (_tmp, _src, vm) = manager(src);
    let claim = |name: &str, ro: bool| Volume {
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: name.into(),
            read_only: Some(ro),
        }),
        ..vol("pvc")
    };
    let pod = pod_with(vec![claim("data", true)], vec![mnt("pvc", "/data")]);
    // Before setup the claim cannot be resolved.
    assert_eq!(
        vm.container_mounts(&pod, &container(&pod))
            .unwrap_err()
            .to_string(),
        "cannot find volume \"pvc\" to mount into container \"c\""
    );
    vm.setup_pod(&pod).await.unwrap();
    let m = vm.container_mounts(&pod, &container(&pod)).unwrap();
    assert_eq!(m[0].host_path, tmpdata.path());
    assert!(m[0].readonly);
    let pod = pod_with(vec![claim("pending", false)], vec![]);
    assert_eq!(
        vm.setup_pod(&pod).await.unwrap_err().to_string(),
        "MountVolume.SetUp failed for volume \"pvc\" : error processing PVC default/pending: PVC is not bound"
    );
    let pod = pod_with(vec![claim("nope", false)], vec![]);
    assert!(vm
        .setup_pod(&pod)
        .await
        .unwrap_err()
        .to_string()
        .contains("persistentvolumeclaims \"nope\" not found"));
}

#[tokio::test]
async fn sub_paths() {
    let (tmp, _src, vm) = manager(FakeSource::default());
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let sub = |m: &str, s: &str| VolumeMount {
        sub_path: Some(s.into()),
        ..mnt(m, "/x")
    };
    let pod = pod_with(
        vec![Volume {
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..vol("e")
        }],
        vec![sub("e", "a/b")],
    );
    vm.setup_pod(&pod).await.unwrap();
    let e = vm
        .pod_dir("11111111-2222")
        .join("volumes/kubernetes.io~empty-dir/e");
    let m = vm.container_mounts(&pod, &container(&pod)).unwrap();
    assert_eq!(m[0].host_path, fs::canonicalize(&e).unwrap().join("a/b"));
    assert!(e.join("a/b").is_dir());
    assert_eq!(mode_of(&e.join("a")), 0o777);

    let mounts_for = |s: &str| {
        let mut p = pod.clone();
        p.spec.as_mut().unwrap().containers[0].volume_mounts = Some(vec![sub("e", s)]);
        vm.container_mounts(&p, &container(&p))
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        mounts_for("../../etc").unwrap_err(),
        "unable to provision SubPath `../../etc`: must not contain '..'"
    );
    assert_eq!(
        mounts_for("a/../../x").unwrap_err(),
        "unable to provision SubPath `a/../../x`: must not contain '..'"
    );
    assert_eq!(
        mounts_for("/etc").unwrap_err(),
        "error SubPath `/etc` must not be an absolute path"
    );
    std::os::unix::fs::symlink(&outside, e.join("escape")).unwrap();
    assert_eq!(
        mounts_for("escape").unwrap_err(),
        "failed to prepare subPath for volumeMount \"e\" of container \"c\""
    );
    assert_eq!(
        mounts_for("escape/deeper").unwrap_err(),
        "failed to create subPath directory for volumeMount \"e\" of container \"c\""
    );
    assert!(!outside.join("deeper").exists());
    // A symlink that stays inside the volume is fine.
    std::os::unix::fs::symlink("a", e.join("inside")).unwrap();
    assert_eq!(
        mounts_for("inside/b").unwrap()[0].host_path,
        fs::canonicalize(e.join("a/b")).unwrap()
    );

    // subPathExpr expands from the container env; a missing value fails.
    let mut p = pod.clone();
    p.spec.as_mut().unwrap().containers[0].volume_mounts = Some(vec![VolumeMount {
        sub_path_expr: Some("logs/$(POD_NAME)".into()),
        mount_propagation: Some("HostToContainer".into()),
        ..mnt("e", "/logs")
    }]);
    let env = vec![("POD_NAME".to_string(), "web".to_string())];
    let m = vm
        .container_mounts_with_env(&p, &container(&p), &env)
        .unwrap();
    assert!(m[0].host_path.ends_with("logs/web"));
    assert_eq!(m[0].propagation, Propagation::HostToContainer);
    assert_eq!(
        vm.container_mounts_with_env(&p, &container(&p), &[])
            .unwrap_err()
            .to_string(),
        "missing value for POD_NAME"
    );

    // Unknown volume.
    let mut p = pod.clone();
    p.spec.as_mut().unwrap().containers[0].volume_mounts = Some(vec![mnt("nope", "/n")]);
    assert_eq!(
        vm.container_mounts(&p, &container(&p))
            .unwrap_err()
            .to_string(),
        "cannot find volume \"nope\" to mount into container \"c\""
    );
}

#[tokio::test]
async fn etc_hosts_file() {
    let (_tmp, _src, vm) = manager(FakeSource::default());
    let mut pod = pod_with(vec![], vec![]);
    {
        let spec = pod.spec.as_mut().unwrap();
        spec.hostname = Some("h".into());
        spec.subdomain = Some("sub".into());
        spec.host_aliases = Some(vec![HostAlias {
            ip: "1.2.3.4".into(),
            hostnames: Some(vec!["foo".into(), "bar".into()]),
        }]);
    }
    let path = vm
        .write_etc_hosts(&pod, &["10.128.0.7".into()], "cluster.local")
        .unwrap();
    assert_eq!(path, vm.pod_dir("11111111-2222").join("etc-hosts"));
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
         10.128.0.7\th.sub.default.svc.cluster.local\th\n\n# Entries added by HostAliases.\n1.2.3.4\tfoo\tbar\n"
    );
    assert_eq!(mode_of(&path), 0o644);
    pod.spec.as_mut().unwrap().subdomain = None;
    pod.spec.as_mut().unwrap().host_aliases = None;
    let text = fs::read_to_string(
        vm.write_etc_hosts(&pod, &["10.128.0.7".into()], "cluster.local")
            .unwrap(),
    )
    .unwrap();
    assert!(text.ends_with("fe00::2\tip6-allrouters\n10.128.0.7\th\n"));
    assert_eq!(vm.pods_on_disk(), vec!["11111111-2222".to_string()]);
    let cdir = vm.container_dir("11111111-2222", "c").unwrap();
    assert!(cdir.ends_with("pods/11111111-2222/containers/c"));
}

fn token_pod(audience: Option<&str>, expiration: Option<i64>) -> Pod {
    let mut pod = pod_with(
        vec![Volume {
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o644),
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        audience: audience.map(str::to_string),
                        expiration_seconds: expiration,
                    }),
                    ..Default::default()
                }]),
            }),
            ..vol("kube-api-access-abcde")
        }],
        vec![mnt(
            "kube-api-access-abcde",
            "/var/run/secrets/kubernetes.io/serviceaccount",
        )],
    );
    pod.spec.as_mut().unwrap().service_account_name = Some("robot".into());
    pod
}

#[tokio::test]
async fn service_account_token_is_requested_cached_and_refreshed() {
    let (_tmp, src, vm) = manager(FakeSource::default());
    let pod = token_pod(Some("vault"), Some(3607));
    vm.setup_pod(&pod).await.unwrap();
    let file = vm
        .pod_dir("11111111-2222")
        .join("volumes/kubernetes.io~projected/kube-api-access-abcde/token");
    assert_eq!(fs::read_to_string(&file).unwrap(), "token-1");
    {
        let s = src.lock().unwrap();
        let (ns, sa, tr) = &s.token_requests[0];
        assert_eq!((ns.as_str(), sa.as_str()), ("default", "robot"));
        assert_eq!(tr.spec.audiences, vec!["vault".to_string()]);
        assert_eq!(tr.spec.expiration_seconds, Some(3607));
    }
    // Fresh: later syncs reuse it.
    vm.setup_pod(&pod).await.unwrap();
    vm.setup_pod(&pod).await.unwrap();
    assert_eq!(src.lock().unwrap().token_requests.len(), 1);
    assert_eq!(fs::read_to_string(&file).unwrap(), "token-1");

    // A token in the last 20% of its life is replaced on the next sync.
    let pod = token_pod(None, Some(1000));
    src.lock().unwrap().token_expires_in = Some(100);
    vm.setup_pod(&pod).await.unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), "token-2");
    vm.setup_pod(&pod).await.unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), "token-3");

    // A failed refresh keeps the unexpired cached token.
    src.lock().unwrap().token_error = Some("apiserver down".into());
    vm.setup_pod(&pod).await.unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), "token-3");

    // Teardown forgets the pod's tokens.
    vm.teardown_pod("11111111-2222").await.unwrap();
    assert!(vm.tokens.is_empty());
}

#[tokio::test]
async fn service_account_token_failure_is_a_failed_mount() {
    let src = FakeSource {
        token_error: Some(r#"serviceaccounts "robot" not found"#.into()),
        ..Default::default()
    };
    let (_tmp, _src, vm) = manager(src);
    let err = vm.setup_pod(&token_pod(None, None)).await.unwrap_err();
    assert_eq!(err.reason(), "FailedMount");
    assert_eq!(
        err.to_string(),
        r#"MountVolume.SetUp failed for volume "kube-api-access-abcde" : failed to fetch token: serviceaccounts "robot" not found"#
    );
}

/// The whole path against a real apiserver: admission injects the
/// kube-api-access volume, the kubelet fills it (token bound to the pod,
/// ca.crt, namespace) and the token authenticates as the account.
#[tokio::test]
async fn kube_api_access_volume_against_a_real_apiserver() {
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use kube::api::{Api, ListParams, PostParams};
    let srv = apiserver::testing::TestServer::start_with(
        1,
        vec!["--enable-admission-plugins=ServiceAccount".into()],
    )
    .await
    .unwrap();
    let client = srv.client().await.unwrap();
    let ns = "kubelet-token";
    fn create<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &create(serde_json::json!({"metadata": {"name": ns}})),
        )
        .await
        .unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &create(serde_json::json!({"metadata": {"name": "default"}})),
        )
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &create(serde_json::json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": srv.pki.ca_pem}})),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = pods
        .create(
            &PostParams::default(),
            &create(serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})),
        )
        .await
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let vm = VolumeManager::new(client.clone(), tmp.path().to_path_buf(), "node-a".into());
    vm.setup_pod(&pod).await.unwrap();
    let uid = pod.metadata.uid.clone().unwrap();
    let vol = &pod.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0].name;
    let dir = vm
        .pod_dir(&uid)
        .join("volumes/kubernetes.io~projected")
        .join(vol);
    assert_eq!(fs::read_to_string(dir.join("namespace")).unwrap(), ns);
    assert_eq!(
        fs::read_to_string(dir.join("ca.crt")).unwrap(),
        srv.pki.ca_pem
    );
    let token = fs::read_to_string(dir.join("token")).unwrap();
    assert_eq!(mode_of(&dir.join("token")), 0o644);
    // The container's mount.
    let mounts = vm.container_mounts(&pod, &container(&pod)).unwrap();
    assert!(mounts.iter().any(|m| m.container_path
        == "/var/run/secrets/kubernetes.io/serviceaccount"
        && m.readonly
        && m.host_path == dir));

    // What an in-cluster client does with the token.
    let mut cfg = kube::Config::new(srv.url().parse().unwrap());
    cfg.root_cert = Some(vec![pem_der(&srv.pki.ca_pem)]);
    cfg.auth_info.token = Some(token.clone().into());
    let as_pod = kube::Client::try_from(cfg).unwrap();
    Api::<Pod>::namespaced(as_pod.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    // A later sync keeps the same (fresh) token.
    vm.setup_pod(&pod).await.unwrap();
    assert_eq!(fs::read_to_string(dir.join("token")).unwrap(), token);
    vm.teardown_pod(&uid).await.unwrap();
    srv.stop().await.unwrap();
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}
