/* blas.c — which OpenBLAS kernel the GEMMs run. OpenBLAS picks its kernel
 * set ("core") from the CPU model when the library loads, and a release
 * that does not know a newer CPU falls back to an old one: Debian's 0.3.21
 * runs its SSE3 "Prescott" kernels on some AVX-512 Xeons, 4.5x slower than
 * its SkylakeX kernels there. The choice is made before main, so when the
 * core does not match the CPU's features (cpuid) and the user has not set
 * OPENBLAS_CORETYPE, the program sets it and starts itself again, once,
 * before MPI starts; then it says what it did. */
#include "galvrt.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

char *openblas_get_corename(void);
int openblas_get_num_threads(void);

/* The set of OpenBLAS cores at least as good as `want` on this CPU. */
static int good_enough(const char *core, const char *want) {
    static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    static const char *const avx2[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    const char *const *ok = !strcmp(want, "SkylakeX") ? avx512 : avx2;
    for (int i = 0; ok[i]; i++)
        if (!strcasecmp(core, ok[i])) return 1;
    return 0;
}

const char *grt_blas_core_for_cpu(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

const char *grt_blas_core(void) { return openblas_get_corename(); }

int grt_blas_threads(void) { return openblas_get_num_threads(); }

void grt_blas_settle(char **argv) {
    const char *want = grt_blas_core_for_cpu(), *core = openblas_get_corename();
    if (!want || !core || getenv("OPENBLAS_CORETYPE") || getenv("GALVRT_BLAS_FROM")) return;
    if (good_enough(core, want)) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv("GALVRT_BLAS_FROM", core, 1); /* for the note, and so this happens once */
    execv("/proc/self/exe", argv);
    unsetenv("GALVRT_BLAS_FROM"); /* could not restart: run on with the slow kernel, and say so */
    unsetenv("OPENBLAS_CORETYPE");
}

const char *grt_blas_note(char *buf, size_t n) {
    const char *from = getenv("GALVRT_BLAS_FROM"), *want = grt_blas_core_for_cpu(), *core = grt_blas_core();
    if (from) snprintf(buf, n, "OpenBLAS picked its %s kernels for this CPU; restarted on its %s kernels", from, core);
    else if (want && !good_enough(core, want) && !getenv("OPENBLAS_CORETYPE"))
        snprintf(buf, n, "OpenBLAS runs its %s kernels, slower than this CPU's %s (could not restart)", core, want);
    else return NULL;
    return buf;
}
