//! Builders for pods and nodes in plugin tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, ContainerImage, ContainerPort, Node, NodeSpec, NodeStatus, Pod, PodSchedulingGate,
    PodSpec, ResourceRequirements, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::framework::{NodeInfo, PodInfo};

pub struct PodBuilder(pub Pod);
pub struct NodeBuilder(pub Node, pub Vec<PodInfo>);

pub fn pod(name: &str) -> PodBuilder {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.namespace = Some("default".into());
    p.metadata.uid = Some(format!("uid-{name}"));
    p.spec = Some(PodSpec {
        containers: vec![Container {
            name: "c".into(),
            image: Some("busybox".into()),
            ..Default::default()
        }],
        ..Default::default()
    });
    PodBuilder(p)
}

pub fn node(name: &str) -> NodeBuilder {
    let mut n = Node::default();
    n.metadata.name = Some(name.into());
    n.metadata.labels = Some([("kubernetes.io/hostname".to_string(), name.to_string())].into());
    n.spec = Some(NodeSpec::default());
    n.status = Some(NodeStatus {
        allocatable: Some(
            [("cpu", "4"), ("memory", "8Gi"), ("pods", "110")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.into())))
                .collect(),
        ),
        ..Default::default()
    });
    NodeBuilder(n, vec![])
}

impl PodBuilder {
    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.as_mut().unwrap()
    }
    pub fn ns(mut self, ns: &str) -> Self {
        self.0.metadata.namespace = Some(ns.into());
        self
    }
    pub fn priority(mut self, p: i32) -> Self {
        self.spec().priority = Some(p);
        self
    }
    pub fn gate(mut self, g: &str) -> Self {
        self.spec()
            .scheduling_gates
            .get_or_insert_with(Vec::new)
            .push(PodSchedulingGate { name: g.into() });
        self
    }
    pub fn node_name(mut self, n: &str) -> Self {
        self.spec().node_name = Some(n.into());
        self
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(k.into(), v.into());
        self
    }
    pub fn node_selector(mut self, k: &str, v: &str) -> Self {
        self.spec()
            .node_selector
            .get_or_insert_with(BTreeMap::new)
            .insert(k.into(), v.into());
        self
    }
    pub fn toleration(mut self, key: &str, op: &str, value: &str, effect: &str) -> Self {
        self.spec()
            .tolerations
            .get_or_insert_with(Vec::new)
            .push(Toleration {
                key: Some(key.into()),
                operator: Some(op.into()),
                value: Some(value.into()),
                effect: Some(effect.into()),
                toleration_seconds: None,
            });
        self
    }
    pub fn host_port(mut self, port: i32) -> Self {
        self.spec().containers[0]
            .ports
            .get_or_insert_with(Vec::new)
            .push(ContainerPort {
                container_port: port,
                host_port: Some(port),
                ..Default::default()
            });
        self
    }
    pub fn req(mut self, cpu: &str, mem: &str) -> Self {
        let mut r = BTreeMap::new();
        if !cpu.is_empty() {
            r.insert("cpu".to_string(), Quantity(cpu.into()));
        }
        if !mem.is_empty() {
            r.insert("memory".to_string(), Quantity(mem.into()));
        }
        self.spec().containers[0].resources = Some(ResourceRequirements {
            requests: Some(r),
            ..Default::default()
        });
        self
    }
    pub fn image(mut self, img: &str) -> Self {
        self.spec().containers[0].image = Some(img.into());
        self
    }
    pub fn affinity(mut self, a: k8s_openapi::api::core::v1::Affinity) -> Self {
        self.spec().affinity = Some(a);
        self
    }
    pub fn spread(mut self, c: k8s_openapi::api::core::v1::TopologySpreadConstraint) -> Self {
        self.spec()
            .topology_spread_constraints
            .get_or_insert_with(Vec::new)
            .push(c);
        self
    }
    pub fn obj(self) -> Pod {
        self.0
    }
    pub fn info(self) -> PodInfo {
        PodInfo::new(Arc::new(self.0))
    }
}

impl NodeBuilder {
    pub fn unschedulable(mut self) -> Self {
        self.0.spec.as_mut().unwrap().unschedulable = Some(true);
        self
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(k.into(), v.into());
        self
    }
    pub fn taint(mut self, k: &str, v: &str, effect: &str) -> Self {
        self.0
            .spec
            .as_mut()
            .unwrap()
            .taints
            .get_or_insert_with(Vec::new)
            .push(Taint {
                key: k.into(),
                value: Some(v.into()),
                effect: effect.into(),
                time_added: None,
            });
        self
    }
    pub fn alloc(mut self, cpu: &str, mem: &str, pods: &str) -> Self {
        let a = self
            .0
            .status
            .as_mut()
            .unwrap()
            .allocatable
            .as_mut()
            .unwrap();
        a.insert("cpu".into(), Quantity(cpu.into()));
        a.insert("memory".into(), Quantity(mem.into()));
        a.insert("pods".into(), Quantity(pods.into()));
        self
    }
    pub fn image(mut self, name: &str, size: i64) -> Self {
        self.0
            .status
            .as_mut()
            .unwrap()
            .images
            .get_or_insert_with(Vec::new)
            .push(ContainerImage {
                names: Some(vec![name.into()]),
                size_bytes: Some(size),
            });
        self
    }
    pub fn with_pod(mut self, p: PodBuilder) -> Self {
        let name = self.0.metadata.name.clone().unwrap();
        self.1.push(p.node_name(&name).info());
        self
    }
    pub fn obj(self) -> Node {
        self.0
    }
    pub fn info(self) -> NodeInfo {
        let mut n = NodeInfo::new(Arc::new(self.0));
        for p in self.1 {
            n.add_pod(Arc::new(p));
        }
        n
    }
}
