FROM alpine
RUN --mount=type=bind,target=/x"y echo
