FROM alpine
RUN <<FILE1 cat > /f1 && <<FILE2 cat > /f2
first
FILE1
second
FILE2
