# Stowage: a release build in one stage, a small non-root runtime in the next.
#   docker build -t stowage .
#   docker run -p 8080:8080 -e STOWAGE_LISTEN=0.0.0.0:8080 stowage
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin stowage \
 && install -D target/release/stowage /out/stowage

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/stowage --create-home stowage
COPY --from=build /out/stowage /usr/local/bin/stowage
USER stowage
WORKDIR /var/lib/stowage
ENV STOWAGE_LISTEN=0.0.0.0:8080 \
    STOWAGE_DATA_DIR=/var/lib/stowage/data \
    STOWAGE_LOG_FORMAT=json
EXPOSE 8080
VOLUME ["/var/lib/stowage/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["stowage"]
