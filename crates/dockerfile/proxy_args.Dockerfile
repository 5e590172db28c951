FROM alpine
RUN curl example.com
