/* target_fit.c -- shared by the expressivity and teacher sweeps (target_fit.h). */
#include "target_fit.h"

#include <math.h>
#include <string.h>

#include "protocol.h"

rl_status tf_adapter_new(tf_adapter *t, rl_method method, rl_bases_kind kind, int r, int d_out, int d_in, int seed,
                         int max_tokens)
{
    memset(t, 0, sizeof *t);
    pr_seeds sd = pr_seeds_of(seed);
    rl_adapter_config cfg = pr_adapter_config(method, r, seed);
    rl_status st = RL_OK;
    if (method == RL_METHOD_VERA || method == RL_METHOD_RANDLORA)
        st = rl_shared_bases_new(&t->bases, method, r, d_out, d_in, kind, RL_BF16, RL_FMA, sd.bases_key);
    if (st == RL_OK) st = rl_adapter_new(&t->a, &cfg, d_out, d_in, t->bases, max_tokens);
    if (st != RL_OK) tf_adapter_free(t);
    return st;
}

void tf_adapter_free(tf_adapter *t)
{
    rl_adapter_free(t->a);
    rl_shared_bases_free(t->bases);
    t->a = NULL;
    t->bases = NULL;
}

double tf_eckart_young(const double *s, int k, int r)
{
    double all = 0, tail = 0;
    for (int i = 0; i < k; i++) {
        all += s[i] * s[i];
        if (i >= r) tail += s[i] * s[i];
    }
    return all > 0 ? sqrt(tail / all) : 0.0;
}

double tf_rel_error(const float *a, const float *b, size_t n)
{
    double d = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        d += e * e;
        nb += (double)b[i] * b[i];
    }
    return nb > 0 ? sqrt(d / nb) : sqrt(d);
}
