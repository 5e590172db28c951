FROM alpine
RUN cat<<EOF
RUN echo '<<EOF'
