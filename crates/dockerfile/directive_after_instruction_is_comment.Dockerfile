FROM alpine
# escape=`
RUN echo x\
  y
