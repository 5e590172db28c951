FROM alpine
ARG A B=2 C="three 3" D=${B}x
ENV ALL="$A|$B|$C|$D"
