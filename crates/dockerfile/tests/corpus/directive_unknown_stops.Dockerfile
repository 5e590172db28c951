# foo=bar
# escape=`
FROM alpine
RUN echo x\
  y
