/* test_runtime_io.c — libgalvrt's parameters, data and metrics, without MPI:
 * initialization agrees whichever shard asks, token and byte files read back
 * as written, every bad file is refused with one "galvrt:" line naming it,
 * synthetic data is deterministic, and the allocator counts its peak. */
#include "../unit/check.h"
#include "galvrt.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------------- */

/* A fresh temporary file path ending in suffix ("" or ".bin"), holding `bytes`. */
static char *write_temp(const char *suffix, const void *bytes, size_t n) {
    static char paths[32][64];
    static int next;
    char *path = paths[next++ % 32];
    snprintf(path, sizeof paths[0], "/tmp/galvrt_io_XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0) {
        perror("mkstemps");
        exit(2);
    }
    if (n && write(fd, bytes, n) != (ssize_t)n) {
        perror("write");
        exit(2);
    }
    close(fd);
    return path;
}

/* An llm.c token file image: header (magic, version, count) then tokens; returns its size in bytes. */
static size_t token_image(unsigned char *buf, int32_t magic, int32_t version, int32_t count, const uint16_t *tok,
                          int n) {
    int32_t header[256] = {0};
    header[0] = magic;
    header[1] = version;
    header[2] = count;
    memcpy(buf, header, sizeof header);
    memcpy(buf + sizeof header, tok, (size_t)n * sizeof *tok);
    return sizeof header + (size_t)n * sizeof *tok;
}

/* Opens path expecting refusal: NULL, and one stderr line with "galvrt: ", the path and `expect`. */
static void expect_refused(const char *path, int vocab, const char *expect, int line) {
    char log[] = "/tmp/galvrt_io_log_XXXXXX";
    int fd = mkstemp(log);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    GrtData *d = grt_data_open(path, vocab, 1);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char text[512] = {0};
    ssize_t got = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    unlink(log);
    if (got < 0) got = 0;
    text[got] = '\0';
    int lines = 0;
    for (char *c = text; *c; c++)
        lines += *c == '\n';
    CHECK(d == NULL);
    CHECK(lines == 1);
    CHECK(strncmp(text, "galvrt: ", 8) == 0);
    CHECK(!path || strstr(text, path) != NULL);
    CHECK(strstr(text, expect) != NULL);
    if (d || lines != 1 || !strstr(text, expect))
        fprintf(stderr, "  (line %d) expected refusal mentioning \"%s\", got: %s\n", line, expect, text);
    grt_data_close(d);
}
#define EXPECT_REFUSED(path, vocab, expect) expect_refused(path, vocab, expect, __LINE__)

/* ---- safetensors ------------------------------------------------------------ */

/* A safetensors file of JSON header `json` and `n` data bytes; its path. */
static char *st_temp(const char *json, const void *data, size_t n) {
    static unsigned char buf[4096];
    size_t len = strlen(json);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)len >> (8 * i));
    memcpy(buf + 8, json, len);
    memcpy(buf + 8 + len, data, n);
    return write_temp(".safetensors", buf, 8 + len + n);
}

/* Opening (and, with `tensor`, reading that F32 tensor) is refused with a reason naming path and `expect`. */
static void st_refused(const char *json, const void *data, size_t n, const char *tensor, const char *expect, int line) {
    char *path = st_temp(json, data, n), err[1024] = "";
    GrtSafetensors *f = grt_st_open(path, err, sizeof err);
    int refused = !f;
    if (f && tensor) {
        float out[16];
        int at = grt_st_find(f, tensor);
        refused = at >= 0 && grt_st_read_f32(f, at, out, err, sizeof err) != 0;
    }
    CHECK(refused && strstr(err, path) && strstr(err, expect));
    if (!refused || !strstr(err, path) || !strstr(err, expect))
        fprintf(stderr, "  (line %d) expected refusal mentioning \"%s\", got: %s\n", line, expect, err);
    grt_st_close(f);
    unlink(path);
}
#define ST_REFUSED(json, data, n, tensor, expect) st_refused(json, data, n, tensor, expect, __LINE__)

/* Headers that name a tensor twice, overlap two tensors' data, or whose
 * shape's element count overflows; tensors holding NaN or infinity. */
static void test_safetensors_refusals(void) {
    float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    char *path = st_temp("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]}}",
                         data, sizeof data);
    char err[1024] = "";
    GrtSafetensors *f = grt_st_open(path, err, sizeof err);
    CHECK(f != NULL);
    float out[8] = {0};
    CHECK(f && grt_st_read_f32(f, grt_st_find(f, "b"), out, err, sizeof err) == 0 && out[5] == 8);
    grt_st_close(f);
    unlink(path);

    ST_REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
               data, 16, NULL, "tensor 'a' twice");
    ST_REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               data, 16, NULL, "overlap");
    ST_REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               data, 16, NULL, "overlap"); /* b inside a */
    ST_REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", data, 0, NULL,
               "shape too large"); /* 2^64 elements: wraps to 0 bytes */
    ST_REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,16777216,1],\"data_offsets\":[0,0]}}", data, 0, NULL,
               "shape too large");

    float bad[4] = {1, NAN, 3, 4};
    ST_REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", bad, sizeof bad, "a",
               "tensor 'a' holds NaN at element 1");
    bad[1] = 2, bad[3] = -INFINITY;
    ST_REFUSED("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", bad, sizeof bad, "w",
               "tensor 'w' holds -inf at element 3");
}

/* ---- initialization --------------------------------------------------------- */

/* The full tensor, two row shards (interleaved rows) and two column shards hold the same values. */
static void test_init_shards(void) {
    enum { R = 6, C = 10 };
    float full[R * C], again[R * C], rows_a[3 * C], rows_b[3 * C], cols_a[R * 4], cols_b[R * 6];
    int64_t all[R] = {0, 1, 2, 3, 4, 5}, even[3] = {0, 2, 4}, odd[3] = {1, 3, 5};
    grt_init_normal(full, R, C, all, 0, C, 0.02f, 42, 7);
    grt_init_normal(again, R, C, NULL, 0, C, 0.02f, 42, 7); /* NULL: rows 0..R-1 */
    CHECK(memcmp(full, again, sizeof full) == 0);
    grt_init_normal(rows_a, 3, C, even, 0, C, 0.02f, 42, 7);
    grt_init_normal(rows_b, 3, C, odd, 0, C, 0.02f, 42, 7);
    grt_init_normal(cols_a, R, 4, all, 0, C, 0.02f, 42, 7);
    grt_init_normal(cols_b, R, 6, all, 4, C, 0.02f, 42, 7);
    int same_rows = 1, same_cols = 1;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            float want = full[r * C + c];
            float row_shard = r % 2 ? rows_b[(r / 2) * C + c] : rows_a[(r / 2) * C + c];
            float col_shard = c < 4 ? cols_a[r * 4 + c] : cols_b[r * 6 + (c - 4)];
            same_rows &= memcmp(&want, &row_shard, sizeof want) == 0;
            same_cols &= memcmp(&want, &col_shard, sizeof want) == 0;
        }
    CHECK(same_rows);
    CHECK(same_cols);
    /* another tensor id, another seed: other values */
    float other_id[R * C], other_seed[R * C];
    grt_init_normal(other_id, R, C, all, 0, C, 0.02f, 42, 8);
    grt_init_normal(other_seed, R, C, all, 0, C, 0.02f, 43, 7);
    int differ_id = 0, differ_seed = 0;
    for (int i = 0; i < R * C; i++) {
        differ_id += other_id[i] != full[i];
        differ_seed += other_seed[i] != full[i];
    }
    CHECK(differ_id == R * C);
    CHECK(differ_seed == R * C);
}

/* A large draw has mean ~0, standard deviation ~std, normal tails, and no repeated values. */
static void test_init_moments(void) {
    enum { R = 512, C = 512 };
    const float std = 0.02f;
    float *x = malloc(sizeof(float) * R * C);
    grt_init_normal(x, R, C, NULL, 0, C, std, 1234, 3);
    double sum = 0, sumsq = 0;
    long beyond2 = 0, beyond3 = 0, bad = 0;
    for (long i = 0; i < (long)R * C; i++) {
        double v = x[i];
        bad += !isfinite(v);
        sum += v;
        sumsq += v * v;
        beyond2 += fabs(v) > 2 * std;
        beyond3 += fabs(v) > 3 * std;
    }
    double n = (double)R * C, mean = sum / n, sd = sqrt(sumsq / n - mean * mean);
    CHECK_EQ(bad, 0);
    CHECK(fabs(mean) < 0.01 * std);   /* standard error is std / 512 */
    CHECK(fabs(sd / std - 1) < 0.01); /* relative standard error ~0.0014 */
    CHECK(fabs(beyond2 / n - 0.0455) < 0.003);
    CHECK(fabs(beyond3 / n - 0.0027) < 0.0006);
    if (fabs(mean) >= 0.01 * std || fabs(sd / std - 1) >= 0.01)
        fprintf(stderr, "  mean %g, sd %g (want 0, %g)\n", mean, sd, std);
    CHECK(x[0] != x[1] && x[C] != x[0]); /* consecutive counters and rows differ */
    free(x);

    float f[5];
    grt_fill(f, 5, 1.5f);
    CHECK(f[0] == 1.5f && f[4] == 1.5f);
}

/* ---- token files ------------------------------------------------------------ */

/* The token at position i of the test file. */
static uint16_t test_token(int i) { return (uint16_t)((i * 7 + 3) % 500); }

/* Batch of step for sequences [first, first + count), checked against the definition (start = p mod (n - T)). */
static void check_batch(GrtData *d, int64_t n, int64_t step, int gb, int T, int first, int count) {
    int32_t *in = malloc(sizeof(int32_t) * (size_t)count * (size_t)T);
    int32_t *tg = malloc(sizeof(int32_t) * (size_t)count * (size_t)T);
    grt_data_batch(d, step, gb, T, first, count, in, tg);
    int ok = 1;
    for (int s = 0; s < count; s++) {
        int64_t p = (step * gb + first + s) * T, start = p % (n - T);
        for (int t = 0; t < T; t++) {
            ok &= in[s * T + t] == test_token((int)(start + t));
            ok &= tg[s * T + t] == test_token((int)(start + t + 1));
            if (t + 1 < T) ok &= tg[s * T + t] == in[s * T + t + 1]; /* targets are inputs shifted by one */
        }
    }
    CHECK(ok);
    if (!ok) fprintf(stderr, "  batch step %lld first %d count %d differs\n", (long long)step, first, count);
    free(in);
    free(tg);
}

/* Written tokens read back as windows, split across ranks the same as whole, wrapping past the end. */
static void test_token_file(void) {
    enum { N = 1000 };
    static uint16_t tok[N];
    static unsigned char buf[1024 + 2 * N];
    for (int i = 0; i < N; i++)
        tok[i] = test_token(i);
    size_t size = token_image(buf, 20240520, 1, N, tok, N);
    char *path = write_temp(".bin", buf, size);
    GrtData *d = grt_data_open(path, 512, 0);
    CHECK(d != NULL);
    if (!d) return;
    CHECK_EQ(grt_data_tokens(d), N);
    check_batch(d, N, 0, 4, 8, 0, 4);
    check_batch(d, N, 2, 4, 8, 1, 2);
    check_batch(d, N, 40, 4, 8, 0, 4); /* p = 1280 > n - T: wraps */
    check_batch(d, N, 123457, 3, 16, 1, 2);
    check_batch(d, N, 0, 1, N - 1, 0, 1); /* the longest window: the whole file */

    /* the step's batch is the same whether one rank reads it or two ranks read halves */
    int32_t whole_in[4 * 8], whole_tg[4 * 8], part_in[4 * 8], part_tg[4 * 8];
    grt_data_batch(d, 5, 4, 8, 0, 4, whole_in, whole_tg);
    grt_data_batch(d, 5, 4, 8, 0, 2, part_in, part_tg);
    grt_data_batch(d, 5, 4, 8, 2, 2, part_in + 16, part_tg + 16);
    CHECK(memcmp(whole_in, part_in, sizeof whole_in) == 0);
    CHECK(memcmp(whole_tg, part_tg, sizeof whole_tg) == 0);
    /* consecutive sequences overlap by one token: sequence 1 starts where sequence 0's target ends */
    CHECK_EQ(whole_in[8], whole_tg[7]);
    grt_data_close(d);
    unlink(path);

    /* a file without the .bin name but with the magic is a token file too; exactly the vocab's edge passes */
    tok[17] = 499;
    size = token_image(buf, 20240520, 1, 20, tok, 20);
    path = write_temp("", buf, size);
    d = grt_data_open(path, 500, 0);
    CHECK(d != NULL);
    if (d) CHECK_EQ(grt_data_tokens(d), 20);
    grt_data_close(d);
    unlink(path);
    tok[17] = test_token(17);

    /* a file shorter than a window is read cyclically */
    size = token_image(buf, 20240520, 1, 3, tok, 3);
    path = write_temp(".bin", buf, size);
    d = grt_data_open(path, 512, 0);
    CHECK(d != NULL);
    if (d) {
        int32_t in[8], tg[8];
        grt_data_batch(d, 1, 1, 8, 0, 1, in, tg); /* p = 8, start = 8 mod 3 = 2 */
        int ok = 1;
        for (int t = 0; t < 8; t++)
            ok &= in[t] == tok[(2 + t) % 3] && tg[t] == tok[(3 + t) % 3];
        CHECK(ok);
    }
    grt_data_close(d);
    unlink(path);
}

/* Every bad file is refused with NULL and one line naming it and the problem. */
static void test_refusals(void) {
    enum { N = 64 };
    uint16_t tok[N];
    static unsigned char buf[1024 + 2 * N + 1];
    for (int i = 0; i < N; i++)
        tok[i] = (uint16_t)i;

    char *gone = write_temp("", "x", 1);
    unlink(gone);
    EXPECT_REFUSED(gone, 256, "cannot open");
    EXPECT_REFUSED("/tmp", 256, "directory");

    size_t size = token_image(buf, 20240521, 1, N, tok, N);
    char *path = write_temp(".bin", buf, size);
    EXPECT_REFUSED(path, 512, "magic");
    unlink(path);

    size = token_image(buf, 20240520, 2, N, tok, N);
    path = write_temp("", buf, size);
    EXPECT_REFUSED(path, 512, "version 2");
    unlink(path);

    size = token_image(buf, 20240520, 1, N + 1, tok, N); /* header claims one more */
    path = write_temp(".bin", buf, size);
    EXPECT_REFUSED(path, 512, "header says 65 tokens");
    unlink(path);

    size = token_image(buf, 20240520, 1, N - 1, tok, N); /* header claims one fewer */
    path = write_temp(".bin", buf, size);
    EXPECT_REFUSED(path, 512, "header says 63 tokens");
    unlink(path);

    size = token_image(buf, 20240520, 1, N, tok, N);
    buf[size] = 0;
    path = write_temp(".bin", buf, size + 1); /* a stray odd byte */
    EXPECT_REFUSED(path, 512, "stray byte");
    unlink(path);

    size = token_image(buf, 20240520, 1, -5, tok, 0);
    path = write_temp(".bin", buf, size);
    EXPECT_REFUSED(path, 512, "header says -5 tokens");
    unlink(path);

    path = write_temp(".bin", buf, 100); /* magic, then the header stops */
    EXPECT_REFUSED(path, 512, "too short");
    unlink(path);

    tok[37] = 600;
    tok[50] = 700;
    size = token_image(buf, 20240520, 1, N, tok, N);
    path = write_temp(".bin", buf, size);
    EXPECT_REFUSED(path, 512, "token 600 at position 37"); /* the first offender */
    unlink(path);
    tok[37] = 37;
    tok[50] = 50;
    size = token_image(buf, 20240520, 1, N, tok, N);
    path = write_temp(".bin", buf, size);
    EXPECT_REFUSED(path, 63, "token 63 at position 63"); /* the last token, vocab one short */
    unlink(path);

    size = token_image(buf, 20240520, 1, 1, tok, 1);
    path = write_temp(".bin", buf, size);
    EXPECT_REFUSED(path, 512, "1 token, need at least 2");
    unlink(path);

    size = token_image(buf, 20240520, 1, 0, tok, 0);
    path = write_temp(".bin", buf, size);
    EXPECT_REFUSED(path, 512, "0 tokens");
    unlink(path);

    path = write_temp(".txt", "hello", 5);
    EXPECT_REFUSED(path, 255, "vocab >= 256");
    unlink(path);

    path = write_temp(".txt", "h", 1);
    EXPECT_REFUSED(path, 256, "1 token");
    unlink(path);

    path = write_temp("", "", 0);
    EXPECT_REFUSED(path, 256, "0 tokens");
    unlink(path);

    EXPECT_REFUSED(NULL, 1, "vocab 1");
}

/* A FIFO as data or as a safetensors file is refused at once: opening one
 * for reading would wait for a writer that never comes (SIGALRM ends the
 * test if it does). */
static void test_fifo(void) {
    char path[] = "/tmp/galvrt_io_fifo_XXXXXX", err[1024] = "";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    if (mkfifo(path, 0600) != 0) {
        perror("mkfifo");
        exit(2);
    }
    alarm(20);
    EXPECT_REFUSED(path, 256, "not a regular file");
    GrtSafetensors *f = grt_st_open(path, err, sizeof err);
    CHECK(f == NULL && strstr(err, path) && strstr(err, "not a regular file"));
    grt_st_close(f);
    alarm(0);
    unlink(path);
}

/* A text file is its bytes, vocabulary 256 (or more). */
static void test_byte_file(void) {
    const char text[] = "the quick brown fox jumps over the lazy dog \xff\x80";
    size_t n = sizeof text - 1;
    char *path = write_temp(".txt", text, n);
    GrtData *d = grt_data_open(path, 256, 0);
    CHECK(d != NULL);
    if (!d) return;
    CHECK_EQ(grt_data_tokens(d), (long long)n);
    int32_t in[2 * 10], tg[2 * 10];
    grt_data_batch(d, 0, 2, 10, 0, 2, in, tg);
    int ok = 1;
    for (int s = 0; s < 2; s++)
        for (int t = 0; t < 10; t++)
            ok &= in[s * 10 + t] == (unsigned char)text[s * 10 + t] &&
                  tg[s * 10 + t] == (unsigned char)text[s * 10 + t + 1];
    CHECK(ok);
    int32_t w_in[5], w_tg[5];
    grt_data_batch(d, 11, 1, 4, 0, 1, w_in, w_tg); /* p = 44 wraps to 44 mod (46 - 4) = 2 */
    CHECK_EQ(w_in[0], text[2]);
    grt_data_batch(d, 8, 1, 5, 0, 1, w_in, w_tg); /* p = 40: the last window, ending in the high bytes */
    CHECK_EQ(w_in[4], 255);
    CHECK_EQ(w_tg[4], 128);
    grt_data_close(d);
    d = grt_data_open(path, 50257, 0); /* a larger vocabulary is fine */
    CHECK(d != NULL);
    grt_data_close(d);
    unlink(path);
}

/* Synthetic tokens: same seed, same tokens; in range; a repeating pattern a model can learn. */
static void test_synthetic(void) {
    enum { T = 400 };
    GrtData *a = grt_data_open(NULL, 1000, 9), *b = grt_data_open(NULL, 1000, 9), *c = grt_data_open(NULL, 1000, 10);
    CHECK(a && b && c);
    if (!a || !b || !c) return;
    CHECK(grt_data_tokens(a) >= (int64_t)1 << 30);
    static int32_t ia[2 * T], ta[2 * T], ib[2 * T], tb[2 * T], ic[2 * T], tc[2 * T];
    grt_data_batch(a, 77, 8, T, 3, 2, ia, ta);
    grt_data_batch(b, 77, 8, T, 3, 2, ib, tb);
    grt_data_batch(c, 77, 8, T, 3, 2, ic, tc);
    CHECK(memcmp(ia, ib, sizeof ia) == 0 && memcmp(ta, tb, sizeof ta) == 0);
    int differ = 0, in_range = 1, shifted = 1, repeats = 0;
    for (int i = 0; i < 2 * T; i++) {
        differ += ia[i] != ic[i];
        in_range &= ia[i] >= 0 && ia[i] < 1000 && ta[i] >= 0 && ta[i] < 1000;
        if (i % T + 1 < T) shifted &= ta[i] == ia[i + 1];
    }
    for (int t = 0; t + 97 < T; t++)
        repeats += ia[t] == ia[t + 97];
    CHECK(differ > T);
    CHECK(in_range);
    CHECK(shifted);
    CHECK(repeats > (T - 97) * 3 / 4); /* the pattern repeats; noise breaks about 1 in 8 pairs */
    grt_data_close(a);
    grt_data_close(b);
    grt_data_close(c);
}

/* ---- metrics ---------------------------------------------------------------- */

/* Allocations are zeroed, aligned, and counted now and at their peak. */
static void test_alloc(void) {
    int64_t base = grt_peak_bytes();
    unsigned char *a = grt_alloc(1000), *b = grt_alloc(5000);
    CHECK(a && b);
    CHECK((uintptr_t)a % 64 == 0 && (uintptr_t)b % 64 == 0);
    int zero = 1;
    for (int i = 0; i < 5000; i++)
        zero &= b[i] == 0;
    CHECK(zero);
    memset(a, 1, 1000);
    CHECK_EQ(grt_peak_bytes(), base + 6000);
    grt_free(a, 1000);
    void *c = grt_alloc(100);
    CHECK_EQ(grt_peak_bytes(), base + 6000); /* 5100 now: below the peak */
    void *d = grt_alloc(2000);
    CHECK_EQ(grt_peak_bytes(), base + 7100); /* 7100 now: a new peak */
    grt_free(b, 5000);
    grt_free(c, 100);
    grt_free(d, 2000);
    void *e = grt_alloc(0);
    CHECK(e != NULL);
    grt_free(e, 0);
    grt_free(NULL, 0);
    void *f = grt_alloc(7000);
    CHECK_EQ(grt_peak_bytes(), base + 7100);
    grt_free(f, 7000);
}

/* The clock moves forward in milliseconds. */
static void test_clock(void) {
    double t0 = grt_now_ms();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    double t1 = grt_now_ms();
    CHECK(t1 - t0 >= 19.0 && t1 - t0 < 5000.0);
}

/* OpenBLAS threads: 1 for several local ranks, all cores for one, OPENBLAS_NUM_THREADS wins. */
static void test_threads(void) {
    const char *saved = getenv("OPENBLAS_NUM_THREADS");
    char copy[32] = "";
    if (saved) snprintf(copy, sizeof copy, "%s", saved);
    unsetenv("OPENBLAS_NUM_THREADS");
    grt_set_threads(4);
    CHECK_EQ(openblas_get_num_threads(), 1);
    grt_set_threads(1);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK(openblas_get_num_threads() >= 1 && openblas_get_num_threads() <= cores);
    setenv("OPENBLAS_NUM_THREADS", "2", 1);
    grt_set_threads(1);
    CHECK_EQ(openblas_get_num_threads(), 2);
    grt_set_threads(8);
    CHECK_EQ(openblas_get_num_threads(), 2);
    if (saved)
        setenv("OPENBLAS_NUM_THREADS", copy, 1);
    else
        unsetenv("OPENBLAS_NUM_THREADS");
    openblas_set_num_threads(1);
}

/* ---- checkpoint folders --------------------------------------------------------- */

/* An empty file at dir/name. */
static void touch(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
}

/* Does dir/name exist (a link counts, whatever it points to)? */
static int exists(const char *dir, const char *name) {
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return lstat(path, &st) == 0;
}

/* A symlinked step-N folder is no checkpoint, and removing one removes the
 * link, never what it points to (pruning must not leave --ckpt-dir). */
static void test_ckpt_links(void) {
    char dir[] = "/tmp/galvrt_ck_XXXXXX", out[] = "/tmp/galvrt_out_XXXXXX", path[512];
    CHECK(mkdtemp(dir) && mkdtemp(out));
    touch(out, "precious");
    snprintf(path, sizeof path, "%s/step-00000001", dir);
    CHECK(mkdir(path, 0755) == 0);
    touch(path, "MANIFEST");
    char inner[600];
    snprintf(inner, sizeof inner, "%s/link", path);
    CHECK(symlink(out, inner) == 0); /* a link inside a checkpoint folder */
    snprintf(path, sizeof path, "%s/step-00000003", dir);
    CHECK(symlink(out, path) == 0); /* a step-N that is a link */
    long steps[8];
    CHECK_EQ(grt_ckpt_steps(dir, "step-", steps, 8), 1);
    CHECK_EQ(steps[0], 1);
    CHECK_EQ(grt_remove_dir(path), 0);
    CHECK(!exists(dir, "step-00000003"));
    CHECK(exists(out, "precious"));
    snprintf(path, sizeof path, "%s/step-00000001", dir);
    CHECK_EQ(grt_remove_dir(path), 0);
    CHECK(!exists(dir, "step-00000001"));
    CHECK(exists(out, "precious"));
    CHECK_EQ(grt_ckpt_steps(dir, "step-", steps, 8), 0);
    snprintf(path, sizeof path, "%s/precious", out);
    unlink(path), rmdir(out), rmdir(dir);
}

int main(void) {
    test_init_shards();
    test_init_moments();
    test_token_file();
    test_refusals();
    test_safetensors_refusals();
    test_fifo();
    test_byte_file();
    test_synthetic();
    test_alloc();
    test_clock();
    test_threads();
    test_ckpt_links();
    return check_report();
}
