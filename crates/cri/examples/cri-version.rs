//! `cargo run -p cri --example cri-version -- unix:///run/containerd/containerd.sock`
//! prints the runtime version, status conditions and images.

use cri::runtime::v1::{
    image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
    ListImagesRequest, StatusRequest, VersionRequest,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "unix:///run/containerd/containerd.sock".into());
    let channel = cri::connect(&endpoint).await?;
    let mut rt = RuntimeServiceClient::new(channel.clone());
    let v = rt
        .version(VersionRequest {
            version: "v1".into(),
        })
        .await?
        .into_inner();
    println!(
        "runtime: {} {} (api {})",
        v.runtime_name, v.runtime_version, v.runtime_api_version
    );
    let st = rt
        .status(StatusRequest { verbose: false })
        .await?
        .into_inner();
    for c in st.status.map(|s| s.conditions).unwrap_or_default() {
        println!(
            "condition {}={} {} {}",
            c.r#type, c.status, c.reason, c.message
        );
    }
    let mut img = ImageServiceClient::new(channel);
    let images = img
        .list_images(ListImagesRequest { filter: None })
        .await?
        .into_inner();
    for i in images.images {
        println!("image {} {:?} {} bytes", i.id, i.repo_tags, i.size);
    }
    Ok(())
}
