//! Generates the CSI types and tonic service code from `proto/csi.proto`.
//!
//! `protox` compiles the proto file in pure Rust (it also ships the
//! well-known types such as `google/protobuf/wrappers.proto`), so neither
//! this build nor a user's needs `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/csi.proto");
    let fds = protox::compile(["proto/csi.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
