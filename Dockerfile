# syntax=docker/dockerfile:1
# orgwall: build the release binary, then ship it alone on a slim Debian.
#
# The dependency layer is built by cargo-chef from a recipe of Cargo.toml and Cargo.lock, so it
# stays cached until the dependencies change, whatever happens to the sources.

FROM rust:1.95-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

# The recipe: the dependency graph and the crate's target layout, nothing else.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# aws-lc-sys builds its C code with cc; cmake is only a fallback it may ask for. The build
# tools follow the base image's Debian release (pinning each version would only break the
# build at the next point release).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json

# The real sources. sqlx::migrate!("./migrations") embeds migrations/ at compile time, and the
# query macros check every statement against .sqlx/ (the offline data `cargo sqlx prepare`
# writes), so no database is needed to build.
ENV SQLX_OFFLINE=true
COPY Cargo.toml Cargo.lock ./
COPY .sqlx ./.sqlx
COPY migrations ./migrations
COPY benches ./benches
COPY src ./src
RUN cargo build --release --locked --bin orgwall \
    && cp target/release/orgwall /usr/local/bin/orgwall

FROM debian:bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/orgwall orgwall
COPY --from=builder /usr/local/bin/orgwall /usr/local/bin/orgwall
# A numeric user, so that orchestrators can verify it is not root (Kubernetes runAsNonRoot).
USER 10001:10001
WORKDIR /home/orgwall
# HOST=0.0.0.0 listens on every interface of the container. PUBLIC_URL is the issuer's `iss`
# and the base of its endpoints: set it to the URL clients use (https://auth.example.com);
# the default names this machine, never the wildcard listen address.
ENV HOST=0.0.0.0 PORT=3000 PUBLIC_URL=http://localhost:3000
EXPOSE 3000
# Exit 1 (unhealthy) whatever curl's own code; Docker reserves 2.
HEALTHCHECK CMD ["/bin/sh", "-c", "curl -fsS http://127.0.0.1:3000/health >/dev/null || exit 1"]
ENTRYPOINT ["orgwall"]
CMD ["serve"]
