FROM alpine
ARG CACHE=/cache
ARG UID=1001
RUN --mount=type=cache,target=$CACHE,uid=${UID} ls $CACHE
