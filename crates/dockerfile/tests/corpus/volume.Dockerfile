FROM alpine
VOLUME /data /logs
VOLUME ["/var/lib/app", "/with space"]
ENV D=/x
VOLUME $D
