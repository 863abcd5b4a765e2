# The overseer binary, built in the official Rust image and run on a slim Debian as a non-root
# user:
#
#   docker build -t overseer .
#   docker run -p 127.0.0.1:8080:8080 -e DATABASE_URL=postgres://… -e OVERSEER_NODE_ID=node-1 overseer
#
# The image's command is `serve`; give another one after the image's name (`… overseer worker`,
# `… overseer migrate`). docker-compose.yml runs it beside PostgreSQL and Redis.

ARG RUST_VERSION=1.95

# --- build --------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src

# Dependencies first, from the manifests alone: each crate's sources are an empty stub here, so
# this layer (the bulk of a build from clean) is reused until a Cargo.toml or Cargo.lock
# changes, and a change to the code rebuilds only Overseer's own crates.
COPY Cargo.toml Cargo.lock ./
COPY actors/Cargo.toml actors/
COPY sim/Cargo.toml sim/
COPY testkit/Cargo.toml testkit/
RUN mkdir -p src actors/src sim/src testkit/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs actors/src/lib.rs sim/src/lib.rs testkit/src/lib.rs \
    && cargo build --release --locked --bin overseer

# Then Overseer itself. The migrations are compiled into the binary. `touch` makes the real
# sources newer than the stubs' build, whatever times the copy gave them, so Cargo rebuilds
# them. The release profile strips the binary (`strip = true` in Cargo.toml).
COPY migrations migrations
COPY src src
COPY actors/src actors/src
COPY sim/src sim/src
COPY testkit/src testkit/src
RUN touch src/main.rs src/lib.rs actors/src/lib.rs sim/src/lib.rs testkit/src/lib.rs \
    && cargo build --release --locked --bin overseer

# --- runtime ------------------------------------------------------------------------------------
# The builder's Debian release (bookworm), so the binary finds the glibc it was linked against.
FROM debian:bookworm-slim AS runtime

# ca-certificates: the roots rustls trusts for Google's endpoints. curl: the HEALTHCHECK below
# (the binary has no probe of its own).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# A system user without a home or a shell. The numeric id in USER lets a runtime that refuses
# root (Kubernetes' runAsNonRoot) see that it is not 0.
RUN groupadd --system --gid 10001 overseer \
    && useradd --system --uid 10001 --gid overseer --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin overseer

COPY --from=build /src/target/release/overseer /usr/local/bin/overseer

USER 10001:10001

# Outside a container Overseer listens on loopback only; here it must listen on every
# interface to be reachable through a published port. Set OVERSEER_API_TOKEN whenever that port
# is reachable from other machines (README, "Deploying and scaling").
ENV OVERSEER_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080

# Liveness: `GET /api/health` answers without a token. Migrations run at start-up, hence the
# start period. It probes port 8080: keep that port if you set OVERSEER_HTTP_ADDR. A `worker`
# has no HTTP port: run it with `--no-healthcheck` (compose:
# `healthcheck: {disable: true}`).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl --fail --silent --show-error --max-time 2 http://127.0.0.1:8080/api/health || exit 1

# SIGTERM (what `docker stop` sends) is a graceful shutdown that may take up to
# OVERSEER_SHUTDOWN_DEADLINE_MS (20 s), longer than `docker stop` waits by default (10 s): stop
# with `docker stop -t 30`; compose's stop_grace_period gives it 60 s.
ENTRYPOINT ["overseer"]
CMD ["serve"]
