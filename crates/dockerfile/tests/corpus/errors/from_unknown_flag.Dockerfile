FROM --plat=linux/amd64 alpine
