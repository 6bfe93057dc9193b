/* report_finetune.c -- the fine-tuning and similarity sections of
 * REPORT.md: the protocol, the chosen learning rates, the accuracies, the
 * budget-matched comparisons, how far each method moves the model, and CKA.
 * Every number is read from results/finetune/ and results/similarity/. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

static void protocol_text(sbuf *b, const char *dir)
{
    csv_table t;
    if (!rp_table(dir, "finetune/base.csv", &t)) return;
    rp_put(b, "Protocol (`experiments/protocol.h`, the same for every method): a validation split carved out of task B's "
              "training data (stratified by class, fixed seed); the learning rate of every configuration chosen on "
              "validation accuracy from a half-decade grid that is extended past an edge that wins (alpha fixed: LoRA 2r, "
              "RandLora 20r, as the protocol explains); training to convergence by early stopping on validation with the "
              "best state restored; the test set evaluated once per final run; each seed changes the bases key, the "
              "adapter init, the head and the data order; comparisons only between budgets within 5%%, with Welch "
              "intervals, Holm's correction across a claim's pairs, and TOST (margin 1 accuracy point) where no "
              "difference is found. The pretrained MLP reaches %s test accuracy on task A (%s examples, %s epochs; "
              "`finetune/base.csv`).\n\n",
           rp_cell(&t, 0, "task_a_test_acc"), rp_cell(&t, 0, "task_a_examples"), rp_cell(&t, 0, "epochs"));
    csv_free(&t);
}

static void selection(sbuf *b, const char *dir)
{
    csv_table t;
    if (!rp_table(dir, "finetune/selection.csv", &t)) return;
    int n = 0, edge = 0, points = t.nrow;
    rp_put(b, "Chosen learning rates (`finetune/selection.csv` has the validation accuracy of every grid point):\n\n"
              "| task | method | bases | r | params | chosen lr | validation acc. | grid | note |\n"
              "|---|---|---|---|---|---|---|---|---|\n");
    for (int r = 0; r < t.nrow; r++) {
        if (atoi(rp_cell(&t, r, "chosen")) != 1) continue;
        n++;
        edge += rp_cell(&t, r, "note")[0] != '\0';
        double lo = 1e9, hi = 0;
        for (int s = 0; s < t.nrow; s++)
            if (!strcmp(rp_cell(&t, s, "task"), rp_cell(&t, r, "task")) &&
                !strcmp(rp_cell(&t, s, "method"), rp_cell(&t, r, "method")) &&
                !strcmp(rp_cell(&t, s, "bases"), rp_cell(&t, r, "bases")) && !strcmp(rp_cell(&t, s, "r"), rp_cell(&t, r, "r"))) {
                lo = fmin(lo, rp_num(&t, s, "lr"));
                hi = fmax(hi, rp_num(&t, s, "lr"));
            }
        rp_put(b, "| %s | %s | %s | %s | %s | %s | %.4f | %.3g .. %.3g | %s |\n", rp_cell(&t, r, "task"),
               rp_cell(&t, r, "method"), rp_cell(&t, r, "bases"), rp_cell(&t, r, "r"), rp_cell(&t, r, "params"),
               rp_cell(&t, r, "lr"), rp_num(&t, r, "val_acc_mean"), lo, hi, rp_cell(&t, r, "note"));
    }
    rp_put(b, "\n%d configurations, %d grid points trained for selection; %d choices on the grid's outer limit.\n\n", n,
           points, edge);
    csv_free(&t);
}

static void accuracy(sbuf *b, const char *dir)
{
    csv_table t;
    if (!rp_table(dir, "finetune/summary.csv", &t)) {
        rp_put(b, "Not run.\n\n");
        return;
    }
    rp_put(b, "Test accuracy on task B, mean ± 95%% t-interval over seeds (`finetune/summary.csv`):\n\n"
              "| task | method | bases | r | trainable params | lr | seeds | test acc. | train acc. | train-test gap | "
              "steps | stopped early |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int r = 0; r < t.nrow; r++)
        rp_put(b, "| %s | %s | %s | %s | %s | %s | %s | %.4f ± %.4f | %.4f | %.4f ± %.4f | %s | %s of %s |\n",
               rp_cell(&t, r, "task"), rp_cell(&t, r, "method"), rp_cell(&t, r, "bases"), rp_cell(&t, r, "r"),
               rp_cell(&t, r, "params"), rp_cell(&t, r, "lr"), rp_cell(&t, r, "seeds"), rp_num(&t, r, "test_acc_mean"),
               rp_num(&t, r, "test_acc_ci95"), rp_num(&t, r, "train_acc_mean"), rp_num(&t, r, "gap_mean"),
               rp_num(&t, r, "gap_ci95"), rp_cell(&t, r, "steps_mean"), rp_cell(&t, r, "stopped_early"),
               rp_cell(&t, r, "seeds"));
    rp_put(b, "\n");
    csv_free(&t);
}

static void pairs(sbuf *b, const char *dir)
{
    csv_table t;
    if (!rp_table(dir, "finetune/pairs.csv", &t)) return;
    rp_put(b, "Budget-matched comparisons (`finetune/pairs.csv`; difference = RandLora - other in test accuracy, Welch "
              "95%% interval, Holm-adjusted p across the claim's pairs, TOST 90%% interval against ±0.01):\n\n"
              "| task | RandLora r (params) | other | budget difference | difference [95%% CI] | p (Holm) | 90%% CI | "
              "verdict |\n|---|---|---|---|---|---|---|---|\n");
    for (int r = 0; r < t.nrow; r++) {
        bool m = atoi(rp_cell(&t, r, "matched")) == 1;
        if (!m) {
            rp_put(b, "| %s | %s (%s) | %s r=%s (%s) | %+.1f%% | — | — | — | no %s rank within 5%% |\n", rp_cell(&t, r, "task"),
                   rp_cell(&t, r, "a_r"), rp_cell(&t, r, "a_params"), rp_cell(&t, r, "b_method"), rp_cell(&t, r, "b_r"),
                   rp_cell(&t, r, "b_params"), 100 * rp_num(&t, r, "budget_rel"), rp_cell(&t, r, "b_method"));
            continue;
        }
        rp_put(b, "| %s | %s (%s) | %s r=%s (%s) | %+.1f%% | %+.4f [%+.4f; %+.4f] | %.3g | [%+.4f; %+.4f] | %s |\n",
               rp_cell(&t, r, "task"), rp_cell(&t, r, "a_r"), rp_cell(&t, r, "a_params"), rp_cell(&t, r, "b_method"),
               rp_cell(&t, r, "b_r"), rp_cell(&t, r, "b_params"), 100 * rp_num(&t, r, "budget_rel"), rp_num(&t, r, "diff"),
               rp_num(&t, r, "ci_lo"), rp_num(&t, r, "ci_hi"), rp_num(&t, r, "p_holm"), rp_num(&t, r, "ci90_lo"),
               rp_num(&t, r, "ci90_hi"), rp_cell(&t, r, "verdict"));
    }
    rp_put(b, "\n");
    csv_free(&t);
}

/* Mean over seeds of ||ΔW||_F / ||W0||_F, rank and k90 per config and layer. */
static void movement(sbuf *b, const char *dir)
{
    csv_table t;
    if (!rp_table(dir, "finetune/movement.csv", &t)) return;
    rp_put(b, "How far each method moves each adapted layer (`finetune/movement.csv`, mean over seeds): relative change "
              "‖ΔW‖_F / ‖W0‖_F, numerical rank of ΔW (float32 tolerance), and k90, the fewest singular directions that "
              "hold 90%% of ‖ΔW‖_F². Full fine-tuning's k90 says how high-rank an update the task asks for.\n\n"
              "| task | method | bases | r | layer | shape | ‖ΔW‖/‖W0‖ | rank | k90 | effective rank |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n");
    char *seen = calloc((size_t)t.nrow + 1, 1);
    for (int r = 0; seen && r < t.nrow; r++) {
        if (seen[r]) continue;
        double rel = 0, rk = 0, k90 = 0, eff = 0;
        int n = 0;
        for (int s = r; s < t.nrow; s++) {
            if (strcmp(rp_cell(&t, s, "task"), rp_cell(&t, r, "task")) || strcmp(rp_cell(&t, s, "method"), rp_cell(&t, r, "method")) ||
                strcmp(rp_cell(&t, s, "bases"), rp_cell(&t, r, "bases")) || strcmp(rp_cell(&t, s, "r"), rp_cell(&t, r, "r")) ||
                strcmp(rp_cell(&t, s, "layer"), rp_cell(&t, r, "layer")))
                continue;
            seen[s] = 1;
            rel += rp_num(&t, s, "rel_fro");
            rk += rp_num(&t, s, "rank");
            k90 += rp_num(&t, s, "k90");
            eff += rp_num(&t, s, "effective_rank");
            n++;
        }
        rp_put(b, "| %s | %s | %s | %s | %s | %sx%s | %.3f | %.1f | %.1f | %.1f |\n", rp_cell(&t, r, "task"),
               rp_cell(&t, r, "method"), rp_cell(&t, r, "bases"), rp_cell(&t, r, "r"), rp_cell(&t, r, "layer"),
               rp_cell(&t, r, "d_out"), rp_cell(&t, r, "d_in"), rel / n, rk / n, k90 / n, eff / n);
    }
    free(seen);
    rp_put(b, "\n");
    csv_free(&t);
}

void report_finetune(sbuf *b, const char *dir)
{
    protocol_text(b, dir);
    selection(b, dir);
    accuracy(b, dir);
    pairs(b, dir);
    movement(b, dir);
}

void report_similarity(sbuf *b, const char *dir)
{
    csv_table t;
    if (!rp_table(dir, "similarity/summary.csv", &t)) {
        rp_put(b, "Not run.\n\n");
        return;
    }
    rp_put(b, "Mean linear CKA over the hidden layers with the fully fine-tuned model of the same seed, on task B's test "
              "set, mean ± 95%% interval over seeds (`similarity/summary.csv`); the untouched pretrained model is the "
              "control:\n\n| task | model | r | params | seeds | CKA with full fine-tuning |\n|---|---|---|---|---|---|\n");
    for (int r = 0; r < t.nrow; r++)
        rp_put(b, "| %s | %s%s%s | %s | %s | %s | %.4f ± %.4f |\n", rp_cell(&t, r, "task"), rp_cell(&t, r, "method"),
               strcmp(rp_cell(&t, r, "bases"), "-") ? " " : "", strcmp(rp_cell(&t, r, "bases"), "-") ? rp_cell(&t, r, "bases") : "",
               rp_cell(&t, r, "r"), rp_cell(&t, r, "params"), rp_cell(&t, r, "seeds"), rp_num(&t, r, "cka_mean"),
               rp_num(&t, r, "cka_ci95"));
    rp_put(b, "\n");
    csv_free(&t);
}
