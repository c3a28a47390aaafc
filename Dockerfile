# The operator's image: built in a Rust image, run from a distroless one as a non-root user.
# (The build machine of this project has no container runtime; CI builds it, see
# .github/workflows/ci.yaml.)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# The workspace's other member: Cargo reads it, but the image is built without the `sandbox`
# feature, so neither the embedded API server nor the SMTP server is compiled in.
COPY sandbox/Cargo.toml ./sandbox/Cargo.toml
COPY sandbox/src ./sandbox/src
RUN cargo build --release --locked --no-default-features --bin partner-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/partner-operator /usr/local/bin/partner-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/partner-operator"]
CMD ["run"]
