FROM alpine
RUN --mount=type=cache,target=/c,colour=blue echo
