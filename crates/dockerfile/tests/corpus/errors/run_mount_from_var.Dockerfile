FROM alpine
ARG S=x
RUN --mount=from=$S,target=/x echo
