# The real-model stage's build of llama-cpp-python (CMAKE_ARGS=-DCMAKE_PROJECT_INCLUDE=<this>,
# with -DLLAVA_BUILD=OFF): only libllama and ggml, which the Python bindings load. CMake runs
# this file after every project() call; llama-cpp-python forces LLAMA_BUILD_COMMON on just
# before llama.cpp's own project(), so this is the one place it can be turned off. The common
# library (argument parsing, chat templates, JSON) is what the bindings never load and the
# longest part of the build: without it (and llava) ~4 core-minutes, with it ~11.6.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama.cpp: build the common library" FORCE)
