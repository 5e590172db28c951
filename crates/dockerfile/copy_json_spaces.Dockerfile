FROM alpine
COPY ["my file.txt", "other file", "/dest dir/"]
ADD ["a b", "/c d"]
