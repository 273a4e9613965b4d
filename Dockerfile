# syntax=docker/dockerfile:1
# orgwall: build the release binary, then ship it alone on a slim Debian.

FROM rust:1.95-slim-bookworm AS builder
# aws-lc-sys builds its C code with cc; cmake is only a fallback it may ask for.
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app

# Dependencies first, against dummy sources, so that they stay cached until Cargo.toml or
# Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
# (benches/tokens.rs is declared in Cargo.toml, so a stand-in must exist too.)
RUN mkdir src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/tokens.rs \
    && cargo build --release --locked \
    && rm -rf src benches

# The real sources. sqlx::migrate!("./migrations") embeds migrations/ at compile time, so it
# must be here before this build. touch: COPY keeps old mtimes, which cargo would take for
# the dummy build's.
COPY src ./src
COPY benches ./benches
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && cp target/release/orgwall /usr/local/bin/orgwall

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/orgwall orgwall
COPY --from=builder /usr/local/bin/orgwall /usr/local/bin/orgwall
USER orgwall
WORKDIR /home/orgwall
ENV HOST=0.0.0.0 PORT=3000
EXPOSE 3000
HEALTHCHECK CMD curl -fsS http://127.0.0.1:3000/health || exit 1
ENTRYPOINT ["orgwall"]
CMD ["serve"]
