FROM alpine
RUN --mount=type=bind,\"source=a,b\",target=/x cat /x
