FROM alpine
ENV --foo A=1
