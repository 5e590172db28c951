FROM alpine
FOO x
COPY a
RUN --bogus echo
