# embed.cmake — turns backend/train_body.c into a C string literal
# (train_body.inc) that emit_c.c includes: cmake -DIN=... -DOUT=... -P embed.cmake
file(READ ${IN} text)
string(REPLACE "\\" "\\\\" text "${text}")
string(REPLACE "\"" "\\\"" text "${text}")
string(REPLACE "\n" "\\n\"\n\"" text "${text}")
file(WRITE ${OUT} "\"${text}\"\n")
