FROM alpine
EXPOSE abc
