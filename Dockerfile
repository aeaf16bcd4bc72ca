# arkiv mover image: a drop-in for VolSync's kopia mover (`kopia.image` Helm value).
#
# Built by `scripts/image.sh build`, which compiles the static binaries on the host and
# prepares the build context (no base image is pulled: nothing but these files is in it):
#   arkiv-mover          -> /mover-kopia/entry.sh   (the path VolSync's Jobs execute)
#   arkiv-restore        -> /usr/local/bin/arkiv-restore (disaster recovery)
#   ca-certificates.crt  -> /etc/ssl/certs/ca-certificates.crt (Debian's bundle, for S3 TLS)
FROM scratch
ARG VERSION=dev
ARG BUILDDATE=unknown
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY arkiv-mover /mover-kopia/entry.sh
COPY arkiv-restore /usr/local/bin/arkiv-restore
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    version=$VERSION \
    builddate=$BUILDDATE
# Non-root by default (the distroless "nonroot" uid); VolSync may override it.
USER 65532:65532
ENTRYPOINT ["/mover-kopia/entry.sh"]
