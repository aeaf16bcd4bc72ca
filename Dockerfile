# arkiv mover image: a drop-in for VolSync's kopia mover (`kopia.image` Helm value).
#
# Built by `scripts/image.sh build`, which compiles the static binaries on the host and
# prepares the build context (no base image is pulled: nothing but these files is in it):
#   arkiv-mover          -> /mover-kopia/entry.sh   (the path VolSync's Jobs execute)
#   arkiv                -> /usr/local/bin/arkiv    (the CLI: verification jobs, debugging)
#   arkiv-restore        -> /usr/local/bin/arkiv-restore (disaster recovery)
#   rootfs/bin/          -> /bin: Debian's busybox-static and its applet links (sh, rm, …),
#                           so KOPIA_BEFORE_SNAPSHOT / KOPIA_AFTER_SNAPSHOT run with `sh -c`
#                           and a DEBUG_MOVER pod can be ended with `rm`
#   ca-certificates.crt  -> /etc/ssl/certs/ca-certificates.crt (Debian's bundle, for S3 TLS)
FROM scratch
ARG VERSION=dev
ARG BUILDDATE=unknown
COPY rootfs/ /
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY arkiv-mover /mover-kopia/entry.sh
COPY arkiv /usr/local/bin/arkiv
COPY arkiv-restore /usr/local/bin/arkiv-restore
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PATH=/usr/local/bin:/bin \
    version=$VERSION \
    builddate=$BUILDDATE
# No USER: like the image it replaces, it runs as uid 0 unless the pod's securityContext
# (moverSecurityContext) names another uid. Any uid works: nothing is written outside the
# mounted volumes and /tmp, so readOnlyRootFilesystem is fine.
ENTRYPOINT ["/mover-kopia/entry.sh"]
