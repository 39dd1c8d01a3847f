# cmake -DIN=file -DOUT=file.cpp -DNAME=symbol -DNAMESPACE=ns -P EmbedText.cmake
# Writes a C++ source defining `const char* const NAME` (in namespace NAMESPACE) holding IN's
# text as a raw string literal: a text file compiled into a binary (the server's OpenAPI
# document), edited as a file.
file(READ "${IN}" content)
string(FIND "${content}" ")mindrec_embed\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter )mindrec_embed\"")
endif()
file(WRITE "${OUT}.tmp" "// Generated from ${IN} by cmake/EmbedText.cmake: edit that file.\nnamespace ${NAMESPACE} {\nextern const char* const ${NAME};\nconst char* const ${NAME} = R\"mindrec_embed(${content})mindrec_embed\";\n}\n")
file(RENAME "${OUT}.tmp" "${OUT}")
