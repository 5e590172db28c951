ARG REGISTRY=docker.io
ARG IMAGE=library/alpine
ARG TAG
FROM ${REGISTRY}/${IMAGE}:${TAG:-latest}
