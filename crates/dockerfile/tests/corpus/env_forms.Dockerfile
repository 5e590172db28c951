FROM alpine
ENV A=1 B="two words" C='single $A' D=$A\ E
ENV LEGACY value with   spaces
ENV E="$B" F=${A:-x}
