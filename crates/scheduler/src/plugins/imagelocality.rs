//! ImageLocality: prefer nodes that already have the pod's images, scaled
//! by how widely each image is spread (so one node does not attract all).

use super::prelude::*;
use crate::framework::types::normalize_image;

pub const NAME: &str = "ImageLocality";
const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub struct ImageLocality;

/// Per image: how many nodes have it (computed in PreScore).
struct ImageSpread {
    total_nodes: i64,
    nodes_with: std::collections::HashMap<String, i64>,
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

fn images(pod: &PodInfo) -> Vec<String> {
    let Some(s) = pod.spec() else { return vec![] };
    s.init_containers
        .iter()
        .flatten()
        .chain(s.containers.iter())
        .filter_map(|c| c.image.as_deref().map(normalize_image))
        .collect()
}

impl PreScorePlugin for ImageLocality {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[Arc<NodeInfo>],
        snap: &Snapshot,
    ) -> Status {
        let mut nodes_with = std::collections::HashMap::new();
        for img in images(pod) {
            let n = snap
                .nodes
                .iter()
                .filter(|n| n.images.contains_key(&img))
                .count() as i64;
            nodes_with.insert(img, n);
        }
        state.write(
            NAME,
            ImageSpread {
                total_nodes: snap.nodes.len() as i64,
                nodes_with,
            },
        );
        Status::success()
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let imgs = images(pod);
        let spread = state.read::<ImageSpread>(NAME);
        let mut sum = 0i64;
        for img in &imgs {
            if let Some(size) = node.images.get(img) {
                let (with, total) = spread
                    .map(|s| {
                        (
                            s.nodes_with.get(img).copied().unwrap_or(1),
                            s.total_nodes.max(1),
                        )
                    })
                    .unwrap_or((1, 1));
                sum = sum.saturating_add((*size as f64 * (with as f64 / total as f64)) as i64);
            }
        }
        let max = MAX_CONTAINER_THRESHOLD * (imgs.len().max(1) as i64);
        let sum = sum.clamp(MIN_THRESHOLD, max);
        MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};

    #[test]
    fn nodes_with_the_image_score_higher() {
        let st = CycleState::default();
        let p = pod("p").image("nginx").info();
        let with = node("a")
            .image("docker.io/library/nginx:latest", 500 * MB)
            .info();
        let without = node("b").info();
        assert!(ImageLocality.score(&st, &p, &with) > 0);
        assert_eq!(ImageLocality.score(&st, &p, &without), 0);
    }
}
