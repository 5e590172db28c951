FROM alpine # not a comment
