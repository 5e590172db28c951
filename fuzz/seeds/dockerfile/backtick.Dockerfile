# escape=`
FROM mcr.invalid/windows
RUN dir `
    c:\
COPY ["a b", "c:\\"]
