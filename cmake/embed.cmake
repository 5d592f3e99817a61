# embed.cmake - turn a text file into a C source defining a NUL-terminated string.
# Usage: cmake -DIN=file -DOUT=file.c -DSYM=name -P embed.cmake
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" hex "${hex}")
file(WRITE "${OUT}" "/* generated from ${IN} by cmake/embed.cmake; do not edit */\n#include <stddef.h>\nextern const char ${SYM}[];\nextern const size_t ${SYM}_len;\nconst char ${SYM}[] = {\n${hex}0x00 };\nconst size_t ${SYM}_len = sizeof(${SYM}) - 1;\n")
