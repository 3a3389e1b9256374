/* toolchain.c — where galvc's runtime and tools are. An installed galvc
 * (`make install PREFIX=P` puts it at P/bin/galvc) finds them under P from
 * its own path, so it needs no source or build tree; a galvc run from the
 * build tree uses the paths CMake compiled in. `galvc --version` prints
 * which ones it uses, so a test can tell the two apart. */
#include "toolchain.h"

#include <string.h>
#include <unistd.h>

/* CMake defines these (CMakeLists.txt); a galvc built without the runtime has none of GALVRT_*. */
#ifdef GALVRT_LIBRARY
#define HAS_RUNTIME true
#else
#define HAS_RUNTIME false
#define GALVRT_LIBRARY ""
#define GALVRT_INCLUDE_DIR ""
#define GALVRT_LIBS ""
#define GALVRT_CFLAGS ""
#define GALVC_PROFILER ""
#define GALVC_MPIEXEC ""
#endif

/* The folder this executable lies in (/proc/self/exe without its name), or NULL. */
static const char *self_dir(Arena *a) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return NULL;
    self[n] = 0;
    const char *slash = strrchr(self, '/');
    return slash ? arena_strndup(a, self, (size_t)(slash - self)) : NULL;
}

/* P/DIR, or DIR itself when the install gave an absolute one. */
static const char *under(Arena *a, const char *prefix, const char *dir) {
    return dir[0] == '/' ? dir : arena_printf(a, "%s/%s", prefix, dir);
}

/* P when this executable is P/BINDIR/galvc and P holds the installed runtime; else NULL. */
static const char *install_prefix(Arena *a) {
    const char *dir = self_dir(a), *bin = GALVC_INSTALL_BINDIR;
    size_t n = dir ? strlen(dir) : 0, b = strlen(bin);
    if (bin[0] == '/' || b >= n || dir[n - b - 1] != '/' || strcmp(dir + n - b, bin) != 0) return NULL;
    const char *prefix = arena_strndup(a, dir, n - b - 1);
    bool lib = access(under(a, prefix, GALVC_INSTALL_LIBDIR "/libgalvrt.a"), R_OK) == 0;
    bool inc = access(under(a, prefix, GALVC_INSTALL_INCLUDEDIR "/galvrt.h"), R_OK) == 0;
    return lib && inc ? prefix : NULL;
}

/* The profiler `name` (galvc-profiler, galvc-profiler-cuda): the installed
 * one, else the build tree's (built, CMake's path for it), else one beside
 * galvc; NULL if none. */
static const char *find_profiler(Arena *a, const char *prefix, const char *name, const char *built) {
    if (prefix) {
        const char *path = under(a, prefix, arena_printf(a, "%s/%s", GALVC_INSTALL_LIBEXECDIR, name));
        if (access(path, X_OK) == 0) return path;
    } else if (built[0] && access(built, X_OK) == 0) {
        return built;
    }
    const char *dir = self_dir(a);
    const char *beside = dir ? arena_printf(a, "%s/%s", dir, name) : NULL;
    return beside && access(beside, X_OK) == 0 ? beside : NULL;
}

Toolchain toolchain_find(Arena *a) {
    Toolchain t = {.has_runtime = HAS_RUNTIME, .prefix = HAS_RUNTIME ? install_prefix(a) : NULL};
    t.build = (BuildConfig){.cc = "mpicc", .include_dir = GALVRT_INCLUDE_DIR, .library = GALVRT_LIBRARY,
                            .extra_libs = GALVRT_LIBS, .cflags = GALVRT_CFLAGS};
    if (t.prefix) {
        t.build.include_dir = under(a, t.prefix, GALVC_INSTALL_INCLUDEDIR);
        t.build.library = under(a, t.prefix, GALVC_INSTALL_LIBDIR "/libgalvrt.a");
    }
#ifdef GALVRT_CUDA_LIBRARY /* the CUDA target: its runtime beside the CPU one; the toolkit where the build found it */
    t.build.cuda_library = GALVRT_CUDA_LIBRARY, t.build.cuda_include_dir = GALVRT_CUDA_INCLUDE_DIR,
    t.build.cuda_libs = GALVRT_CUDA_LIBS;
    if (t.prefix) {
        t.build.cuda_library = under(a, t.prefix, GALVC_INSTALL_LIBDIR "/libgalvrt_cuda.a");
        t.build.cuda_include_dir = t.build.include_dir;
    }
#endif
    t.profiler = find_profiler(a, t.prefix, "galvc-profiler", GALVC_PROFILER);
#ifdef GALVC_PROFILER_CUDA
    t.profiler_cuda = find_profiler(a, t.prefix, "galvc-profiler-cuda", GALVC_PROFILER_CUDA);
#endif
    /* the mpiexec the build found, else whichever mpirun is in PATH */
    t.mpiexec = GALVC_MPIEXEC[0] && access(GALVC_MPIEXEC, X_OK) == 0 ? GALVC_MPIEXEC : "mpirun";
    return t;
}

void toolchain_print(FILE *f, const Toolchain *t) {
    fprintf(f, "galvc %s\n", GALVC_VERSION);
    fprintf(f, "built with: %s; OpenBLAS %s; jansson %s; MPI %s\n", GALVC_BUILT_CC, GALVC_BUILT_OPENBLAS,
            GALVC_BUILT_JANSSON, GALVC_BUILT_MPI);
    if (t->build.cuda_library)
        fprintf(f, "CUDA toolkit: %s; --target cuda links %s\n", GALVC_BUILT_CUDA, t->build.cuda_library);
    else if (GALVC_BUILT_CUDA[0])
        fprintf(f, "CUDA toolkit: %s; this galvc targets the CPU only\n", GALVC_BUILT_CUDA);
    else
        fputs("CUDA toolkit: not found; galvc targets the CPU only\n", f);
    fprintf(f, "LLVM: %s (the kernel generator: x86-64 objects, NVPTX)\n", GALVC_BUILT_LLVM);
    if (!t->has_runtime) {
        fputs("runtime: none (built without libgalvrt: -o and profile are unavailable)\n", f);
        return;
    }
    fprintf(f, "runtime: %s (%s%s)\n", t->build.library, t->prefix ? "installed under " : "build tree",
            t->prefix ? t->prefix : "");
    fprintf(f, "headers: %s\n", t->build.include_dir);
    fprintf(f, "profiler: %s\n", t->profiler ? t->profiler : "not found");
    if (t->build.cuda_library) fprintf(f, "CUDA profiler: %s\n", t->profiler_cuda ? t->profiler_cuda : "not found");
    fprintf(f, "mpiexec: %s\n", t->mpiexec);
}
