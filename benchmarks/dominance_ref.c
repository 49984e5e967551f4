/*
 * Reference kernel for benchmarks/bench_dominance.py: exact pairwise dominance counts in plain C
 * with x86 intrinsics, to measure skhier's numba kernel against on the same machine, same run.
 *
 * Built by the benchmark at run time:  gcc -O3 -march=native -shared -fPIC -pthread
 * (a shared library loaded with ctypes). With AVX-512BW (``__AVX512BW__``, i.e. -march=native on
 * a CPU that has it) the inner loop uses 512-bit compares into mask registers and masked
 * adds, 4x4 register blocks (16 accumulators of 32 lanes, 32 zmm registers); otherwise AVX2:
 * 256-bit compares and subtractions, 2x4 register blocks (8 accumulators + 2 row vectors + 1
 * column vector fit the 16 ymm registers; 4x4 would spill). -DDOMREF_MR=... -DDOMREF_NR=...
 * override the blocking; -DDOMREF_NO512 (or -mno-avx512f) forces the AVX2 path. Rows are read
 * with unaligned loads; the benchmark gives both kernels rows on 64-byte boundaries.
 *
 * What is counted (the same definition as skhier.ranking._kernels.dominance_tiles, square
 * layout, counts): R holds int16 per-draw scores, row g = group g, draws contiguous, row stride
 * ``ld`` elements; for every pair i < j
 *     out[i * n + j] = #{s < s_len : R[i, s] > R[j, s]}                       (gt)
 *     out[j * n + i] = #{s < s_len : R[i, s] < R[j, s]}   if has_ties         (lt)
 *                    = s_real - gt                           otherwise
 * as uint16 (exact up to 65,535 draws). Draws past s_real are zero in every row (never counted).
 * The diagonal is not written. Ties cost a second, transposed pass, as in skhier. Each pair is
 * computed once (square tiles of ``tile`` groups over the upper triangle), tiles handed out
 * dynamically to ``n_threads`` pthreads.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512BW__) && !defined(DOMREF_NO512)
#define DOMREF_512 1
#ifndef DOMREF_MR
#define DOMREF_MR 4
#endif
#ifndef DOMREF_NR
#define DOMREF_NR 4
#endif
#elif defined(__AVX2__)
#define DOMREF_512 0
#ifndef DOMREF_MR
#define DOMREF_MR 2
#endif
#ifndef DOMREF_NR
#define DOMREF_NR 4
#endif
#else
#error "dominance_ref.c needs AVX2 (compile with -march=native on an x86-64 CPU that has it)"
#endif

#define MR DOMREF_MR
#define NR DOMREF_NR

/* In-place accumulator updates written as one instruction each: GCC 12 otherwise copies every
 * accumulator around the merge-masked add (or the subtraction) in each iteration. */
#if DOMREF_512
static inline __attribute__((always_inline)) __m512i add_masked(__m512i acc, __mmask32 m,
                                                                __m512i one) {
    __asm__("vpaddw %2, %0, %0%{%1%}" : "+v"(acc) : "Yk"(m), "v"(one));
    return acc;
}
#endif
static inline __attribute__((always_inline)) __m256i sub_inplace(__m256i acc, __m256i m) {
    __asm__("vpsubw %1, %0, %0" : "+v"(acc) : "v"(m));
    return acc;
}

/* ISA of the build: 512 (AVX-512BW) or 256 (AVX2); and the blocking. */
int domref_isa(void) { return DOMREF_512 ? 512 : 256; }
int domref_mr(void) { return MR; }
int domref_nr(void) { return NR; }

/* c[a * NR + b] = #{s < len : A[a][s] > B[b][s]} (``less``: ``<``). */
static inline __attribute__((always_inline)) void block(const int16_t *const *A,
                                                        const int16_t *const *B, int64_t len,
                                                        int32_t *c, const int less) {
    int64_t s = 0;
#if DOMREF_512
    __m512i acc[MR * NR];
    const __m512i one = _mm512_set1_epi16(1);
    for (int k = 0; k < MR * NR; k++) acc[k] = _mm512_setzero_si512();
    for (; s + 32 <= len; s += 32) {
        __m512i x[MR];
        for (int a = 0; a < MR; a++) x[a] = _mm512_loadu_si512((const void *)(A[a] + s));
        for (int b = 0; b < NR; b++) {
            __m512i y = _mm512_loadu_si512((const void *)(B[b] + s));
            for (int a = 0; a < MR; a++) {
                __mmask32 m = less ? _mm512_cmpgt_epi16_mask(y, x[a])
                                    : _mm512_cmpgt_epi16_mask(x[a], y);
                acc[a * NR + b] = add_masked(acc[a * NR + b], m, one);
            }
        }
    }
    if (s < len) { /* tail: masked loads fill zeros, and 0 > 0 is false */
        __mmask32 t = (__mmask32)((1ULL << (len - s)) - 1);
        __m512i x[MR];
        for (int a = 0; a < MR; a++) x[a] = _mm512_maskz_loadu_epi16(t, A[a] + s);
        for (int b = 0; b < NR; b++) {
            __m512i y = _mm512_maskz_loadu_epi16(t, B[b] + s);
            for (int a = 0; a < MR; a++) {
                __mmask32 m = less ? _mm512_cmpgt_epi16_mask(y, x[a])
                                    : _mm512_cmpgt_epi16_mask(x[a], y);
                acc[a * NR + b] = add_masked(acc[a * NR + b], m, one);
            }
        }
    }
    for (int k = 0; k < MR * NR; k++)
        c[k] = _mm512_reduce_add_epi32(_mm512_madd_epi16(acc[k], one));
#else
    __m256i acc[MR * NR];
    const __m256i one = _mm256_set1_epi16(1);
    for (int k = 0; k < MR * NR; k++) acc[k] = _mm256_setzero_si256();
    for (; s + 16 <= len; s += 16) {
        __m256i x[MR];
        for (int a = 0; a < MR; a++) x[a] = _mm256_loadu_si256((const __m256i *)(A[a] + s));
        for (int b = 0; b < NR; b++) {
            __m256i y = _mm256_loadu_si256((const __m256i *)(B[b] + s));
            for (int a = 0; a < MR; a++) { /* the compare gives -1 per true lane */
                __m256i m = less ? _mm256_cmpgt_epi16(y, x[a]) : _mm256_cmpgt_epi16(x[a], y);
                acc[a * NR + b] = sub_inplace(acc[a * NR + b], m);
            }
        }
    }
    for (int k = 0; k < MR * NR; k++) {
        __m256i w = _mm256_madd_epi16(acc[k], one); /* 8 int32 */
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
        c[k] = _mm_cvtsi128_si32(h);
    }
    for (; s < len; s++) /* scalar tail */
        for (int a = 0; a < MR; a++)
            for (int b = 0; b < NR; b++)
                    c[a * NR + b] += less ? A[a][s] < B[b][s] : A[a][s] > B[b][s];
#endif
}

typedef struct {
    const int16_t *R;
    const int16_t *zero; /* an all-zero row standing in for the groups past n */
    int64_t ld, n, s_len, s_real, tile, n_tiles, n_tasks;
    int has_ties;
    uint16_t *out;
    atomic_long next;
} job_t;

static inline const int16_t *row(const job_t *J, int64_t g) {
    return g < J->n ? J->R + g * J->ld : J->zero;
}

static void do_tile(const job_t *J, int64_t bi, int64_t bj) {
    const int64_t T = J->tile, n = J->n;
    const int64_t i0 = bi * T, i1 = i0 + T < n ? i0 + T : n;
    const int64_t j0 = bj * T, j1 = j0 + T < n ? j0 + T : n;
    const int16_t *A[MR], *B[NR];
    int32_t gt[MR * NR], lt[MR * NR] = {0};
    for (int64_t i = i0; i < i1; i += MR) {
        for (int a = 0; a < MR; a++) A[a] = row(J, i + a);
        /* first column block holding a pair with j > i */
        int64_t jb = j0;
        if (bi == bj) jb = j0 + ((i + 1 - j0) / NR) * NR;
        for (int64_t j = jb; j < j1; j += NR) {
            for (int b = 0; b < NR; b++) B[b] = row(J, j + b);
            block(A, B, J->s_len, gt, 0);
            if (J->has_ties) block(A, B, J->s_len, lt, 1);
            for (int a = 0; a < MR && i + a < i1; a++)
                for (int b = 0; b < NR && j + b < j1; b++) {
                    const int64_t ii = i + a, jj = j + b;
                    if (jj <= ii) continue;
                    const int32_t g = gt[a * NR + b];
                    const int32_t l = J->has_ties ? lt[a * NR + b] : (int32_t)J->s_real - g;
                    J->out[ii * n + jj] = (uint16_t)g;
                    J->out[jj * n + ii] = (uint16_t)l;
                }
        }
    }
}

static void *worker(void *arg) {
    job_t *J = (job_t *)arg;
    for (;;) {
        long p = atomic_fetch_add(&J->next, 1);
        if (p >= J->n_tasks) break;
        /* task p -> tile (bi, bj), bi <= bj, row-major over the upper triangle */
        int64_t bi = 0, left = p, rowlen = J->n_tiles;
        while (left >= rowlen) {
            left -= rowlen;
            bi++;
            rowlen--;
        }
        do_tile(J, bi, bi + left);
    }
    return NULL;
}

/*
 * Fill ``out`` (n x n uint16, row-major; diagonal untouched) with the counts described above,
 * over tiles of ``tile`` groups (24 if not positive). Returns 0, or -1 if memory for the zero row
 * or the threads could not be had.
 */
int domref_counts(const int16_t *R, int64_t ld, int64_t n, int64_t s_len, int64_t s_real,
                  int has_ties, uint16_t *out, int n_threads, int64_t tile) {
    job_t J;
    const int64_t T = tile > 0 ? tile : 24;
    int16_t *zero = calloc((size_t)(ld > 0 ? ld : 1) + 64, sizeof(int16_t));
    if (!zero) return -1;
    J.R = R;
    J.zero = zero;
    J.ld = ld;
    J.n = n;
    J.s_len = s_len;
    J.s_real = s_real;
    J.has_ties = has_ties;
    J.out = out;
    J.tile = T;
    J.n_tiles = (n + T - 1) / T;
    J.n_tasks = J.n_tiles * (J.n_tiles + 1) / 2;
    atomic_init(&J.next, 0);
    if (n_threads < 1) n_threads = 1;
    pthread_t *th = malloc(sizeof(pthread_t) * (size_t)n_threads);
    if (!th) {
        free(zero);
        return -1;
    }
    int started = 0, rc = 0;
    for (int t = 1; t < n_threads; t++) {
        if (pthread_create(&th[t], NULL, worker, &J) != 0) {
            rc = -1;
            break;
        }
        started = t;
    }
    worker(&J);
    for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
    free(th);
    free(zero);
    return rc;
}
