FROM alpine
CMD []
ENTRYPOINT []
RUN []
