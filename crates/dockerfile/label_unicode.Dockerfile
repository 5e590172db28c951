FROM alpine
LABEL description="café ☕" été=été
