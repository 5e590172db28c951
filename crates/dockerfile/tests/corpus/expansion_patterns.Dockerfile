FROM alpine
ENV FILE=/usr/local/lib/pkg-1.2.3.tar.gz
ENV BASE=${FILE##*/} DIR=${FILE%/*} STEM=${FILE%%.*} NOEXT=${FILE%.tar.gz}
ENV REPL=${FILE/local/opt} ALL=${FILE//\//_}
WORKDIR ${DIR:-/}
ENV ALT=${UNSET:+set} DEF=${UNSET-def} EMPTY_DEF=${EMPTY:-}
