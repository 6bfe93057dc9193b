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

static void selection(sbuf *b, const char *dir, const char *x)
{
    csv_table t;
    char rel[64];
    if (!rp_exp_table(dir, x, "selection.csv", &t, rel, sizeof rel)) return;
    int n = 0, edge = 0, points = t.nrow;
    rp_put(b, "Chosen learning rates (`%s/selection.csv` has the validation accuracy of every grid point):\n\n"
              "| task | method | bases | r | params | chosen lr | validation acc. | grid | note |\n"
              "|---|---|---|---|---|---|---|---|---|\n",
           x);
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

static void accuracy(sbuf *b, const char *dir, const char *x)
{
    csv_table t;
    char rel[64];
    if (!rp_exp_table(dir, x, "summary.csv", &t, rel, sizeof rel)) {
        rp_put(b, "Not run.\n\n");
        return;
    }
    rp_put(b, "Test accuracy, mean ± 95%% t-interval over seeds (`%s`):\n\n"
              "| task | method | bases | r | trainable params | lr | seeds | test acc. | train acc. | train-test gap | "
              "steps | stopped early |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
           rel);
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

static void pairs(sbuf *b, const char *dir, const char *x)
{
    csv_table t;
    char rel[64];
    if (!rp_exp_table(dir, x, "pairs.csv", &t, rel, sizeof rel)) return;
    rp_put(b, "Budget-matched comparisons (`%s`; difference = RandLora - other in test accuracy, Welch "
              "95%% interval, Holm-adjusted p across the claim's pairs, TOST 90%% interval against ±0.01):\n\n"
              "| task | RandLora r (params) | other | budget difference | difference [95%% CI] | p (Holm) | 90%% CI | "
              "verdict |\n|---|---|---|---|---|---|---|---|\n",
           rel);
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
static void movement(sbuf *b, const char *dir, const char *x)
{
    csv_table t;
    char rel[64];
    if (!rp_exp_table(dir, x, "movement.csv", &t, rel, sizeof rel)) return;
    rp_put(b, "How far each method moves each adapted layer (`%s`, mean over seeds): relative change "
              "‖ΔW‖_F / ‖W0‖_F, numerical rank of ΔW (float32 tolerance), and k90, the fewest singular directions that "
              "hold 90%% of ‖ΔW‖_F². Full fine-tuning's k90 says how high-rank an update the task asks for.\n\n"
              "| task | method | bases | r | layer | shape | ‖ΔW‖/‖W0‖ | rank | k90 | effective rank |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n",
           rel);
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
    selection(b, dir, "finetune");
    accuracy(b, dir, "finetune");
    pairs(b, dir, "finetune");
    movement(b, dir, "finetune");
}

/* Full fine-tuning's k90 per task (mean over layers and seeds): how many
 * directions the update a task asks for needs, beside the layers' min_dim. */
static void high_rank(sbuf *b, const char *dir)
{
    csv_table t;
    if (!rp_table(dir, "vit/movement.csv", &t)) return;
    rp_put(b, "Does a task need a high-rank update? Full fine-tuning's ΔW per task, over the adapted linears of every "
              "block and every seed (`vit/movement.csv`): k90, the singular directions that hold 90%% of ‖ΔW‖_F², "
              "against min(d_out, d_in) = 64.\n\n| task | layers x seeds | k90 mean | k90 min-max | k90 ≥ 16 (a quarter "
              "of 64) | ‖ΔW‖/‖W0‖ mean |\n|---|---|---|---|---|---|\n");
    char tasks[8][32];
    int nt = 0;
    for (int r = 0; r < t.nrow; r++) {
        if (strcmp(rp_cell(&t, r, "method"), "full")) continue;
        int k = 0;
        while (k < nt && strcmp(tasks[k], rp_cell(&t, r, "task"))) k++;
        if (k == nt && nt < 8) snprintf(tasks[nt++], 32, "%s", rp_cell(&t, r, "task"));
    }
    for (int k = 0; k < nt; k++) {
        int n = 0, hi = 0;
        double sum = 0, mn = 1e9, mx = 0, rel = 0;
        for (int r = 0; r < t.nrow; r++) {
            if (strcmp(rp_cell(&t, r, "method"), "full") || strcmp(rp_cell(&t, r, "task"), tasks[k])) continue;
            double v = rp_num(&t, r, "k90");
            n++;
            sum += v;
            mn = fmin(mn, v);
            mx = fmax(mx, v);
            hi += v >= 16;
            rel += rp_num(&t, r, "rel_fro");
        }
        rp_put(b, "| %s | %d | %.1f | %.0f-%.0f | %d of %d | %.3f |\n", tasks[k], n, sum / n, mn, mx, hi, n, rel / n);
    }
    rp_put(b, "\n");
    csv_free(&t);
}

static void memory(sbuf *b, const char *dir)
{
    csv_table t;
    if (!rp_table(dir, "vit/memory.csv", &t)) return;
    int lo = -1, fu = -1;
    for (int r = 0; r < t.nrow; r++) {
        if (!strcmp(rp_cell(&t, r, "method"), "full")) fu = r;
        if (!strcmp(rp_cell(&t, r, "method"), "lora") && (lo < 0 || rp_num(&t, r, "params") > rp_num(&t, lo, "params"))) lo = r;
    }
    char ref[1200];
    rp_ref(ref, sizeof ref, "peft_mmqa_randlora_r32_mem peft_mmqa_lora_r32_mem fig3_vram_b32_randlora6 fig3_vram_b32_lora32");
    rp_put(b, "Memory of one whole fine-tuning step of the ViT (batch 128: weights, activation caches, adapters and their "
              "workspace, gradients, AdamW state; the shared bases counted once per model), peak tracked tensor bytes "
              "(`vit/memory.csv`). Reference: %s.\n\n"
              "| method | bases | r | params | peak tensor MB | of which shared bases MB | x LoRA r=%s | x full |\n"
              "|---|---|---|---|---|---|---|---|\n",
           ref, lo >= 0 ? rp_cell(&t, lo, "r") : "?");
    for (int r = 0; r < t.nrow; r++)
        rp_put(b, "| %s | %s | %s | %s | %.2f | %.3f | %.2f | %.2f |\n", rp_cell(&t, r, "method"), rp_cell(&t, r, "bases"),
               rp_cell(&t, r, "r"), rp_cell(&t, r, "params"), rp_num(&t, r, "peak_tensor_bytes") / 1e6,
               rp_num(&t, r, "shared_bases_bytes") / 1e6,
               lo >= 0 ? rp_num(&t, r, "peak_tensor_bytes") / rp_num(&t, lo, "peak_tensor_bytes") : NAN,
               fu >= 0 ? rp_num(&t, r, "peak_tensor_bytes") / rp_num(&t, fu, "peak_tensor_bytes") : NAN);
    rp_put(b, "\n");
    csv_free(&t);
}

void report_vit(sbuf *b, const char *dir)
{
    csv_table t;
    if (!rp_table(dir, "vit/backbone.csv", &t)) {
        rp_put(b, "Not run (`randlora sweep vit`).\n\n");
        return;
    }
    rp_put(b, "A ViT (28x28 images, patch 7: 16 tokens; dim 64, 4 heads, MLP 256, 4 pre-LN blocks) pretrained here on "
              "%s training examples of Fashion-MNIST classes 0-4 (%s steps; source test accuracy %s on %s test "
              "images; `vit/backbone.csv`), then adapted with adapters on q, k, v, o, fc1 and fc2 of every block (the "
              "paper's and PEFT's targets) under the same protocol as the MLP above. Target tasks: fmnist59 (classes "
              "5-9), digits (sklearn's handwritten digits at 28x28), rotated (classes 0-4 turned by 90°), permuted "
              "(patches and the pixels inside every patch shuffled: the frozen patch embedding no longer fits).\n\n",
           rp_cell(&t, 0, "n_train"), rp_cell(&t, 0, "steps"), rp_cell(&t, 0, "source_test_acc"), rp_cell(&t, 0, "n_test"));
    csv_free(&t);
    high_rank(b, dir);
    selection(b, dir, "vit");
    accuracy(b, dir, "vit");
    pairs(b, dir, "vit");
    memory(b, dir);
}

void report_teacher(sbuf *b, const char *dir)
{
    csv_table t;
    if (!rp_table(dir, "teacher/summary.csv", &t)) {
        rp_put(b, "Not run (`randlora sweep teacher`).\n\n");
        return;
    }
    rp_put(b, "The student starts from exactly the teacher's W0 (256x128), so the update to learn is exactly ΔW*; fresh "
              "random ±1 inputs every step (i.i.d. entries, covariance I: nothing to memorise), MSE loss, each method's learning rate chosen on a fixed "
              "validation sample, early stopping. Error reached, ‖ΔW - ΔW*‖_F / ‖ΔW*‖_F, mean ± 95%% interval over "
              "seeds, beside LoRA's Eckart-Young floor (`teacher/summary.csv`):\n\n| spectrum | method | r | params | "
              "lr | seeds | error | Eckart-Young floor | above the floor |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int r = 0; r < t.nrow; r++) {
        bool lora = !strcmp(rp_cell(&t, r, "method"), "lora");
        char fl[32] = "—", ab[32] = "—";
        if (lora) {
            snprintf(fl, sizeof fl, "%.4f", rp_num(&t, r, "eckart_young"));
            snprintf(ab, sizeof ab, "%+.4f", rp_num(&t, r, "above_floor"));
        }
        rp_put(b, "| %s | %s | %s | %s | %s | %s | %.4f ± %.4f | %s | %s |\n", rp_cell(&t, r, "spectrum"),
               rp_cell(&t, r, "method"), rp_cell(&t, r, "r"), rp_cell(&t, r, "params"), rp_cell(&t, r, "lr"),
               rp_cell(&t, r, "seeds"), rp_num(&t, r, "rel_error_mean"), rp_num(&t, r, "rel_error_ci95"), fl, ab);
    }
    rp_put(b, "\n");
    csv_free(&t);
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
