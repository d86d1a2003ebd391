//! root-ca-certificate-publisher-controller: a `kube-root-ca.crt` ConfigMap
//! holding the cluster CA (`ca.crt`) in every active namespace, recreated when
//! deleted and reset when changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

use crate::controllers::serviceaccount::namespace_active;
use crate::informers::{owner_queue, Informer};
use crate::workqueue::run_workers;
use crate::ControllerContext;

pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let Some(ca) = ctx.root_ca.clone() else {
        anyhow::bail!(
            "no root CA: pass --root-ca-file or a kubeconfig with a certificate authority"
        );
    };
    let namespaces = ctx.informers.get::<Namespace>();
    let cms = ctx.informers.get::<ConfigMap>();
    let queue = owner_queue(&namespaces, &cms, ctx.stop.clone(), |cm: &ConfigMap| {
        (cm.name_any() == ROOT_CA_CONFIGMAP).then(|| cm.namespace().unwrap_or_default())
    })
    .await;
    let client = ctx.client.clone();
    run_workers(
        queue,
        1,
        ctx.stop.clone(),
        "root-ca-cert-publisher",
        move |ns: String| {
            sync(
                client.clone(),
                namespaces.clone(),
                cms.clone(),
                ca.clone(),
                ns,
            )
        },
    )
    .await;
    Ok(())
}

async fn sync(
    client: kube::Client,
    namespaces: Informer<Namespace>,
    cms: Informer<ConfigMap>,
    ca: Arc<String>,
    ns: String,
) -> anyhow::Result<()> {
    let Some(namespace) = namespaces.get(None, &ns) else {
        return Ok(());
    };
    if !namespace_active(&namespace) {
        return Ok(());
    }
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let data = BTreeMap::from([("ca.crt".to_string(), ca.to_string())]);
    match cms.get(Some(&ns), ROOT_CA_CONFIGMAP) {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(ROOT_CA_CONFIGMAP.into()),
                    namespace: Some(ns.clone()),
                    annotations: Some(BTreeMap::from([(
                        DESCRIPTION_ANNOTATION.to_string(),
                        DESCRIPTION.to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 403 || e.code == 404 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Some(cm) => {
            let annotated = cm
                .annotations()
                .get(DESCRIPTION_ANNOTATION)
                .map(String::as_str)
                == Some(DESCRIPTION);
            if cm.data.as_ref() == Some(&data) && annotated {
                return Ok(());
            }
            let mut cm = (*cm).clone();
            cm.data = Some(data);
            cm.binary_data = None;
            cm.annotations_mut()
                .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
            match api
                .replace(ROOT_CA_CONFIGMAP, &PostParams::default(), &cm)
                .await
            {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}
