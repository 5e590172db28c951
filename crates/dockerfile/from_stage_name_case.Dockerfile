FROM alpine AS MyStage
FROM mystage
