# The vc operator image: a static musl build of vc on a distroless base, run as a non-root
# user. vc uses rustls with ring (no OpenSSL), so the musl target needs only a C compiler
# for ring and zstd.
#
#   docker build -t registry.example/vc:0.1.0 .
#   vc operator install --image registry.example/vc:0.1.0
#
# Build arguments: VC_GIT_COMMIT (for `vc version` when the context has no .git).

FROM rust:1.89-alpine AS build
RUN apk add --no-cache musl-dev gcc make
WORKDIR /src
COPY . .
ARG VC_GIT_COMMIT=""
ENV VC_GIT_COMMIT=${VC_GIT_COMMIT}
RUN cargo build --release --locked --bin vc \
    && install -D -m 0755 target/release/vc /out/vc

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vc /usr/local/bin/vc
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/vc"]
CMD ["operator", "run", "--metrics-address", "0.0.0.0:8080"]
