FROM alpine
ARG REV=abc123
LABEL org.opencontainers.image.revision=$REV other='$REV'
