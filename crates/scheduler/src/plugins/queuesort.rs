//! PrioritySort: higher `spec.priority` first, then earlier enqueue time.

use super::prelude::*;

pub const NAME: &str = "PrioritySort";

pub struct PrioritySort;

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        Some(self)
    }
}

impl QueueSortPlugin for PrioritySort {
    fn less(&self, a: &PodInfo, a_ts: u64, b: &PodInfo, b_ts: u64) -> bool {
        a.priority > b.priority || (a.priority == b.priority && a_ts < b_ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::pod;

    #[test]
    fn higher_priority_then_older_first() {
        let hi = pod("hi").priority(10).info();
        let lo = pod("lo").info();
        assert!(PrioritySort.less(&hi, 5, &lo, 1));
        assert!(!PrioritySort.less(&lo, 1, &hi, 5));
        assert!(PrioritySort.less(&lo, 1, &lo, 2));
    }
}
