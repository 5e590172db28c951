FROM alpine
RUN echo a \
    b
ENV A=1
