# syntax=docker/dockerfile:1
#
# The cert-manager CSI driver image, for registries and multi-arch builds:
#
#   docker build -t cert-manager-csi-driver:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/cert-manager-csi-driver:TAG --push .
#
# It holds the same file tree as `cargo xtask image` (which needs no container engine and writes a
# reproducible OCI archive): the builder stage runs that command's `--rootfs` mode, so the build
# of the two binaries (statically linked against glibc, with no shared library or loader to
# copy), the dpkg status entry of the glibc they were linked with, and a minimal /etc/passwd and
# /etc/group are chosen by one piece of code. See docs/image.md.
# The node-driver-registrar and livenessprobe sidecars are upstream images.

ARG RUST_VERSION=1.95

# ---- build: glibc (Debian), like `cargo xtask image`; each platform builds natively ------------
FROM rust:${RUST_VERSION}-bookworm AS builder
# The git description and commit the binary reports (`--version`, image labels); the build
# context has no .git, so the release workflow passes them.
ARG VERSION_DESCRIBE=""
ARG REVISION=""
ENV CMCSI_GIT_DESCRIBE=${VERSION_DESCRIBE} CMCSI_GIT_COMMIT=${REVISION}
WORKDIR /src
COPY . .
# cargo-auditable embeds the binaries' dependency lists for scanners. `cargo xtask image` builds
# each binary as `cargo auditable rustc --release --locked -p PACKAGE --bin NAME -- -C
# target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs` (the flags reach the
# binary's crate only, not the proc macros; packed relocations need GNU ld 2.38, as in bookworm),
# checks that it is static, and writes the tree: the binaries stripped, and the dpkg status entry
# (from this stage's Debian database) of the package owning the libc.a they were linked with.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo install --locked cargo-auditable@0.7.7
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo xtask image --rootfs /out

# ---- run: nothing but that tree ------------------------------------------------------------------
FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="cert-manager-csi-driver" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/cert-manager-rs/csi-driver" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/ /
# Root, deliberately: the driver mounts a tmpfs and bind-mounts volumes into the kubelet's pods
# directory (mount(2) with CAP_SYS_ADMIN in a privileged container), and reads and writes
# root-owned kubelet directories. A non-root user cannot do either. The DaemonSet keeps the root
# filesystem read-only; everything the driver writes is on its host-path volumes.
# hadolint ignore=DL3002
USER 0:0
ENTRYPOINT ["/cert-manager-csi-driver"]
