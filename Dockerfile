# Multi-stage build: compile in the Rust image, run as a non-root user in a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin ferry

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/ferry --create-home ferry \
 && mkdir -p /etc/ferry && chown ferry:ferry /var/lib/ferry
COPY --from=build /src/target/release/ferry /usr/local/bin/ferry
COPY config/ferry.toml /etc/ferry/ferry.toml
ENV FERRY_CONFIG=/etc/ferry/ferry.toml \
    FERRY_DATA_DIR=/var/lib/ferry \
    FERRY_DATABASE__URL=sqlite:///var/lib/ferry/ferry.db \
    FERRY_SFTP__LISTEN=0.0.0.0:2222 \
    FERRY_WEB__LISTEN=0.0.0.0:8080
USER ferry
WORKDIR /var/lib/ferry
VOLUME ["/var/lib/ferry", "/etc/ferry"]
EXPOSE 2222 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["serve"]
