//! Discovery of the served resources (preferred versions), tolerant of
//! groups that fail (e.g. an unavailable aggregated API): those are reported
//! instead of failing the whole discovery, like upstream's
//! ServerPreferredResources.

use kube::api::ApiResource;
use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, Discovery};

/// Every resource at its group's preferred version, and the groups whose
/// discovery failed (`"group/version: error"`).
pub async fn preferred_resources(
    client: &kube::Client,
) -> (Vec<(ApiResource, ApiCapabilities)>, Vec<String>) {
    if let Ok(d) = Discovery::new(client.clone()).run().await {
        let mut out = Vec::new();
        for g in d.groups() {
            out.extend(g.recommended_resources());
        }
        return (out, Vec::new());
    }
    // Group by group, so one failing group does not hide the others.
    let mut out = Vec::new();
    let mut failures = Vec::new();
    let mut gvs: Vec<String> = vec!["v1".into()];
    match client.list_api_groups().await {
        Ok(list) => {
            for g in list.groups {
                let gv = g
                    .preferred_version
                    .map(|v| v.group_version)
                    .or_else(|| g.versions.first().map(|v| v.group_version.clone()));
                if let Some(gv) = gv {
                    gvs.push(gv);
                }
            }
        }
        Err(e) => failures.push(format!("/apis: {e}")),
    }
    for gv in gvs {
        let parsed: GroupVersion = match gv.parse() {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{gv}: {e}"));
                continue;
            }
        };
        match kube::discovery::pinned_group(client, &parsed).await {
            Ok(g) => out.extend(g.recommended_resources()),
            Err(e) => failures.push(format!("{gv}: {e}")),
        }
    }
    (out, failures)
}
