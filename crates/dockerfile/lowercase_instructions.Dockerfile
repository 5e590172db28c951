from alpine as Builder
run echo hi
copy . /src
workdir /src
