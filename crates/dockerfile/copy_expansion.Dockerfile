FROM alpine
ENV SRC=app DST=/opt
ARG OWNER=1000
COPY --chown=$OWNER:$OWNER --chmod=0${MODE:-644} ${SRC}/*.py $DST/$SRC/
