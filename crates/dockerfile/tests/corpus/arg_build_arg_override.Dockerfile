FROM alpine
ARG FOO=default
ARG BAR
ENV F=$FOO B=$BAR
