# tandem-operator image: a release build on a slim Debian base, running as a non-root user.
# Build from the repository root: docker build -f deploy/operator.Dockerfile -t tandem-operator .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p tandem-operator --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/tandem-operator /usr/local/bin/tandem-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tandem-operator"]
CMD ["run"]
