# syntax=docker/dockerfile:1
#
# The cert-manager CSI driver image: a static (musl) binary on a distroless base.
#
#   docker build -t cert-manager-csi-driver:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/cert-manager-csi-driver:TAG --push .
#
# See docs/image.md. The node-driver-registrar and livenessprobe sidecars are upstream images.

ARG RUST_VERSION=1.95

# ---- build: Alpine's Rust targets musl natively, so the binary is statically linked --------------
FROM rust:${RUST_VERSION}-alpine AS builder
# ring (TLS) compiles a little C and assembly.
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cmcsi-driver --bin cert-manager-csi-driver \
 && install -D -m 0755 target/release/cert-manager-csi-driver /out/cert-manager-csi-driver

# ---- run -----------------------------------------------------------------------------------------
# distroless/static: no shell, no package manager; CA certificates and /etc/passwd only.
FROM gcr.io/distroless/static-debian12
COPY --from=builder /out/cert-manager-csi-driver /cert-manager-csi-driver
# Root, deliberately: the driver mounts a tmpfs and bind-mounts volumes into the kubelet's pods
# directory (mount(2) with CAP_SYS_ADMIN in a privileged container), and reads and writes
# root-owned kubelet directories. A non-root user cannot do either. The DaemonSet keeps the root
# filesystem read-only; everything the driver writes is on its host-path volumes.
USER 0:0
ENTRYPOINT ["/cert-manager-csi-driver"]
