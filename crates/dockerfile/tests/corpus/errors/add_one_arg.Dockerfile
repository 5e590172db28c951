FROM alpine
ADD x
