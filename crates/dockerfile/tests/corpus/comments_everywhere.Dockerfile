# leading comment
FROM alpine
   # indented comment
RUN echo hi # part of the command
#RUN echo commented out
