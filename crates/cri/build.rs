//! Generates the CRI runtime.v1 client from proto/runtime/v1/api.proto.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let api = proto_root.join("runtime/v1/api.proto");
    println!("cargo:rerun-if-changed={}", api.display());
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_protos(&[api], &[proto_root])?;
    Ok(())
}
