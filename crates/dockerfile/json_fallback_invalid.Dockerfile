FROM alpine
RUN ["echo", 'single']
CMD [echo, hi]
ENTRYPOINT ["a" "b"]
RUN ["a"] trailing
