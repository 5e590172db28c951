FROM alpine
ENV D="/a b"
COPY x "$D"
