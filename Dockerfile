# syntax=docker/dockerfile:1.7
#
# Shepherd image: the `shepherd` CLI/worker and the demo service the local fleet runs.
#   docker build -t shepherd:dev .
#   docker run --rm shepherd:dev --help
# Base images are pinned; bump them deliberately (docs/operations.md, "Upgrades").

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags="-s -w" -o /out/shepherd ./cmd/shepherd && \
    go build -ldflags="-s -w" -o /out/demo-service ./cmd/demo-service

# Debian rather than distroless: the exec target runs its deploy/traffic/rollback commands with `sh -c`,
# and operators extend this image with their own tools (kubectl, cloud CLIs) for those commands.
FROM debian:12.11-slim
RUN apt-get update && \
    apt-get install -y --no-install-recommends ca-certificates curl && \
    rm -rf /var/lib/apt/lists/* && \
    useradd --system --uid 10001 --home-dir /var/lib/shepherd --create-home shepherd && \
    install -d -o shepherd -g shepherd /var/lib/shepherd/state
COPY --from=build /out/shepherd /out/demo-service /usr/local/bin/
USER shepherd
WORKDIR /var/lib/shepherd
# /metrics, /healthz, /readyz of `shepherd worker` (internal/observe.DefaultAddr).
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/shepherd"]
CMD ["worker"]
