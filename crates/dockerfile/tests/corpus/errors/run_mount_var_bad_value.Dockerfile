FROM alpine
ARG M=abc
RUN --mount=type=cache,target=/c,mode=$M echo
