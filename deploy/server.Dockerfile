# tandem-server image. The base keeps /bin/sh because the operator starts the server through
# a small script (from the ConfigMap) that assembles the config with the password from the
# mounted Secret; see src/build/config.rs. Runs as UID/GID 10001, the operator's default.
# Build from the repository root: docker build -f deploy/server.Dockerfile -t tandem-server .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p tandem-server --locked

FROM debian:bookworm-slim
RUN groupadd --gid 10001 tandem && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin tandem \
    && mkdir -p /data /run/tandem && chown 10001:10001 /data /run/tandem
COPY --from=build /src/target/release/tandem-server /usr/local/bin/tandem-server
USER 10001:10001
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/tandem-server"]
