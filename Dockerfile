# syntax=docker/dockerfile:1
#
# Kiln's container image: kiln-server and kiln-cli on Debian 12, run as an unprivileged
# user in /data (a volume).
#
#   docker build -t kiln .
#   docker run -d -p 6379:6379 -v kiln-data:/data kiln --requirepass change-me
#   docker run -d -p 6379:6379 -v "$PWD/kiln.conf:/etc/kiln/kiln.conf:ro" -v kiln-data:/data kiln
#
# Arguments after the image name are kiln-server's (see docker/entrypoint.sh): flags
# apply over the image's config (docker/kiln.conf: bind 0.0.0.0, dir /data); a config
# file path replaces it. Kiln accepts `protected-mode` but does not enforce it: set a
# password (`--requirepass`, or ACL users in the config) on any reachable container.
#
# The binaries link glibc, libm and libgcc_s dynamically (jemalloc and Lua are built in
# statically); the build stage is Debian 12 like the final one, so the glibc they need
# is the one the final stage has. A fully static musl build would need the
# x86_64-unknown-linux-musl target, which is not used here.

# kiln-cli needs Rust 1.95 (crates/cli/Cargo.toml); the server 1.87 (Cargo.toml).
ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target directories are BuildKit caches: a rebuild after a source change
# recompiles Kiln's crates, not every dependency. (The binaries are copied out in the same
# step, since a cache mount is not part of the image.)
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kiln-server -p kiln-cli \
 && install -D -m 0755 target/release/kiln-server /out/usr/local/bin/kiln-server \
 && install -D -m 0755 target/release/kiln-cli /out/usr/local/bin/kiln-cli

FROM debian:bookworm-slim
# A fixed uid/gid, so that a bind-mounted /data can be given to it from the host.
RUN groupadd --system --gid 999 kiln \
 && useradd --system --uid 999 --gid kiln --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin kiln \
 && mkdir -p /data /etc/kiln \
 && chown kiln:kiln /data /etc/kiln
COPY --from=build /out/ /
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/kiln-entrypoint
# Owned by kiln, with its directory, so that CONFIG REWRITE works (it writes a temporary
# file beside the one the server started with, then renames it over it).
COPY --chown=kiln:kiln docker/kiln.conf /etc/kiln/kiln.conf
WORKDIR /data
VOLUME /data
USER kiln:kiln
EXPOSE 6379
ENTRYPOINT ["kiln-entrypoint"]
CMD []
