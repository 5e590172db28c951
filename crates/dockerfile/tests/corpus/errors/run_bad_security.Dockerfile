FROM alpine
RUN --security=root echo
