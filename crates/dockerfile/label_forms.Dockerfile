FROM alpine
LABEL version="1.0" description="A \"quoted\" label" multi.word='x y'
LABEL legacy-key legacy value
LABEL "quoted key"=v
