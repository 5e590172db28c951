FROM alpine
WORKDIR ${DIR:?must be set}
