# The walcast image compose.yaml builds (docker compose up --build).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cdc cdc
COPY hub hub
COPY internal internal
COPY rooms rooms
COPY rules rules
COPY sql sql
COPY cmd/walcast cmd/walcast
RUN CGO_ENABLED=0 go build -trimpath -o /out/walcast ./cmd/walcast
# The demo starts its own throwaway Postgres, so the image carries the server package.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/walcast /usr/local/bin/walcast
ENTRYPOINT ["walcast"]
