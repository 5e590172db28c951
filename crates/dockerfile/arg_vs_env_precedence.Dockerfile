FROM alpine
ARG X=from-arg
ENV X=from-env
ENV Y=$X
ARG X=again
ENV Z=$X
