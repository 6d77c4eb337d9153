/* Loops over the listed entries of a sparse code, compiled on first use by aekit.sae.native.
 *
 * An entry is a flat position e = r * width + c of a (rows, width) code: example r, latent c.
 * Every function reads float32 tables with rows of `dim` numbers, C order, and runs on one thread.
 * Entries add into a table indexed by latent in any order, so no sort by latent is needed. The
 * functions that index a table by row take the number of rows and return -1, having written
 * nothing past its end, at the first entry outside it (0 when every entry is inside). */

#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* one build that runs everywhere and uses AVX2 and FMA where the processor has them */
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define VECTOR_CLONES
#endif

/* eight floats, loaded from any address (as the compiler's own unaligned vector types) */
typedef float floats8 __attribute__((vector_size(32), may_alias, aligned(4)));
typedef int32_t words8 __attribute__((vector_size(32), may_alias, aligned(4)));
#define AT(p) (*(floats8 *)(p))
#define LOAD(p) (*(const floats8 *)(p))

/* The loops walk a list by runs: the entries of one row (example) r, whose latents c index a
 * table of rows. A row's numbers (its output, or its gradient) are held in registers, 64 at a
 * time, for its whole run, so each entry costs the one latent row it reads (or updates) and no
 * store-and-reload of the example's row: on one thread the loops are bound by the cache traffic
 * of those latent rows, half what adding into the example's row from memory costs. */
#define CHUNK 64

/* The end of the run of entries that starts at i (entries of row r, which starts at position
 * start = r * width). */
static inline int64_t run_end(const int64_t *entries, int64_t i, int64_t n, int64_t start, int64_t width) {
    int64_t end = i + 1;
    while (end < n && (uint64_t)(entries[end] - start) < (uint64_t)width) end++;
    return end;
}

/* out[r] += weights[i] * table[c] for each entry i: table (width, dim), out (rows, dim) */
VECTOR_CLONES int64_t aekit_columns_into_rows(const int64_t *entries, const float *weights, int64_t n,
                                              int64_t width, const float *table, int64_t dim, float *out,
                                              int64_t rows) {
    for (int64_t i = 0, end; i < n; i = end) {
        int64_t r = entries[i] / width, start = r * width;
        if (entries[i] < 0 || r >= rows) return -1;
        end = run_end(entries, i, n, start, width);
        float *target = out + r * dim;
        int64_t h = 0;
        for (; h + CHUNK <= dim; h += CHUNK) {
            floats8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
            for (int64_t j = i; j < end; j++) {
                const float *t = table + (entries[j] - start) * dim + h;
                float w = weights[j];
                a0 += w * LOAD(t), a1 += w * LOAD(t + 8), a2 += w * LOAD(t + 16), a3 += w * LOAD(t + 24);
                a4 += w * LOAD(t + 32), a5 += w * LOAD(t + 40), a6 += w * LOAD(t + 48), a7 += w * LOAD(t + 56);
            }
            float *o = target + h;
            AT(o) += a0, AT(o + 8) += a1, AT(o + 16) += a2, AT(o + 24) += a3;
            AT(o + 32) += a4, AT(o + 40) += a5, AT(o + 48) += a6, AT(o + 56) += a7;
        }
        for (int64_t j = i; h < dim && j < end; j++) { /* the last dim % 64 numbers */
            const float *t = table + (entries[j] - start) * dim;
            for (int64_t d = h; d < dim; d++) target[d] += weights[j] * t[d];
        }
    }
    return 0;
}

/* For each entry i of row r and latent c: dots[i] = rows[r] . columns[c] unless dots is NULL;
 * out[c] += weights[i] * rows[r] unless out is NULL; sums[c] += weights[i] unless sums is NULL.
 * rows (count, dim), columns and out (width, dim), dots (n,), sums (width,). The decoder's
 * backward (dots and out at once) and a weight's gradient (out, with its bias's in sums). */
VECTOR_CLONES int64_t aekit_rows_with_columns(const int64_t *entries, const float *weights, int64_t n,
                                              int64_t width, const float *rows, const float *columns, int64_t dim,
                                              float *dots, float *out, float *sums, int64_t count) {
    for (int64_t i = 0, end; i < n; i = end) {
        int64_t r = entries[i] / width, start = r * width;
        if (entries[i] < 0 || r >= count) return -1;
        end = run_end(entries, i, n, start, width);
        if (sums)
            for (int64_t j = i; j < end; j++) sums[entries[j] - start] += weights[j];
        if (!dots && !out) continue;
        const float *source = rows + r * dim;
        int64_t h = 0;
        for (; h + CHUNK <= dim; h += CHUNK) {
            const float *g = source + h;
            floats8 g0 = LOAD(g), g1 = LOAD(g + 8), g2 = LOAD(g + 16), g3 = LOAD(g + 24);
            floats8 g4 = LOAD(g + 32), g5 = LOAD(g + 40), g6 = LOAD(g + 48), g7 = LOAD(g + 56);
            for (int64_t j = i; j < end; j++) {
                int64_t c = entries[j] - start;
                if (dots) {
                    const float *t = columns + c * dim + h;
                    floats8 s = g0 * LOAD(t) + g1 * LOAD(t + 8), u = g2 * LOAD(t + 16) + g3 * LOAD(t + 24);
                    s += g4 * LOAD(t + 32) + g5 * LOAD(t + 40), u += g6 * LOAD(t + 48) + g7 * LOAD(t + 56);
                    s += u;
                    float part = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
                    dots[j] = h ? dots[j] + part : part;
                }
                if (out) {
                    float *o = out + c * dim + h, w = weights[j];
                    AT(o) += w * g0, AT(o + 8) += w * g1, AT(o + 16) += w * g2, AT(o + 24) += w * g3;
                    AT(o + 32) += w * g4, AT(o + 40) += w * g5, AT(o + 48) += w * g6, AT(o + 56) += w * g7;
                }
            }
        }
        for (int64_t j = i; h < dim && j < end; j++) { /* the last dim % 64 numbers */
            int64_t c = entries[j] - start;
            float part = 0;
            for (int64_t d = h; d < dim; d++) {
                if (dots) part += source[d] * columns[c * dim + d];
                if (out) out[c * dim + d] += weights[j] * source[d];
            }
            if (dots) dots[j] = h ? dots[j] + part : part;
        }
    }
    return 0;
}

/* The positions, ascending, of the non-zero 32-bit words of values (n,) (a non-negative float32
 * tensor read as integers), written to out; their count, or -1 as soon as there are more than
 * limit. out holds limit + 1024 positions: a block of 1024 words is listed before the count is
 * checked, without a branch per word (blocks of eight zeros skipped whole). */
VECTOR_CLONES int64_t aekit_list_nonzero(const int32_t *values, int64_t n, int64_t limit, int64_t *out) {
    int64_t count = 0, i = 0;
    for (int64_t start = 0; start < n; start += 1024) {
        int64_t end = start + 1024 < n ? start + 1024 : n;
        for (; i + 8 <= end; i += 8) {
            words8 block = *(const words8 *)(values + i);
            if (!((block[0] | block[1]) | (block[2] | block[3]) | ((block[4] | block[5]) | (block[6] | block[7]))))
                continue; /* eight zeros: most blocks of a sparse code */
            for (int64_t j = 0; j < 8; j++) {
                out[count] = i + j;
                count += block[j] != 0;
            }
        }
        for (; i < end; i++) {
            out[count] = i;
            count += values[i] != 0;
        }
        if (count > limit) return -1;
    }
    return count;
}
