FROM alpine
EXPOSE 80/http
