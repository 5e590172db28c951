FROM alpine
RUN echo shell
RUN ["echo", "exec"]
CMD ["sh", "-c", "echo $HOME"]
ENTRYPOINT echo entry
