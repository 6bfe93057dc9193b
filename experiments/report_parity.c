/* report_parity.c -- the PEFT parity section of REPORT.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

void report_parity(sbuf *b, const char *dir)
{
    csv_table t;
    if (!rp_table(dir, "parity/parity.csv", &t)) {
        rp_put(b, "Not run (results/parity/parity.csv is missing).\n\n");
        return;
    }
    int pass = 0;
    rp_put(b, "| file | method | layers | verdict | max rel. error vs PEFT | worst gradient vs PEFT | bases vs stored | "
           "ours vs float64: output / dx / param. grads | PEFT float32 vs float64: output / param. grads | failed on |\n"
           "|---|---|---|---|---|---|---|---|---|---|\n");
    double worst_grad = 0, worst_truth = -1;
    for (int r = 0; r < t.nrow; r++) {
        pass += !strcmp(rp_cell(&t, r, "pass"), "PASS");
        const char *f = rp_cell(&t, r, "file"), *base = strrchr(f, '/');
        char bases[64];
        if (!strcmp(rp_cell(&t, r, "method"), "lora")) snprintf(bases, sizeof bases, "none");
        else if (atol(rp_cell(&t, r, "bases_mismatch")) == 0) snprintf(bases, sizeof bases, "bit-exact");
        else snprintf(bases, sizeof bases, "%s differ (max %s ulp)", rp_cell(&t, r, "bases_mismatch"), rp_cell(&t, r, "bases_max_ulp"));
        /* -1 in the CSV: the file has no truth.grad.<param> (LoRA files, older PEFT-made extras) */
        char tg[32] = "—", ptg[32] = "—";
        if (rp_num(&t, r, "truth_grad_rel") >= 0) snprintf(tg, sizeof tg, "%s", rp_cell(&t, r, "truth_grad_rel"));
        if (rp_num(&t, r, "peft_truth_grad_rel") >= 0) snprintf(ptg, sizeof ptg, "%s", rp_cell(&t, r, "peft_truth_grad_rel"));
        if (rp_num(&t, r, "grad_rel") > worst_grad) worst_grad = rp_num(&t, r, "grad_rel");
        if (rp_num(&t, r, "truth_grad_rel") > worst_truth) worst_truth = rp_num(&t, r, "truth_grad_rel");
        bool ok = !strcmp(rp_cell(&t, r, "pass"), "PASS");
        rp_put(b, "| %s | %s | %s | %s | %s | %s | %s | %s / %s / %s | %s / %s | %s |\n", base ? base + 1 : f,
            rp_cell(&t, r, "method"), rp_cell(&t, r, "layers"), rp_cell(&t, r, "pass"), rp_cell(&t, r, "max_rel"),
            rp_cell(&t, r, "grad_rel"), bases, rp_cell(&t, r, "truth_out_rel"), rp_cell(&t, r, "truth_dx_rel"), tg,
            rp_cell(&t, r, "peft_truth_out_rel"), ptg, ok ? "" : rp_cell(&t, r, "max_rel_tensor"));
    }
    rp_put(b, "\nWorst gradient error against PEFT (dx and every parameter gradient): %.2e", worst_grad);
    if (worst_truth >= 0) rp_put(b, "; parameter gradients against the float64 truth: %.2e", worst_truth);
    rp_put(b, ".");
    rp_put(b, " %d of %d files pass at max|err|/max|ref| <= 1e-5 (`parity/parity.csv`).\n\n", pass, t.nrow);
    csv_free(&t);
}

