FROM alpine AS deps
FROM alpine
RUN --mount=target=/x --mount=from=deps,target=/deps --mount=type=secret,id=s,env=TOKEN echo
