FROM alpine
RUN --mount=type=nfs,target=/x echo
