FROM alpine
VOLUME ["/a", ""]
