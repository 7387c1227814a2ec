# cometsync container image: a static binary on an empty (scratch) root.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t cometsync .
#   docker run --rm cometsync demo
#
# internal/deploytest builds the binary with the same RUN line and runs it in a
# chroot laid out like the final stage below, so keep the two in step.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# /out/state becomes the state volume and /out/tmp the image's /tmp (the demo
# and a first dry run put a throwaway SQLite file there): scratch has neither.
RUN scripts/build-static.sh /out/cometsync "$VERSION" \
 && mkdir -p /out/state /out/tmp \
 && chmod 1777 /out/tmp

FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="cometsync" \
      org.opencontainers.image.description="Syncs chat groups from a SQL database into CometChat" \
      org.opencontainers.image.version="${VERSION}"
# CometChat is reached over HTTPS: the binary needs the CA bundle.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/cometsync /cometsync
COPY --from=build /out/tmp /tmp
# Owned by the user below, so that a fresh named volume mounted here (which
# starts as a copy of this directory) is writable without root.
COPY --from=build --chown=65532:65532 /out/state /var/lib/cometsync
# Numeric: scratch has no /etc/passwd to look a name up in.
USER 65532:65532
# state.path belongs here (/var/lib/cometsync/state.db): the checkpoint, the
# content hashes and the error store. One process per state file: it is locked.
VOLUME /var/lib/cometsync
# http.listen: /healthz, /readyz and /metrics.
EXPOSE 9464
ENTRYPOINT ["/cometsync"]
CMD ["run", "--config", "/etc/cometsync/config.yaml"]
