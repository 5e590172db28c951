# escape=`
FROM mcr.microsoft.com/windows/servercore
RUN dir c:\ `
    && echo done
ENV P=c:\path\to
