/* toolchain.h — what galvc builds and runs programs with: the runtime
 * (libgalvrt and its headers), galvc-profiler and mpiexec, found under the
 * install prefix this galvc runs from, else in the build tree it came from. */
#ifndef GALVC_TOOLCHAIN_H
#define GALVC_TOOLCHAIN_H

#include "backend/backend.h"

typedef struct Toolchain {
    const char *prefix;   /* the install prefix galvc runs from, or NULL: the build tree */
    bool has_runtime;     /* galvc was built with libgalvrt (else -o cannot build) */
    BuildConfig build;    /* the C compiler, the runtime's headers, library and flags */
    const char *profiler; /* galvc-profiler, or NULL when there is none */
    const char *profiler_cuda; /* galvc-profiler-cuda (galvc profile --target cuda), or NULL */
    const char *mpiexec;  /* what launches the profiler's ranks */
} Toolchain;

/* Locate the runtime and tools: under the prefix above this executable
 * (/proc/self/exe) when the runtime is installed there, else where the
 * build put them. */
Toolchain toolchain_find(Arena *a);

/* `galvc --version`: the version, what galvc was built with, and the
 * runtime, profiler and mpiexec it will use. */
void toolchain_print(FILE *f, const Toolchain *t);

#endif
