ARG A=one
ARG B=${A}-two
ARG C="$B three"
FROM alpine:$B
ARG C
LABEL c=$C
