FROM alpine
ARG USED
RUN echo $USED
