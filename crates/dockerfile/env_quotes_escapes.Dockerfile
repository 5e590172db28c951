FROM alpine
ENV Q="a \"quoted\" word" S='it''s' BS=back\\slash
