FROM --platform=$BUILDPLATFORM debian:bookworm AS base
LABEL a=b "c d"=e
ENV A=1 B="two words" C=${A}x
ENV OLD style
EXPOSE 80/tcp 53/udp
VOLUME ["/data"]
USER 1000:1000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s CMD true
SHELL ["/bin/bash", "-c"]
ONBUILD RUN echo hi
ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://example.invalid/x /x
ADD --link a.tar /
ARG X
RUN echo ${X:+set} ${X:?missing} ${A%%1} ${B/two/2} $$
MAINTAINER nobody
