//! # cmcsi-proto: the CSI v1 Identity and Node services
//!
//! Rust types and [tonic] service traits generated at build time from the
//! project's own `proto/csi.proto` (package `csi.v1`), which carries the
//! Identity and Node services of the CSI specification with the upstream
//! names, field numbers and types. Generation uses `protox`, so no `protoc`
//! is needed to build this crate.
//!
//! Start at [`v1::node_server::Node`] and [`v1::identity_server::Identity`]
//! to implement a node plugin, or at [`v1::node_client::NodeClient`] to call
//! one.
//!
//! Fields named `secrets` carry sensitive data: never log them.

/// The `csi.v1` protobuf package.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("csi.v1");
}
