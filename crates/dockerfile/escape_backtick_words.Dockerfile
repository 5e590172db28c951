# escape=`
FROM alpine
ENV A=a`"b`$C
LABEL x="q`"q"
COPY `$weird /dst
