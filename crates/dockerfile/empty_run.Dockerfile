FROM alpine
RUN
CMD
