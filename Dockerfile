# alert-relay: a small image that runs as a non-root user with its store on a volume.
#   docker build -t alert-relay .
#   docker run -p 8080:8080 -v alert-relay-data:/var/lib/alert-relay \
#     -v $PWD/config.toml:/etc/alert-relay/config.toml:ro alert-relay
# Secrets: mount files and point url_file / smtp_url_file / password_file at them, or set
# ALERT_RELAY_DESTINATIONS__<NAME>__URL in the environment.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY templates templates
# The sample events bundled for `check`, and the benchmark target named in Cargo.toml.
COPY samples samples
COPY benches benches
RUN cargo build --release --locked --bin alert-relay \
 && mkdir -p /out/var/lib/alert-relay

# distroless/cc: glibc and CA certificates, no shell; "nonroot" is uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/alert-relay /usr/local/bin/alert-relay
COPY --from=build --chown=65532:65532 /out/var/lib/alert-relay /var/lib/alert-relay
COPY config.toml /etc/alert-relay/config.toml
COPY templates /etc/alert-relay/templates
ENV ALERT_RELAY_CONFIG=/etc/alert-relay/config.toml \
    ALERT_RELAY_SERVER__LISTEN=0.0.0.0:8080 \
    ALERT_RELAY_STORAGE__PATH=/var/lib/alert-relay/alert-relay.db \
    ALERT_RELAY_LOG__FORMAT=json
VOLUME ["/var/lib/alert-relay"]
USER nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/alert-relay"]
CMD ["serve"]
