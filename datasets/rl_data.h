/* rl_data.h -- datasets for the experiments: Fashion-MNIST, sklearn digits,
 * a synthetic linear "teacher", and the plumbing around them (splits,
 * seeded shuffling, a fixed pixel permutation, minibatches).
 *
 * Everything is read from files that Debian packages install; nothing is
 * downloaded (datasets/README.md gives the provenance of each source).
 *
 *   source          file(s)                                        package
 *   Fashion-MNIST   /usr/share/datasets/fashion-mnist/             dataset-fashion-mnist
 *                   {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
 *   sklearn digits  /usr/lib/python3/dist-packages/sklearn/        python3-sklearn
 *                   datasets/data/digits.csv.gz
 *   teacher         generated from a seed                          (none)
 *
 * ---- the dataset type ----
 *
 * An rl_dataset holds n examples with `dim` input features each, row-major:
 * example i is x[i*dim .. i*dim + dim). It carries either or both of
 *   - labels y (n), each in [0, n_classes), when n_classes > 0 (else NULL);
 *   - float targets t (n, n_out), row-major, when n_out > 0 (else NULL).
 * Image sources set height * width == dim (0 and 0 for non-images).
 * Classification sources (Fashion-MNIST, digits) have y only; the teacher's
 * regression variant has t only, its classification variant both (t are the
 * teacher logits, y their argmax), so one experiment can report loss and
 * accuracy from the same data.
 *
 * Ownership: an rl_dataset owns x, y and t. Only functions named *_load,
 * *_new, *_take and *_split, and rl_teacher_sample, fill one; they
 * allocate all three with the
 * tracked allocator (rl_alloc, counted by rl_mem_current). rl_dataset_free
 * releases them and zeroes the struct; it accepts NULL and an all-zero
 * struct, so `rl_dataset d = {0}; ... rl_dataset_free(&d);` is always safe.
 * On failure every loader leaves *d all zero and holds nothing.
 *
 * Errors: input problems return an rl_status with a message (rl_errmsg())
 * naming the file, the line or example, and what is wrong. A missing data
 * file is RL_ENOTFOUND, and its message names the Debian package to install
 * and the environment variable that overrides the location.
 *
 * Determinism: every random choice takes an explicit seed and draws from
 * rl_mt (MT19937, lib/core/rl_rng.h); nothing reads the clock.
 */
#ifndef RL_DATA_H
#define RL_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rl_err.h"
#include "core/rl_rng.h"

typedef struct {
    int n;          /* examples                                              */
    int dim;        /* input features per example                            */
    int n_classes;  /* > 0: y holds labels in [0, n_classes); 0: y is NULL   */
    int n_out;      /* > 0: t holds (n, n_out) targets;       0: t is NULL   */
    int height;     /* image rows    (height * width == dim), 0 if no image  */
    int width;      /* image columns                                         */
    float *x;       /* (n, dim), owned                                       */
    int *y;         /* (n), owned, or NULL                                   */
    float *t;       /* (n, n_out), owned, or NULL                            */
} rl_dataset;

/* ---- dataset basics (rl_data.c) ---- */

/* A zero-filled dataset of n examples (n >= 0, dim >= 1, n_classes >= 0,
 * n_out >= 0). height/width are left 0. RL_EINVAL for bad sizes, RL_ENOMEM
 * when allocation fails (nothing is held then). */
rl_status rl_dataset_new(rl_dataset *d, int n, int dim, int n_classes, int n_out);

/* Release x, y, t and zero *d. NULL and an all-zero struct are accepted. */
void rl_dataset_free(rl_dataset *d);

/* Copy the examples idx[0..m) of src, in that order, into x (m, dim),
 * y (m) and t (m, n_out) (caller memory; y / t may be NULL to skip them,
 * and are ignored when src has no labels / targets). Allocates nothing.
 * RL_ASSERTs every index lies in [0, src->n). */
void rl_dataset_gather(const rl_dataset *src, const int *idx, int m,
                       float *x, int *y, float *t);

/* A new dataset holding copies of src's examples idx[0..m) in that order
 * (repeats allowed). RL_EINVAL for an index outside [0, src->n). */
rl_status rl_dataset_take(rl_dataset *out, const rl_dataset *src, const int *idx, int m);

/* Split src into two new datasets: shuffle the indices 0..n-1 with `seed`
 * (rl_shuffle), the first n_test go to *test and the rest to *train; each
 * part keeps src's order (the shuffle only chooses the members). 0 <= n_test
 * <= src->n. On failure both outputs are left zero. */
rl_status rl_dataset_split(rl_dataset *train, rl_dataset *test, const rl_dataset *src,
                           int n_test, uint64_t seed);

/* The validation split of the fine-tuning protocol: like rl_dataset_split,
 * but stratified by class when src has labels. Class c (n_c examples) gives
 * floor(n_c · n_val / n) examples to *val, and the n_val - Σ floor(...) left
 * over go one each to the classes with the largest remainders (ties: lower
 * class first), so every class keeps its share to within one example. The
 * members of each class are chosen by one rl_shuffle of that class's
 * indices with an rl_mt seeded with `seed` (classes in increasing order);
 * each part keeps src's order. Unlabelled data: rl_dataset_split. */
rl_status rl_dataset_split_stratified(rl_dataset *fit, rl_dataset *val, const rl_dataset *src, int n_val,
                                      uint64_t seed);

/* ---- seeded shuffling and the pixel permutation (rl_data.c) ---- */

/* A uniform integer in [0, n) (n >= 1) from g, without modulo bias
 * (rejection sampling on 32-bit words). */
uint32_t rl_mt_below(rl_mt *g, uint32_t n);

/* Fisher-Yates shuffle of idx[0..n) in place, drawing from g:
 * for i = n-1 down to 1, swap idx[i] and idx[rl_mt_below(g, i + 1)]. */
void rl_shuffle(int *idx, int n, rl_mt *g);

/* The fixed "permuted inputs" transform: perm[0..dim) becomes the shuffle
 * of the identity by rl_shuffle with an rl_mt seeded with `seed` -- the same
 * permutation for the same (dim, seed) on every machine. */
void rl_perm_make(int *perm, int dim, uint64_t seed);

/* true when perm[0..n) holds each of 0..n-1 exactly once. Allocates n
 * bytes of scratch (false also when that fails). */
bool rl_perm_is_bijection(const int *perm, int n);

/* Permute the features of every example in place: new x[i][j] =
 * old x[i][perm[j]]. perm has d->dim entries and must be a bijection
 * (RL_EINVAL otherwise). Allocates one row of scratch for the call.
 * height/width are kept: the result is still a (scrambled) image. */
rl_status rl_dataset_permute(rl_dataset *d, const int *perm);

/* ---- minibatches (rl_data.c) ---- */

/* Walks a dataset in minibatches, epoch after epoch. init allocates the
 * order (n ints); next copies each batch into caller buffers and allocates
 * nothing. With shuffle, each epoch visits the examples in a new order drawn
 * from the batcher's own rl_mt (seeded once in init), so a run is the same
 * for the same seed; without it, in index order. */
typedef struct {
    const rl_dataset *d;   /* not owned; must outlive the batcher        */
    int *order;            /* (d->n) visiting order of this epoch, owned */
    int batch;             /* examples per full batch                    */
    int pos;               /* next position in order                     */
    int epoch;             /* epochs completed                           */
    bool shuffle;
    bool drop_last;        /* skip a final batch shorter than `batch`    */
    rl_mt rng;
} rl_batcher;

/* batch >= 1. RL_EINVAL for a bad batch size or an empty dataset,
 * RL_ENOMEM if the order cannot be allocated. */
rl_status rl_batcher_init(rl_batcher *b, const rl_dataset *d, int batch, bool shuffle,
                          bool drop_last, uint64_t seed);
void rl_batcher_free(rl_batcher *b);

/* Copy the next batch into x (batch, dim), y (batch) and t (batch, n_out)
 * -- caller buffers sized for a full batch; y, t and idx may be NULL -- and
 * the dataset indices of its rows into idx (batch). Returns the number of
 * rows written (1..batch), or 0 at the end of an epoch; the call after a 0
 * starts the next epoch (reshuffled), so the loop is
 *     while ((m = rl_batcher_next(&b, x, y, NULL, NULL)) > 0) { ... }
 * Every index appears exactly once per epoch (less the short tail with
 * drop_last). */
int rl_batcher_next(rl_batcher *b, float *x, int *y, float *t, int *idx);

/* ---- images (rl_data.c) ---- */

typedef enum { RL_RESIZE_NEAREST = 0, RL_RESIZE_BILINEAR = 1 } rl_resize;

/* Resample one (src_h, src_w) image to (dst_h, dst_w), row-major, into dst
 * (caller memory, not aliasing src). Both modes follow
 * torch.nn.functional.interpolate(..., align_corners=False):
 *   nearest:  src index = floor(dst index · src / dst), clamped;
 *   bilinear: half-pixel centres, src = (i + 0.5) · src / dst - 0.5,
 *             clamped below at 0; the two neighbours are floor(src) and
 *             min(floor(src) + 1, size - 1), weighted linearly
 *             (computed as p + w (q - p), so a constant image stays exactly
 *             constant; values stay in the source range up to rounding). */
void rl_image_resize(float *dst, int dst_h, int dst_w, const float *src, int src_h, int src_w,
                     rl_resize mode);

/* ---- Fashion-MNIST (rl_idx.c) ---- */

#define RL_FMNIST_DIR "/usr/share/datasets/fashion-mnist"
#define RL_FMNIST_ENV "RL_FASHION_MNIST_DIR"

typedef enum { RL_SPLIT_TRAIN = 0, RL_SPLIT_TEST = 1 } rl_split;

/* Options shared by the labelled image loaders; all-zero means: every
 * class, every example, pixels scaled to [0, 1]. */
typedef struct {
    int n_keep;        /* 0: keep all classes; else keep the n_keep classes  */
    int keep[10];      /* keep[0..n_keep): original labels, relabelled to    */
                       /* 0..n_keep-1 in this order ({5,6,7,8,9} -> 0..4)    */
    int max_count;     /* 0: all; else the first max_count kept examples in  */
                       /* file order (deterministic; no shuffling)           */
    bool unscaled;     /* false: x = pixel / max (255 or 16) in [0, 1];      */
                       /* true: the raw integer values as floats             */
} rl_label_opts;

/* Load a Fashion-MNIST split: 28x28 images (dim 784, height = width = 28),
 * n_classes = 10 (or opts->n_keep). The directory is `dir` if not NULL,
 * else $RL_FASHION_MNIST_DIR if set and non-empty, else RL_FMNIST_DIR; the
 * files are train-* or t10k-* {images-idx3,labels-idx1}-ubyte.gz.
 * opts may be NULL (all defaults). See rl_idx_load for the checks. */
rl_status rl_fmnist_load(rl_dataset *d, rl_split split, const char *dir,
                         const rl_label_opts *opts);

/* Load an (images, labels) pair of IDX files (gzip, or uncompressed: zlib
 * reads both). Checks, each failing with the file's path in the message:
 *   - the file exists (RL_ENOTFOUND, with `hint` appended when not NULL);
 *   - magic 0x00000803 (images) / 0x00000801 (labels)          RL_EFORMAT;
 *   - images are 28 x 28                                        RL_EFORMAT;
 *   - both files hold the same number of examples               RL_EFORMAT;
 *   - every label is in 0..9 (the whole label file is checked)  RL_EFORMAT;
 *   - the data is complete (a short gzread, or a corrupt gzip
 *     stream, is reported with zlib's own message)              RL_EFORMAT;
 *   - no bytes follow the data, when the whole image file is read RL_EFORMAT;
 *   - opts: n_keep in 0..10, keep[] distinct labels in 0..9,
 *     max_count >= 0                                            RL_EINVAL.
 * With max_count, reading stops after the last example needed. */
rl_status rl_idx_load(rl_dataset *d, const char *images_path, const char *labels_path,
                      const rl_label_opts *opts, const char *hint);

/* ---- sklearn digits (rl_digits.c) ---- */

#define RL_DIGITS_CSV "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
/* where .ci/install-deps puts the same file (extracted from Debian's
 * python3-sklearn package without installing it), relative to the project
 * root; used when RL_DIGITS_CSV is absent */
#define RL_DIGITS_CACHE "datasets/cache/digits.csv.gz"
#define RL_DIGITS_ENV "RL_DIGITS_CSV"
#define RL_DIGITS_ROWS 1797

typedef struct {
    rl_label_opts label;   /* classes, max_count, scaling (x = v / 16)         */
    int side;              /* 0 or 8: native 8x8 (dim 64); else resample to   */
                           /* side x side (28 feeds the Fashion-MNIST model)   */
    rl_resize resize;      /* how to resample (default nearest)                */
    int expect_rows;       /* 0: the file must hold RL_DIGITS_ROWS rows; > 0:  */
                           /* exactly that many; < 0: any number >= 1          */
} rl_digits_opts;

/* Load the UCI optical digits as sklearn ships them: a gzip CSV without a
 * header, one example per line, 64 integers 0..16 (8x8 image, row-major)
 * then the label 0..9. The file is `path` if not NULL, else $RL_DIGITS_CSV
 * if set and non-empty, else RL_DIGITS_CSV, or RL_DIGITS_CACHE when that is
 * absent. Checks (RL_EFORMAT, naming the
 * file and line): exactly 65 fields per line, every field a decimal integer,
 * pixel values in 0..16, labels in 0..9, the row count (expect_rows). CRLF
 * line ends and a final newline are accepted; empty lines are not. Missing
 * file: RL_ENOTFOUND naming python3-sklearn and RL_DIGITS_CSV.
 * Scaling happens before resampling, so both modes keep x in [0, 1]. */
rl_status rl_digits_load(rl_dataset *d, const char *path, const rl_digits_opts *opts);

/* ---- the synthetic teacher (rl_teacher.c) ---- */

/* Spectrum of the required update ΔW* (k = 0 .. r-1, r = min(d_in, d_out)):
 *   FLAT       s_k = 1
 *   POWER      s_k = (k + 1)^-alpha            (alpha > 0)
 *   GEOMETRIC  s_k = alpha^k                   (0 < alpha <= 1)
 *   RANK_K     s_k = 1 for k < rank_k, else 0  (1 <= rank_k <= r)
 *   SPIKED     s_k = alpha for k < rank_k, else 1: a few large directions
 *              over a flat tail           (1 <= rank_k <= r, alpha >= 1)
 * each then multiplied by `scale`. */
typedef enum {
    RL_SPEC_FLAT = 0,
    RL_SPEC_POWER = 1,
    RL_SPEC_GEOMETRIC = 2,
    RL_SPEC_RANK_K = 3,
    RL_SPEC_SPIKED = 4
} rl_spectrum_kind;

typedef struct {
    int d_in, d_out;          /* >= 1                                         */
    rl_spectrum_kind spectrum;
    double alpha;             /* POWER / GEOMETRIC / SPIKED parameter         */
    int rank_k;               /* RANK_K parameter                             */
    double scale;             /* multiplies every s_k; 0 means 1              */
    double w0_std;            /* W0 entries ~ N(0, (w0_std² / d_in)); 0 means */
                              /* 1, i.e. std 1/sqrt(d_in)                     */
    uint64_t seed;
} rl_teacher_opts;

/* The teacher   y = x (W0 + ΔW*)ᵀ,   ΔW* = U diag(s) Vᵀ.
 * U (d_out, r) and V (d_in, r) have orthonormal columns, made by modified
 * Gram-Schmidt, applied twice ("twice is enough"), in double on Gaussian
 * draws; s (r) is sorted non-increasing. W0 is a random base (what an
 * experiment "pretrains" on); ΔW* is the update an adapter must learn.
 * All arrays owned, from rl_alloc; w0 and dw are float32 (dw rounded once
 * from the double product). The draws, in order, from one rl_mt seeded with
 * opts.seed: W0 (row-major), then U's Gaussian matrix, then V's. */
typedef struct {
    int d_in, d_out, r;       /* r = min(d_in, d_out)                          */
    float *w0;                /* (d_out, d_in)                                 */
    float *dw;                /* (d_out, d_in)  ΔW* = U diag(s) Vᵀ             */
    double *u;                /* (d_out, r) row-major, orthonormal columns     */
    double *v;                /* (d_in, r)  row-major, orthonormal columns     */
    double *s;                /* (r) singular values of ΔW*                    */
} rl_teacher;

/* RL_EINVAL for bad sizes or spectrum parameters, RL_ENOMEM on allocation
 * failure (nothing held then). Costs O(d_out · d_in · r). */
rl_status rl_teacher_new(rl_teacher *t, const rl_teacher_opts *opts);
void rl_teacher_free(rl_teacher *t);

/* n examples x ~ N(0, 1) (d_in features, rl_mt_normal from an rl_mt
 * seeded with seed) and targets t = x W*ᵀ (n, d_out), W* = W0 + ΔW* summed
 * in float32, the product by rl_gemm (float32, as a model would). With
 * classify, also y = argmax_j t[i][j] (n_classes = d_out, ties to the
 * lowest j). d->dim = d_in, d->n_out = d_out. */
rl_status rl_teacher_sample(rl_dataset *d, const rl_teacher *t, int n, bool classify,
                            uint64_t seed);

#endif
