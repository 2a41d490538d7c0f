# The lineage-bus binary. Every role runs from this image with a different command.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin lineage-bus

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/lineage-bus /usr/local/bin/lineage-bus
COPY config/lineage-bus.toml /etc/lineage-bus/lineage-bus.toml
ENV LINEAGE_BUS_CONFIG=/etc/lineage-bus/lineage-bus.toml \
    LINEAGE_BUS__ADMIN__LISTEN=0.0.0.0:9464 \
    LINEAGE_BUS__TELEMETRY__LOG_FORMAT=json
EXPOSE 9464
ENTRYPOINT ["lineage-bus"]
