/* rl_bases.c -- shared RandLora / VeRA bases from projection_prng_key. */
#include "rl_bases.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../core/rl_budget.h"
#include "../core/rl_tensor.h"

static const char *const method_names[] = {"full", "lora", "vera", "randlora"};
static const char *const kind_names[] = {"dense", "sparse", "very_sparse"};

const char *rl_method_name(rl_method m)
{
    return (unsigned)m < 4 ? method_names[m] : "?";
}

const char *rl_bases_kind_name(rl_bases_kind k)
{
    return (unsigned)k < 3 ? kind_names[k] : "?";
}

/* Index of s in names[0..n), or -1. */
static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

rl_status rl_method_parse(const char *s, rl_method *out)
{
    int i = name_index(method_names, 4, s);
    if (i < 0)
        return rl_fail(RL_EINVAL, "unknown method '%s' (expected full, lora, vera or randlora)",
                       s ? s : "(null)");
    *out = (rl_method)i;
    return RL_OK;
}

rl_status rl_bases_kind_parse(const char *s, rl_bases_kind *out)
{
    int i = name_index(kind_names, 3, s);
    if (i < 0)
        return rl_fail(RL_EINVAL, "unknown bases '%s' (expected dense, sparse or very_sparse)",
                       s ? s : "(null)");
    *out = (rl_bases_kind)i;
    return RL_OK;
}

int rl_randlora_n_bases(int min_dim, int r)
{
    /* PEFT: q = min_dim / r as a float; int(q) if q.is_integer() else
     * int(q) + 1 -- the integer ceiling for the sizes that occur. */
    return (int)(((int64_t)min_dim + r - 1) / r);
}

/* Divide every element by the tensor's unbiased std, in format fmt. */
static rl_status normalise(float *x, size_t n, rl_fmt fmt, const char *which)
{
    float s = rl_std_unbiased(x, n, fmt);
    if (!(s > 0.0f) || !isfinite(s))
        return rl_fail(RL_EINVAL,
                       "bases: %s has std %g (all values equal): normalising would give "
                       "non-finite bases; choose another key, r or layer size",
                       which, (double)s);
    for (size_t i = 0; i < n; i++) x[i] = rl_fmt_round(fmt, x[i] / s);
    return RL_OK;
}

static void ternarise(float *x, size_t n, double s)
{
    /* torch compares float32 with a Python float converted to float32 first */
    float lo = (float)(1.0 / (2.0 * s));
    float hi = (float)(1.0 - 1.0 / (2.0 * s));
    for (size_t i = 0; i < n; i++) x[i] = x[i] < lo ? -1.0f : (x[i] > hi ? 1.0f : 0.0f);
}

static rl_status randlora_generate(rl_shared_bases *b)
{
    rl_mt g;
    rl_mt_seed(&g, b->key);
    const int r = b->r, md = b->min_dim, xd = b->max_dim, nb = b->n_bases;
    if (b->kind == RL_BASES_DENSE) {
        const double a = sqrt(5.0);
        rl_kaiming_uniform(&g, b->A, b->a_len, a, md, b->fmt, b->fma);
        /* one (max_dim, 1, r) chunk per basis, scattered into B[:, bi, :] */
        float *chunk = rl_alloc_floats((size_t)xd * r);
        if (!chunk) return rl_fail(RL_ENOMEM, "bases: cannot allocate a %dx%d chunk", xd, r);
        for (int bi = 0; bi < nb; bi++) {
            rl_kaiming_uniform(&g, chunk, (size_t)xd * r, a, r, b->fmt, b->fma);
            for (int p = 0; p < xd; p++)
                memcpy(b->B + ((size_t)p * nb + bi) * r, chunk + (size_t)p * r,
                       (size_t)r * sizeof(float));
        }
        rl_dealloc(chunk);
        RL_TRY(normalise(b->A, b->a_len, b->fmt, "randlora_A"));
        return normalise(b->B, b->b_len, b->fmt, "randlora_B");
    }
    double s = b->kind == RL_BASES_VERY_SPARSE ? sqrt((double)md) : 3.0;
    rl_rand_f32(&g, b->A, b->a_len);
    rl_rand_f32(&g, b->B, b->b_len);
    ternarise(b->A, b->a_len, s);
    ternarise(b->B, b->b_len, s);
    RL_TRY(normalise(b->A, b->a_len, RL_F32, "randlora_A"));
    return normalise(b->B, b->b_len, RL_F32, "randlora_B");
}

static void vera_generate(rl_shared_bases *b)
{
    rl_mt g;
    rl_mt_seed(&g, b->key);
    rl_kaiming_uniform(&g, b->A, b->a_len, 0.0, b->max_in, RL_F32, b->fma);
    rl_kaiming_uniform(&g, b->B, b->b_len, 0.0, b->r, RL_F32, b->fma);
}

/* CSR (by_row) or CSC index of the nonzeros of a ternary (rows, cols)
 * matrix m with row stride ld; signs in sgn. Returns false on no memory. */
static bool ternary_index(const float *m, int rows, int cols, bool by_row, int **ptr, int **idx,
                          signed char **sgn)
{
    const int outer = by_row ? rows : cols, inner = by_row ? cols : rows;
    size_t nnz = 0;
    for (size_t e = 0; e < (size_t)rows * cols; e++) nnz += m[e] != 0.0f;
    /* tracked like every other tensor of the bases */
    *ptr = rl_alloc(((size_t)outer + 1) * sizeof **ptr);
    *idx = rl_alloc((nnz ? nnz : 1) * sizeof **idx);
    *sgn = rl_alloc(nnz ? nnz : 1);
    if (!*ptr || !*idx || !*sgn) return false;
    size_t k = 0;
    for (int o = 0; o < outer; o++) {
        (*ptr)[o] = (int)k;
        for (int i = 0; i < inner; i++) {
            float v = by_row ? m[(size_t)o * cols + i] : m[(size_t)i * cols + o];
            if (v != 0.0f) {
                (*idx)[k] = i;
                (*sgn)[k++] = v > 0 ? 1 : -1;
            }
        }
    }
    (*ptr)[outer] = (int)k;
    return true;
}

static rl_status build_ternary_index(rl_shared_bases *b)
{
    const int ncol = b->n_bases * b->r;
    b->a_mag = 0;
    b->b_mag = 0;
    for (size_t e = 0; e < b->a_len && b->a_mag == 0; e++) b->a_mag = fabsf(b->A[e]);
    for (size_t e = 0; e < b->b_len && b->b_mag == 0; e++) b->b_mag = fabsf(b->B[e]);
    if (!ternary_index(b->A, b->r, b->min_dim, true, &b->a_ptr, &b->a_idx, &b->a_sgn) ||
        !ternary_index(b->B, b->max_dim, ncol, true, &b->br_ptr, &b->br_idx, &b->br_sgn) ||
        !ternary_index(b->B, b->max_dim, ncol, false, &b->bc_ptr, &b->bc_idx, &b->bc_sgn))
        return rl_fail(RL_ENOMEM, "bases: cannot allocate the ternary index");
    return RL_OK;
}

rl_status rl_shared_bases_new(rl_shared_bases **out, rl_method method, int r,
                              int max_out, int max_in, rl_bases_kind kind,
                              rl_fmt fmt, rl_fma fma, uint64_t key)
{
    *out = NULL;
    if (method != RL_METHOD_RANDLORA && method != RL_METHOD_VERA)
        return rl_fail(RL_EINVAL, "bases: method %s has no shared bases", rl_method_name(method));
    else if (r <= 0)
        return rl_fail(RL_EINVAL, "`r` should be a positive integer value but the value passed is %d", r);
    else if (max_out <= 0 || max_in <= 0)
        return rl_fail(RL_EINVAL, "bases: bad largest layer shape (%d, %d)", max_out, max_in);
    else if ((unsigned)kind > RL_BASES_VERY_SPARSE)
        return rl_fail(RL_EINVAL, "bases: unknown kind %d", (int)kind);

    rl_shared_bases *b = calloc(1, sizeof *b);
    if (!b) return rl_fail(RL_ENOMEM, "bases: out of memory");
    b->method = method;
    b->kind = method == RL_METHOD_RANDLORA ? kind : RL_BASES_DENSE;
    b->fmt = method == RL_METHOD_RANDLORA && kind == RL_BASES_DENSE ? fmt : RL_F32;
    b->fma = fma;
    b->key = key;
    b->r = r;
    b->max_out = max_out;
    b->max_in = max_in;
    if (method == RL_METHOD_RANDLORA) {
        b->min_dim = max_out < max_in ? max_out : max_in;
        b->max_dim = max_out < max_in ? max_in : max_out;
        b->n_bases = rl_randlora_n_bases(b->min_dim, r);
        b->a_len = (size_t)r * b->min_dim;
        b->b_len = (size_t)b->max_dim * b->n_bases * r;
    } else {
        b->a_len = (size_t)r * max_in;
        b->b_len = (size_t)max_out * r;
    }
    b->A = rl_alloc_floats(b->a_len);
    b->B = rl_alloc_floats(b->b_len);
    if (!b->A || !b->B) {
        rl_status st = rl_fail(RL_ENOMEM, "bases: cannot allocate %zu + %zu floats", b->a_len, b->b_len);
        rl_shared_bases_free(b);
        return st;
    }
    rl_status st = RL_OK;
    if (method == RL_METHOD_RANDLORA)
        st = randlora_generate(b);
    else
        vera_generate(b);
    if (st == RL_OK && method == RL_METHOD_RANDLORA && kind != RL_BASES_DENSE) st = build_ternary_index(b);
    if (st != RL_OK) {
        rl_shared_bases_free(b);
        return st;
    }
    *out = b;
    return RL_OK;
}

size_t rl_shared_bases_bytes(rl_method method, int r, int max_out, int max_in, rl_bases_kind kind)
{
    if ((method != RL_METHOD_RANDLORA && method != RL_METHOD_VERA) || r <= 0 || max_out <= 0 || max_in <= 0)
        return 0;
    const size_t f = sizeof(float), R = (size_t)r;
    if (method == RL_METHOD_VERA)
        return rl_size_mul(f, rl_size_add(rl_size_mul(R, (size_t)max_in), rl_size_mul((size_t)max_out, R)));
    size_t mn = (size_t)(max_out < max_in ? max_out : max_in), mx = (size_t)(max_out < max_in ? max_in : max_out);
    size_t ncol = rl_size_mul((size_t)rl_randlora_n_bases((int)mn, r), R);
    size_t a = rl_size_mul(R, mn), b = rl_size_mul(mx, ncol);
    size_t bytes = rl_size_mul(f, rl_size_add(a, b));
    if (kind == RL_BASES_DENSE) return rl_size_add(bytes, rl_size_mul(f, rl_size_mul(mx, R))); /* one chunk */
    /* a_ptr, a_idx, a_sgn; br_* and bc_* over B: (4 + 1) bytes per nonzero, 4 per pointer */
    size_t index = rl_size_add(rl_size_mul(5, a), rl_size_mul(10, b));
    index = rl_size_add(index, rl_size_mul(sizeof(int), rl_size_add(R, rl_size_add(mx, rl_size_add(ncol, 3)))));
    return rl_size_add(bytes, index);
}

int rl_shared_bases_shapes(const rl_shared_bases *b, int shape_a[3], int shape_b[3])
{
    if (b->method == RL_METHOD_RANDLORA) {
        shape_a[0] = b->r, shape_a[1] = 1, shape_a[2] = b->min_dim;
        shape_b[0] = b->max_dim, shape_b[1] = b->n_bases, shape_b[2] = b->r;
        return 3;
    }
    shape_a[0] = b->r, shape_a[1] = b->max_in;
    shape_b[0] = b->max_out, shape_b[1] = b->r;
    return 2;
}

const char *rl_shared_bases_prefix(const rl_shared_bases *b)
{
    return b->method == RL_METHOD_RANDLORA ? "randlora" : "vera";
}

void rl_shared_bases_free(rl_shared_bases *b)
{
    if (!b) return;
    rl_dealloc(b->A);
    rl_dealloc(b->B);
    rl_dealloc(b->a_ptr);
    rl_dealloc(b->a_idx);
    rl_dealloc(b->a_sgn);
    rl_dealloc(b->br_ptr);
    rl_dealloc(b->br_idx);
    rl_dealloc(b->br_sgn);
    rl_dealloc(b->bc_ptr);
    rl_dealloc(b->bc_idx);
    rl_dealloc(b->bc_sgn);
    free(b);
}
