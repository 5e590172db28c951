FROM alpine
ENV A=old
ENV A=new B=$A
ENV C=$A
