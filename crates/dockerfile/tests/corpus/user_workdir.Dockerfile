FROM alpine
ENV HOMEDIR=/home/app U=app
USER ${U}:${U}
WORKDIR $HOMEDIR
WORKDIR sub dir
WORKDIR relative
