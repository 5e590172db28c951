FROM --platform=$BUILDPLATFORM golang@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef AS build
FROM --platform=linux/arm64 alpine:3.20
FROM scratch
