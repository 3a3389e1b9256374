/* init.c — plan-independent parameter initialization. A weight's values must
 * not depend on how the plan cuts it: a TP shard, a DP replica and the 1-rank
 * run all hold the same numbers, so their losses can be compared bit for bit.
 * So no generator state is carried from element to element; every element is
 * a pure function of (seed, tensor_id, global row, global column):
 *
 *   key = grt_hash64(grt_hash64(seed) ^ grt_hash64(tensor_id + GOLDEN))
 *   i   = row * full_cols + col                       (global element index)
 *   z1  = grt_hash64(key + (2 i + 1) GOLDEN)           (SplitMix64's output at
 *   z2  = grt_hash64(key + (2 i + 2) GOLDEN)            counters 2i+1, 2i+2)
 *   u1  = ((z1 >> 11) + 1) / 2^53  in (0, 1]           (53-bit uniforms)
 *   u2  =  (z2 >> 11)      / 2^53  in [0, 1)
 *   x   = std * sqrt(-2 ln u1) cos(2 pi u2)            (Box-Muller, cosine half)
 *
 * SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
 * generators", OOPSLA 2014) is a Weyl sequence through a strong 64-bit
 * finalizer, so jumping to any counter costs nothing. The arithmetic is done
 * in double and rounded once to float, so results agree across compilers
 * with the same libm. */
#include "galvrt.h"

#include <math.h>

#define GOLDEN 0x9e3779b97f4a7c15ULL /* 2^64 / golden ratio, SplitMix64's increment */

/* SplitMix64's finalizer (Steele et al. 2014): a bijective 64-bit mix of x. */
uint64_t grt_hash64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* The normal(0, 1) draw for global element `index` of the tensor keyed by `key`. */
static double normal_at(uint64_t key, uint64_t index) {
    uint64_t z1 = grt_hash64(key + (2 * index + 1) * GOLDEN);
    uint64_t z2 = grt_hash64(key + (2 * index + 2) * GOLDEN);
    double u1 = (double)((z1 >> 11) + 1) * 0x1.0p-53; /* (0, 1]: log never sees 0 */
    double u2 = (double)(z2 >> 11) * 0x1.0p-53;       /* [0, 1) */
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

/* dst (rows, cols) = normal(0, std) at global rows row_index[r] (r when row_index is NULL), columns col0 + c. */
void grt_init_normal(float *dst, int rows, int cols, const int64_t *row_index, int64_t col0, int64_t full_cols,
                     float std, uint64_t seed, uint64_t tensor_id) {
    uint64_t key = grt_hash64(grt_hash64(seed) ^ grt_hash64(tensor_id + GOLDEN));
    for (int r = 0; r < rows; r++) {
        int64_t row = row_index ? row_index[r] : r;
        uint64_t base = (uint64_t)row * (uint64_t)full_cols + (uint64_t)col0;
        float *out = dst + (size_t)r * (size_t)cols;
        for (int c = 0; c < cols; c++)
            out[c] = (float)(std * normal_at(key, base + (uint64_t)c));
    }
}

/* dst[0..n) = value (biases to 0, norm gains to 1). */
void grt_fill(float *dst, size_t n, float value) {
    for (size_t i = 0; i < n; i++)
        dst[i] = value;
}
