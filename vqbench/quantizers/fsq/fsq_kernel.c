#include <stdint.h>
#include <float.h>
#include <math.h>

#define FSQ_BODY(D)                                                                      \
    int32_t kb[4096];                                                                    \
    int64_t bad = 0;                                                                     \
    const int64_t P = (int64_t)RB * (D);                                                 \
    for (int64_t r0 = 0; r0 < rows; r0 += RB) {                                          \
        const int64_t nr = rows - r0 < RB ? rows - r0 : RB;                              \
        const int64_t np = nr * (D);                                                     \
        const float* xs = x + r0 * (D);                                                  \
        float* cs = codes ? codes + r0 * (D) : 0;                                        \
        int64_t bb = 0;                                                                  \
        if (check) {                                                                     \
            for (int64_t p = 0; p < np; ++p) bb += !(fabsf(xs[p]) <= FLT_MAX);           \
            bad += bb;                                                                   \
        }                                                                                \
        for (int64_t p = 0; p < np; ++p) kb[p] = 0;                                      \
        for (int32_t j = 0; j < J; ++j) {                                                \
            const float* t = thr + (int64_t)j * P;                                       \
            for (int64_t p = 0; p < np; ++p) kb[p] += (xs[p] >= t[p]);                   \
        }                                                                                \
        if (!cs) {                                                                       \
        } else if (mode == 0) {                                                          \
            for (int64_t p = 0; p < np; ++p) cs[p] = ((float)kb[p] + a[p]) / b[p];       \
        } else {                                                                         \
            for (int64_t p = 0; p < np; ++p) {                                           \
                const float m = (float)kb[p] * a[p];                                     \
                cs[p] = m - b[p];                                                        \
            }                                                                            \
        }                                                                                \
        if (idx) {                                                                       \
            int32_t* is = idx + r0;                                                      \
            for (int64_t r = 0; r < nr; ++r) {                                           \
                int32_t s = 0;                                                           \
                for (int32_t c = 0; c < (D); ++c) s += kb[r * (D) + c] * basis[c];       \
                is[r] = s;                                                               \
            }                                                                            \
        }                                                                                \
        if (mark && bb) {  /* NaN codes for NaN input, index -1 for a non-finite row */  \
            for (int64_t r = 0; r < nr; ++r) {                                           \
                int32_t nf = 0;                                                          \
                for (int32_t c = 0; c < (D); ++c) {                                      \
                    const float v = xs[r * (D) + c];                                     \
                    nf |= !(fabsf(v) <= FLT_MAX);                                        \
                    if (cs && v != v) cs[r * (D) + c] = v;                               \
                }                                                                        \
                if (idx && nf) idx[r0 + r] = -1;                                         \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    return bad;

#define FSQ_FN(NAME, D)                                                                  \
static int64_t NAME(const float* restrict x, float* restrict codes,                     \
                    int32_t* restrict idx, int64_t rows, int32_t dd, int32_t J,          \
                    int32_t RB, const float* restrict thr, const float* restrict a,      \
                    const float* restrict b, const int32_t* restrict basis,              \
                    int32_t mode, int32_t check, int32_t mark) { (void)dd; FSQ_BODY(D) }

FSQ_FN(fsq_d1, 1)
FSQ_FN(fsq_d2, 2)
FSQ_FN(fsq_d3, 3)
FSQ_FN(fsq_d4, 4)
FSQ_FN(fsq_d5, 5)
FSQ_FN(fsq_d6, 6)
FSQ_FN(fsq_d7, 7)
FSQ_FN(fsq_d8, 8)
FSQ_FN(fsq_dn, dd)

int64_t fsq_forward(const float* x, float* codes, int32_t* idx, int64_t rows, int32_t d,
                    int32_t J, int32_t RB, const float* thr, const float* a, const float* b,
                    const int32_t* basis, int32_t mode, int32_t check, int32_t mark) {
    check |= mark;
    switch (d) {
        case 1: return fsq_d1(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check, mark);
        case 2: return fsq_d2(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check, mark);
        case 3: return fsq_d3(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check, mark);
        case 4: return fsq_d4(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check, mark);
        case 5: return fsq_d5(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check, mark);
        case 6: return fsq_d6(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check, mark);
        case 7: return fsq_d7(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check, mark);
        case 8: return fsq_d8(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check, mark);
        default: return fsq_dn(x, codes, idx, rows, d, J, RB, thr, a, b, basis, mode, check, mark);
    }
}

/* Decode: code bits of index i are lo[i % split] | hi[i / split], two tables of whole rows in
   which the channels of the other table are zero bits. Out-of-range indices count as bad and
   decode as index 0 (no read outside the tables). */
#define DEC_BODY(D, V)                                                                   \
    int64_t bad = 0;                                                                     \
    for (int64_t r = 0; r < rows; ++r) {                                                 \
        const uint64_t u = (uint64_t)(int64_t)(V);                                       \
        const int ok = u < size;                                                         \
        bad += !ok;                                                                      \
        const uint32_t i = ok ? (uint32_t)u : 0u;                                        \
        const uint32_t q = one ? 0u : i / split;                                         \
        const uint32_t* l = lo + (int64_t)(i - q * split) * (D);                         \
        const uint32_t* h = hi + (int64_t)q * (D);                                       \
        uint32_t* o = out + r * (D);                                                     \
        for (int32_t c = 0; c < (D); ++c) o[c] = l[c] | h[c];                            \
    }                                                                                    \
    return bad;

#define DEC_FN(NAME, D)                                                                  \
static int64_t NAME##_i32(const int32_t* restrict idx, uint32_t* restrict out,          \
                          int64_t rows, int32_t dd, uint64_t size, uint32_t split,       \
                          int32_t one, const uint32_t* restrict lo,                      \
                          const uint32_t* restrict hi) { (void)dd; DEC_BODY(D, idx[r]) } \
static int64_t NAME##_i64(const int64_t* restrict idx, uint32_t* restrict out,          \
                          int64_t rows, int32_t dd, uint64_t size, uint32_t split,       \
                          int32_t one, const uint32_t* restrict lo,                      \
                          const uint32_t* restrict hi) { (void)dd; DEC_BODY(D, idx[r]) }

DEC_FN(dec_d1, 1)
DEC_FN(dec_d2, 2)
DEC_FN(dec_d3, 3)
DEC_FN(dec_d4, 4)
DEC_FN(dec_d5, 5)
DEC_FN(dec_d6, 6)
DEC_FN(dec_d7, 7)
DEC_FN(dec_d8, 8)
DEC_FN(dec_dn, dd)

#define DEC_CASE(K, NAME)                                                                \
    case K: return wide ? NAME##_i64((const int64_t*)idx, out, rows, d, size, split, one, lo, hi) \
                        : NAME##_i32((const int32_t*)idx, out, rows, d, size, split, one, lo, hi);

int64_t fsq_decode(const void* idx, int32_t wide, uint32_t* out, int64_t rows, int32_t d,
                   uint64_t size, uint32_t split, const uint32_t* lo, const uint32_t* hi) {
    const int32_t one = split == size;
    switch (d) {
        DEC_CASE(1, dec_d1) DEC_CASE(2, dec_d2) DEC_CASE(3, dec_d3) DEC_CASE(4, dec_d4)
        DEC_CASE(5, dec_d5) DEC_CASE(6, dec_d6) DEC_CASE(7, dec_d7) DEC_CASE(8, dec_d8)
        default: DEC_CASE(0, dec_dn)
    }
}

/* Backward of the straight-through codes: t = ((g * m1) / dv) * m2 per element (the reference's
   chain of Div/Mul backward steps), then tanh's backward t * (1 - y * y) with y = tanh output
   (mode 0: as one fused multiply-add, mode 1: as two roundings, whichever ATen's kernel uses here),
   or the clamp's backward (mode 2): t where -1 <= z + sh <= 1, else 0. */
#define BWD_BODY(D)                                                                      \
    const int64_t P = (int64_t)RB * (D);                                                 \
    for (int64_t r0 = 0; r0 < rows; r0 += RB) {                                          \
        const int64_t np = (rows - r0 < RB ? rows - r0 : RB) * (D);                      \
        const float* gs = g + r0 * (D);                                                  \
        float* os = out + r0 * (D);                                                      \
        (void)P;                                                                         \
        if (mode == 2) {                                                                 \
            const float* zs = z + r0 * (D);                                              \
            for (int64_t p = 0; p < np; ++p) {                                           \
                const float t = ((gs[p] * m1[p]) / dv[p]) * m2[p];                       \
                const float u = zs[p] + sh[p];                                           \
                os[p] = (u >= -1.0f && u <= 1.0f) ? t : 0.0f;                            \
            }                                                                            \
        } else if (mode == 0) {                                                          \
            const float* ys = y + r0 * (D);                                              \
            for (int64_t p = 0; p < np; ++p) {                                           \
                const float t = ((gs[p] * m1[p]) / dv[p]) * m2[p];                       \
                os[p] = t * fmaf(-ys[p], ys[p], 1.0f);                                   \
            }                                                                            \
        } else {                                                                         \
            const float* ys = y + r0 * (D);                                              \
            for (int64_t p = 0; p < np; ++p) {                                           \
                const float t = ((gs[p] * m1[p]) / dv[p]) * m2[p];                       \
                const float s = 1.0f - ys[p] * ys[p];                                    \
                os[p] = t * s;                                                           \
            }                                                                            \
        }                                                                                \
    }

#define BWD_FN(NAME, D)                                                                  \
static void NAME(const float* restrict z, const float* restrict g, const float* restrict y, \
                 float* restrict out, int64_t rows, int32_t dd, int32_t RB,              \
                 const float* restrict m1, const float* restrict dv,                     \
                 const float* restrict m2, const float* restrict sh, int32_t mode)       \
{ (void)dd; BWD_BODY(D) }

BWD_FN(bwd_d1, 1)
BWD_FN(bwd_d2, 2)
BWD_FN(bwd_d3, 3)
BWD_FN(bwd_d4, 4)
BWD_FN(bwd_d5, 5)
BWD_FN(bwd_d6, 6)
BWD_FN(bwd_d7, 7)
BWD_FN(bwd_d8, 8)
BWD_FN(bwd_dn, dd)

void fsq_backward(const float* z, const float* g, const float* y, float* out, int64_t rows,
                  int32_t d, int32_t RB, const float* m1, const float* dv, const float* m2,
                  const float* sh, int32_t mode) {
    switch (d) {
        case 1: bwd_d1(z, g, y, out, rows, d, RB, m1, dv, m2, sh, mode); return;
        case 2: bwd_d2(z, g, y, out, rows, d, RB, m1, dv, m2, sh, mode); return;
        case 3: bwd_d3(z, g, y, out, rows, d, RB, m1, dv, m2, sh, mode); return;
        case 4: bwd_d4(z, g, y, out, rows, d, RB, m1, dv, m2, sh, mode); return;
        case 5: bwd_d5(z, g, y, out, rows, d, RB, m1, dv, m2, sh, mode); return;
        case 6: bwd_d6(z, g, y, out, rows, d, RB, m1, dv, m2, sh, mode); return;
        case 7: bwd_d7(z, g, y, out, rows, d, RB, m1, dv, m2, sh, mode); return;
        case 8: bwd_d8(z, g, y, out, rows, d, RB, m1, dv, m2, sh, mode); return;
        default: bwd_dn(z, g, y, out, rows, d, RB, m1, dv, m2, sh, mode); return;
    }
}

int32_t fsq_block_limit(void) { return 4096; }
int32_t fsq_abi_version(void) { return 3; }
