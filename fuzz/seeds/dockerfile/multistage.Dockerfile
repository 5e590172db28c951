# syntax=docker/dockerfile:1
# escape=\
ARG BASE=busybox
FROM ${BASE:-alpine} AS build
WORKDIR /src
COPY --chown=1:1 --chmod=0755 . .
RUN --mount=type=cache,target=/root/.cache \
    --mount=type=secret,id=tok \
    make && make install
FROM scratch
COPY --from=build /out/app /app
ENTRYPOINT ["/app"]
CMD ["--help"]
