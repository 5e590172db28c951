FROM alpine
ENV NAME world
ENV GREETING hello $NAME and "quoted"
