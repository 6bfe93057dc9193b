/* test_datasets.c -- datasets/: IDX (Fashion-MNIST) and digits CSV loaders
 * on hand-made files, the synthetic teacher, the pixel permutation, splits
 * and minibatches.
 *
 * Each test runs in a fresh mkdtemp directory under /tmp (.init makes it,
 * .fini empties and removes it). The IDX and CSV files are written by the
 * tests themselves through zlib's gzopen, byte by byte, so each corrupt case
 * shows exactly what the loader is fed. Tests that need the real data
 * (Debian package dataset-fashion-mnist; sklearn's digits.csv.gz from
 * python3-sklearn, or RL_DIGITS_CSV) skip with a message when it is absent.
 *
 * The teacher's singular values are checked without LAPACK: UᵀU = I and
 * VᵀV = I to 1e-10, ΔW* = U diag(s) Vᵀ entry by entry, and, from the float
 * ΔW* alone, ΔW*ᵀΔW* V = V diag(s²) and ‖ΔW*‖_F² = Σ s², which pin the
 * singular values down given orthonormal V.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "core/rl_err.h"
#include "core/rl_tensor.h"
#include "datasets/rl_data.h"
#include "rl_test.h"

static char g_dir[64];

static void ds_init(void)
{
    rl_test_tmpdir(g_dir, "rl_ds_");
    rl_test_mark();
}

static void ds_fini(void) { rl_test_rmdir(g_dir); /* the leak check runs inside each test (RL_TEST) */ }

TestSuite(datasets, .init = ds_init, .fini = ds_fini);

/* ---- helpers: files ---- */

static const char *path_in(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", g_dir, name);
    return buf;
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile f = gzopen(path, "wb");
    cr_assert_not_null(f, "gzopen %s", path);
    if (len > 0) cr_assert_eq(gzwrite(f, data, (unsigned)len), (int)len, "gzwrite %s", path);
    cr_assert_eq(gzclose(f), Z_OK, "gzclose %s", path);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The pixel byte of image i at position p in the hand-made files. */
static unsigned char pixel_of(int i, int p) { return (unsigned char)((i * 37 + p * 11) % 256); }

/* An IDX image file of `count` images, rows x cols, with `n_data` images of
 * data actually written (n_data < count makes short data). */
static void write_images(const char *name, uint32_t magic, int count, int rows, int cols,
                         int n_data)
{
    size_t px = (size_t)rows * cols, len = 16 + (size_t)n_data * px;
    unsigned char *b = malloc(len);
    cr_assert_not_null(b);
    put_be32(b, magic);
    put_be32(b + 4, (uint32_t)count);
    put_be32(b + 8, (uint32_t)rows);
    put_be32(b + 12, (uint32_t)cols);
    for (int i = 0; i < n_data; i++)
        for (size_t p = 0; p < px; p++) b[16 + i * px + p] = pixel_of(i, (int)p);
    char path[256];
    write_gz(path_in(path, sizeof path, name), b, len);
    free(b);
}

static void write_labels(const char *name, uint32_t magic, int count, const unsigned char *labels)
{
    unsigned char b[8 + 256];
    cr_assert(count <= 256);
    put_be32(b, magic);
    put_be32(b + 4, (uint32_t)count);
    memcpy(b + 8, labels, (size_t)count);
    char path[256];
    write_gz(path_in(path, sizeof path, name), b, 8 + (size_t)count);
}

#define IMG "t10k-images-idx3-ubyte.gz"
#define LAB "t10k-labels-idx1-ubyte.gz"

static const unsigned char LABELS6[6] = {0, 5, 1, 9, 5, 0};

/* A good 6-example test split in g_dir. */
static void write_good_split(void)
{
    write_images(IMG, 0x803, 6, 28, 28, 6);
    write_labels(LAB, 0x801, 6, LABELS6);
}

/* Load g_dir's test split; expect `code`, and a message containing each of
 * the NULL-terminated needles. */
static void expect_fmnist_error(rl_status code, const rl_label_opts *o, const char *needle1,
                                const char *needle2)
{
    rl_dataset d = {0};
    rl_errclear();
    rl_status st = rl_fmnist_load(&d, RL_SPLIT_TEST, g_dir, o);
    cr_assert_eq(st, code, "status %d (%s), want %d; message: %s", st, rl_strerror(st), code,
                 rl_errmsg());
    cr_assert_null(d.x, "a failed load must leave the dataset empty");
    cr_assert_eq(d.n, 0);
    if (needle1) cr_assert_not_null(strstr(rl_errmsg(), needle1), "message \"%s\" lacks \"%s\"",
                                    rl_errmsg(), needle1);
    if (needle2) cr_assert_not_null(strstr(rl_errmsg(), needle2), "message \"%s\" lacks \"%s\"",
                                    rl_errmsg(), needle2);
}

/* ---- IDX / Fashion-MNIST ---- */

RL_TEST(datasets, idx_good_file_loads)
{
    write_good_split();
    rl_dataset d = {0};
    cr_assert_eq(rl_fmnist_load(&d, RL_SPLIT_TEST, g_dir, NULL), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(d.n, 6);
    cr_assert_eq(d.dim, 784);
    cr_assert_eq(d.height, 28);
    cr_assert_eq(d.width, 28);
    cr_assert_eq(d.n_classes, 10);
    cr_assert_eq(d.n_out, 0);
    cr_assert_null(d.t);
    int bad = 0;
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(d.y[i], LABELS6[i], "label %d", i);
        for (int p = 0; p < 784; p++)
            bad += d.x[i * 784 + p] != (float)pixel_of(i, p) / 255.0f;
    }
    cr_assert_eq(bad, 0, "%d pixels differ from byte/255", bad);
    rl_dataset_free(&d);
    cr_assert_null(d.x);
    rl_dataset_free(&d); /* twice is harmless */
    rl_dataset_free(NULL);

    rl_label_opts raw = {.unscaled = true};
    cr_assert_eq(rl_fmnist_load(&d, RL_SPLIT_TEST, g_dir, &raw), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(d.x[5 * 784 + 700], (float)pixel_of(5, 700));
    float lo = 1e9f, hi = -1e9f;
    for (size_t k = 0; k < (size_t)d.n * d.dim; k++) {
        lo = fminf(lo, d.x[k]);
        hi = fmaxf(hi, d.x[k]);
    }
    cr_assert(lo == 0.0f && hi == 255.0f, "raw range [%g, %g]", lo, hi);
    rl_dataset_free(&d);
}

RL_TEST(datasets, idx_env_dir_override)
{
    write_good_split();
    cr_assert_eq(setenv(RL_FMNIST_ENV, g_dir, 1), 0);
    rl_dataset d = {0};
    cr_assert_eq(rl_fmnist_load(&d, RL_SPLIT_TEST, NULL, NULL), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(d.n, 6);
    rl_dataset_free(&d);
    /* the train split is not there: the message names the train file */
    cr_assert_eq(rl_fmnist_load(&d, RL_SPLIT_TRAIN, NULL, NULL), RL_ENOTFOUND);
    cr_assert_not_null(strstr(rl_errmsg(), "train-images-idx3-ubyte.gz"), "%s", rl_errmsg());
}

RL_TEST(datasets, idx_class_subset_and_max_count)
{
    write_good_split(); /* labels 0 5 1 9 5 0 */
    rl_label_opts o = {.n_keep = 2, .keep = {9, 5}};
    rl_dataset d = {0};
    cr_assert_eq(rl_fmnist_load(&d, RL_SPLIT_TEST, g_dir, &o), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(d.n, 3);
    cr_assert_eq(d.n_classes, 2);
    /* examples 1 (5), 3 (9), 4 (5), relabelled 9 -> 0, 5 -> 1 */
    const int src[3] = {1, 3, 4}, want[3] = {1, 0, 1};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(d.y[k], want[k], "label %d: %d", k, d.y[k]);
        cr_assert_eq(d.x[k * 784 + 3], (float)pixel_of(src[k], 3) / 255.0f, "pixels of %d", k);
    }
    rl_dataset_free(&d);

    rl_label_opts first = {.max_count = 4};
    cr_assert_eq(rl_fmnist_load(&d, RL_SPLIT_TEST, g_dir, &first), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(d.n, 4);
    cr_assert_eq(d.y[3], 9);
    rl_dataset_free(&d);

    rl_label_opts both = {.n_keep = 2, .keep = {0, 5}, .max_count = 3};
    cr_assert_eq(rl_fmnist_load(&d, RL_SPLIT_TEST, g_dir, &both), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(d.n, 3);
    cr_assert(d.y[0] == 0 && d.y[1] == 1 && d.y[2] == 1, "%d %d %d", d.y[0], d.y[1], d.y[2]);
    rl_dataset_free(&d);
}

RL_TEST(datasets, idx_bad_options)
{
    write_good_split();
    rl_label_opts twice = {.n_keep = 2, .keep = {3, 3}};
    expect_fmnist_error(RL_EINVAL, &twice, "kept twice", NULL);
    rl_label_opts range = {.n_keep = 1, .keep = {10}};
    expect_fmnist_error(RL_EINVAL, &range, "keep[0] = 10", NULL);
    rl_label_opts many = {.n_keep = 11};
    expect_fmnist_error(RL_EINVAL, &many, "n_keep", NULL);
    rl_label_opts neg = {.max_count = -1};
    expect_fmnist_error(RL_EINVAL, &neg, "max_count", NULL);
}

RL_TEST(datasets, idx_wrong_magic)
{
    write_images(IMG, 0x801, 6, 28, 28, 6);
    write_labels(LAB, 0x801, 6, LABELS6);
    expect_fmnist_error(RL_EFORMAT, NULL, IMG, "bad magic 0x00000801");

    write_images(IMG, 0x803, 6, 28, 28, 6);
    write_labels(LAB, 0x803, 6, LABELS6);
    expect_fmnist_error(RL_EFORMAT, NULL, LAB, "bad magic 0x00000803");
}

RL_TEST(datasets, idx_wrong_dims)
{
    write_images(IMG, 0x803, 6, 28, 27, 6);
    write_labels(LAB, 0x801, 6, LABELS6);
    expect_fmnist_error(RL_EFORMAT, NULL, IMG, "28x27, expected 28x28");
}

RL_TEST(datasets, idx_label_out_of_range)
{
    write_images(IMG, 0x803, 6, 28, 28, 6);
    const unsigned char lab[6] = {0, 1, 2, 10, 4, 5};
    write_labels(LAB, 0x801, 6, lab);
    expect_fmnist_error(RL_EFORMAT, NULL, LAB, "label 10 of example 3 is outside 0..9");
    /* even when that class is not kept */
    rl_label_opts o = {.n_keep = 1, .keep = {0}};
    expect_fmnist_error(RL_EFORMAT, &o, LAB, "label 10");
}

RL_TEST(datasets, idx_count_mismatch)
{
    write_images(IMG, 0x803, 6, 28, 28, 6);
    write_labels(LAB, 0x801, 5, LABELS6);
    expect_fmnist_error(RL_EFORMAT, NULL, "holds 6 images", "holds 5 labels");
}

RL_TEST(datasets, idx_short_data)
{
    /* complete gzip streams whose content stops early */
    write_images(IMG, 0x803, 6, 28, 28, 5);
    write_labels(LAB, 0x801, 6, LABELS6);
    expect_fmnist_error(RL_EFORMAT, NULL, IMG, "truncated");

    write_images(IMG, 0x803, 6, 28, 28, 6);
    write_labels(LAB, 0x801, 6, LABELS6);
    char p[256];
    const unsigned char hdr[12] = {0, 0, 8, 1, 0, 0, 0, 6, 0, 5, 1, 9}; /* 4 of 6 labels */
    write_gz(path_in(p, sizeof p, LAB), hdr, sizeof hdr);
    expect_fmnist_error(RL_EFORMAT, NULL, LAB, "truncated");

    const unsigned char half[10] = {0, 0, 8, 3, 0, 0, 0, 6, 0, 0}; /* header cut */
    write_gz(path_in(p, sizeof p, IMG), half, sizeof half);
    write_labels(LAB, 0x801, 6, LABELS6);
    expect_fmnist_error(RL_EFORMAT, NULL, IMG, "header");
}

RL_TEST(datasets, idx_truncated_gzip)
{
    write_good_split();
    char p[256];
    path_in(p, sizeof p, IMG);
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    /* cut the compressed stream in the middle: zlib reports an unexpected
     * end of file */
    cr_assert_eq(truncate(p, sb.st_size / 2), 0);
    expect_fmnist_error(RL_EFORMAT, NULL, IMG, "truncated");
    cr_assert_not_null(strstr(rl_errmsg(), "zlib"), "%s", rl_errmsg());

    /* corrupt bytes inside the deflate data */
    write_good_split();
    FILE *f = fopen(p, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(stat(p, &sb), 0);
    fseek(f, 20, SEEK_SET);
    for (int i = 0; i < 16; i++) fputc(0xff, f);
    fclose(f);
    rl_dataset d = {0};
    rl_status st = rl_fmnist_load(&d, RL_SPLIT_TEST, g_dir, NULL);
    cr_assert_eq(st, RL_EFORMAT, "status %d: %s", st, rl_errmsg());
    cr_assert_not_null(strstr(rl_errmsg(), IMG), "%s", rl_errmsg());
}

RL_TEST(datasets, idx_trailing_bytes)
{
    write_images(IMG, 0x803, 6, 28, 28, 6);
    unsigned char lab[8 + 7];
    put_be32(lab, 0x801);
    put_be32(lab + 4, 6);
    memcpy(lab + 8, LABELS6, 6);
    lab[14] = 0;
    char p[256];
    write_gz(path_in(p, sizeof p, LAB), lab, sizeof lab);
    expect_fmnist_error(RL_EFORMAT, NULL, LAB, "after the last example");
}

RL_TEST(datasets, idx_missing_file)
{
    write_images(IMG, 0x803, 6, 28, 28, 6); /* no labels file */
    expect_fmnist_error(RL_ENOTFOUND, NULL, LAB,
                        "install the Debian package dataset-fashion-mnist "
                        "(apt-get install dataset-fashion-mnist)");
    char p[256];
    unlink(path_in(p, sizeof p, IMG));
    expect_fmnist_error(RL_ENOTFOUND, NULL, IMG, RL_FMNIST_ENV);
}

RL_TEST(datasets, idx_uncompressed_file_reads)
{
    /* zlib reads a plain (not gzip) file as is */
    write_good_split();
    char p[256];
    path_in(p, sizeof p, LAB);
    unsigned char b[14];
    put_be32(b, 0x801);
    put_be32(b + 4, 6);
    memcpy(b + 8, LABELS6, 6);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, sizeof b, f), sizeof b);
    fclose(f);
    rl_dataset d = {0};
    cr_assert_eq(rl_fmnist_load(&d, RL_SPLIT_TEST, g_dir, NULL), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(d.y[3], 9);
    rl_dataset_free(&d);
}

RL_TEST(datasets, fmnist_real_test_split)
{
    const char *dir = getenv(RL_FMNIST_ENV);
    if (!dir || !dir[0]) dir = RL_FMNIST_DIR;
    char p[512];
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    if (access(p, R_OK) != 0) {
        cr_skip_test("%s absent: install the Debian package dataset-fashion-mnist", p);
        return;
    }
    rl_dataset d = {0};
    cr_assert_eq(rl_fmnist_load(&d, RL_SPLIT_TEST, NULL, NULL), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(d.n, 10000);
    cr_assert_eq(d.dim, 784);
    int count[10] = {0};
    for (int i = 0; i < d.n; i++) count[d.y[i]]++;
    for (int c = 0; c < 10; c++) cr_assert_eq(count[c], 1000, "class %d: %d", c, count[c]);
    cr_assert_eq(d.y[0], 9, "the first test image is an ankle boot (9), got %d", d.y[0]);
    double sum = 0;
    float lo = 1, hi = 0;
    for (size_t k = 0; k < (size_t)d.n * d.dim; k++) {
        sum += d.x[k];
        lo = fminf(lo, d.x[k]);
        hi = fmaxf(hi, d.x[k]);
    }
    cr_assert(lo == 0.0f && hi == 1.0f, "range [%g, %g]", lo, hi);
    double mean = sum / ((double)d.n * d.dim);
    /* the test split's mean pixel is 0.2868 (torchvision ToTensor) */
    cr_assert(fabs(mean - 0.2868) < 1e-3, "mean pixel %.5f", mean);
    rl_dataset_free(&d);

    /* classes 5-9 relabelled, the first 100 */
    rl_label_opts o = {.n_keep = 5, .keep = {5, 6, 7, 8, 9}, .max_count = 100};
    cr_assert_eq(rl_fmnist_load(&d, RL_SPLIT_TEST, NULL, &o), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(d.n, 100);
    cr_assert_eq(d.y[0], 4);
    for (int i = 0; i < d.n; i++) cr_assert(d.y[i] >= 0 && d.y[i] < 5);
    rl_dataset_free(&d);
}

/* ---- sklearn digits ---- */

/* Row i of the hand-made CSV: pixel j = (i * 5 + j) % 17, label i % 10. */
static int digit_pixel(int i, int j) { return (i * 5 + j) % 17; }

static void write_digits_csv(const char *name, int rows, const char *eol, const char *extra)
{
    char buf[8192];
    size_t len = 0;
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < 64; j++) len += (size_t)sprintf(buf + len, "%d,", digit_pixel(i, j));
        len += (size_t)sprintf(buf + len, "%d%s", i % 10, eol);
    }
    if (extra) len += (size_t)sprintf(buf + len, "%s", extra);
    char p[256];
    write_gz(path_in(p, sizeof p, name), buf, len);
}

static void expect_digits_error(rl_status code, const char *name, int expect_rows,
                                const char *needle)
{
    char p[256];
    rl_digits_opts o = {.expect_rows = expect_rows};
    rl_dataset d = {0};
    rl_errclear();
    rl_status st = rl_digits_load(&d, path_in(p, sizeof p, name), &o);
    cr_assert_eq(st, code, "status %d (%s), want %d; message: %s", st, rl_strerror(st), code,
                 rl_errmsg());
    cr_assert_null(d.x);
    cr_assert_not_null(strstr(rl_errmsg(), name), "message \"%s\" lacks the file", rl_errmsg());
    cr_assert_not_null(strstr(rl_errmsg(), needle), "message \"%s\" lacks \"%s\"", rl_errmsg(),
                       needle);
}

RL_TEST(datasets, digits_tiny_csv_parses)
{
    write_digits_csv("d.csv.gz", 12, "\n", NULL);
    char p[256];
    rl_digits_opts o = {.expect_rows = 12};
    rl_dataset d = {0};
    cr_assert_eq(rl_digits_load(&d, path_in(p, sizeof p, "d.csv.gz"), &o), RL_OK, "%s",
                 rl_errmsg());
    cr_assert_eq(d.n, 12);
    cr_assert_eq(d.dim, 64);
    cr_assert(d.height == 8 && d.width == 8);
    cr_assert_eq(d.n_classes, 10);
    int bad = 0;
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(d.y[i], i % 10);
        for (int j = 0; j < 64; j++) bad += d.x[i * 64 + j] != (float)digit_pixel(i, j) / 16.0f;
    }
    cr_assert_eq(bad, 0, "%d values differ from v/16", bad);
    rl_dataset_free(&d);

    /* CRLF line ends, env override, subset + max_count */
    write_digits_csv("crlf.csv.gz", 12, "\r\n", NULL);
    cr_assert_eq(setenv(RL_DIGITS_ENV, path_in(p, sizeof p, "crlf.csv.gz"), 1), 0);
    rl_digits_opts s = {.expect_rows = -1,
                        .label = {.n_keep = 2, .keep = {3, 1}, .max_count = 3, .unscaled = true}};
    cr_assert_eq(rl_digits_load(&d, NULL, &s), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(d.n, 3); /* rows 1 (1), 3 (3), 11 (1) */
    cr_assert(d.y[0] == 1 && d.y[1] == 0 && d.y[2] == 1, "%d %d %d", d.y[0], d.y[1], d.y[2]);
    cr_assert_eq(d.x[2 * 64 + 7], (float)digit_pixel(11, 7));
    rl_dataset_free(&d);

    /* no newline after the last row */
    char last[512];
    size_t len = 0;
    for (int j = 0; j < 64; j++) len += (size_t)sprintf(last + len, "%d,", j % 17);
    sprintf(last + len, "7");
    write_digits_csv("nonl.csv.gz", 2, "\n", last);
    rl_digits_opts three = {.expect_rows = 3};
    cr_assert_eq(rl_digits_load(&d, path_in(p, sizeof p, "nonl.csv.gz"), &three), RL_OK, "%s",
                 rl_errmsg());
    cr_assert_eq(d.y[2], 7);
    cr_assert_eq(d.x[2 * 64 + 63], (float)(63 % 17) / 16.0f);
    rl_dataset_free(&d);
}

RL_TEST(datasets, digits_bad_field_count)
{
    write_digits_csv("f.csv.gz", 3, "\n", "1,2,3\n");
    expect_digits_error(RL_EFORMAT, "f.csv.gz", -1, ":4: 3 fields, expected 65");
    write_digits_csv("g.csv.gz", 3, "\n",
                     "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,"
                     "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,2\n");
    expect_digits_error(RL_EFORMAT, "g.csv.gz", -1, "66 fields");
    write_digits_csv("e.csv.gz", 2, "\n", "\n");
    expect_digits_error(RL_EFORMAT, "e.csv.gz", -1, ":3: empty line");
    write_digits_csv("x.csv.gz", 2, "\n", "0,a");
    expect_digits_error(RL_EFORMAT, "x.csv.gz", -1, "field 2 (\"a\") is not a non-negative integer");
    write_digits_csv("m.csv.gz", 2, "\n", "-1,0");
    expect_digits_error(RL_EFORMAT, "m.csv.gz", -1, "field 1 (\"-1\")");
    write_digits_csv("h.csv.gz", 2, "\n", "0,,1");
    expect_digits_error(RL_EFORMAT, "h.csv.gz", -1, "field 2 (\"\")");
}

RL_TEST(datasets, digits_bad_values)
{
    char row[512];
    size_t len = 0;
    for (int j = 0; j < 64; j++) len += (size_t)sprintf(row + len, "%d,", j == 10 ? 17 : 0);
    sprintf(row + len, "3\n");
    write_digits_csv("v.csv.gz", 2, "\n", row);
    expect_digits_error(RL_EFORMAT, "v.csv.gz", -1, ":3: pixel 11 = 17 is outside 0..16");

    len = 0;
    for (int j = 0; j < 64; j++) len += (size_t)sprintf(row + len, "16,");
    sprintf(row + len, "11\n");
    write_digits_csv("l.csv.gz", 1, "\n", row);
    expect_digits_error(RL_EFORMAT, "l.csv.gz", -1, ":2: label 11 is outside 0..9");
}

RL_TEST(datasets, digits_row_count_and_missing)
{
    write_digits_csv("r.csv.gz", 5, "\n", NULL);
    expect_digits_error(RL_EFORMAT, "r.csv.gz", 0, "5 rows, expected 1797");
    expect_digits_error(RL_EFORMAT, "r.csv.gz", 6, "5 rows, expected 6");
    write_digits_csv("z.csv.gz", 0, "\n", NULL);
    expect_digits_error(RL_EFORMAT, "z.csv.gz", -1, "no rows");
    expect_digits_error(RL_ENOTFOUND, "nothere.csv.gz", -1, "python3-sklearn");
    cr_assert_not_null(strstr(rl_errmsg(), RL_DIGITS_ENV), "%s", rl_errmsg());

    char p[256];
    rl_digits_opts o = {.side = -3};
    rl_dataset d = {0};
    cr_assert_eq(rl_digits_load(&d, path_in(p, sizeof p, "r.csv.gz"), &o), RL_EINVAL);
}

RL_TEST(datasets, digits_upsample_28)
{
    write_digits_csv("u.csv.gz", 4, "\n", NULL);
    char p[256];
    for (int mode = 0; mode < 2; mode++) {
        rl_digits_opts o = {.expect_rows = 4, .side = 28, .resize = (rl_resize)mode};
        rl_dataset d = {0};
        cr_assert_eq(rl_digits_load(&d, path_in(p, sizeof p, "u.csv.gz"), &o), RL_OK, "%s",
                     rl_errmsg());
        cr_assert(d.dim == 784 && d.height == 28 && d.width == 28);
        for (int i = 0; i < 4; i++) {
            float lo = 1e9f, hi = -1e9f, slo = 1e9f, shi = -1e9f;
            for (int j = 0; j < 64; j++) {
                slo = fminf(slo, (float)digit_pixel(i, j) / 16);
                shi = fmaxf(shi, (float)digit_pixel(i, j) / 16);
            }
            for (int k = 0; k < 784; k++) {
                lo = fminf(lo, d.x[i * 784 + k]);
                hi = fmaxf(hi, d.x[i * 784 + k]);
            }
            cr_assert(lo >= slo - 1e-6f && hi <= shi + 1e-6f, "mode %d: [%g, %g] outside [%g, %g]",
                      mode, lo, hi, slo, shi);
            /* the top-left corner maps onto source pixel (0, 0) in both modes */
            cr_assert_float_eq(d.x[i * 784], (float)digit_pixel(i, 0) / 16, 1e-6);
        }
        if (mode == RL_RESIZE_NEAREST) /* dst (27, 27) <- src floor(27*8/28) = 7 */
            cr_assert_eq(d.x[783], (float)digit_pixel(0, 63) / 16);
        rl_dataset_free(&d);
    }
}

RL_TEST(datasets, image_resize_matches_torch)
{
    /* torch.nn.functional.interpolate(tensor([[[[0., 1.], [2., 3.]]]]),
     * size=(4, 4), mode="bilinear", align_corners=False) */
    const float src[4] = {0, 1, 2, 3};
    const float bil[16] = {0.0f, 0.25f, 0.75f, 1.0f, 0.5f, 0.75f, 1.25f, 1.5f,
                           1.5f, 1.75f, 2.25f, 2.5f, 2.0f, 2.25f, 2.75f, 3.0f};
    const float near[16] = {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3};
    float out[16];
    rl_image_resize(out, 4, 4, src, 2, 2, RL_RESIZE_BILINEAR);
    for (int k = 0; k < 16; k++) cr_assert_eq(out[k], bil[k], "bilinear[%d] = %g, want %g", k, out[k], bil[k]);
    rl_image_resize(out, 4, 4, src, 2, 2, RL_RESIZE_NEAREST);
    for (int k = 0; k < 16; k++) cr_assert_eq(out[k], near[k], "nearest[%d] = %g", k, out[k]);
    /* a constant image stays constant; same size is the identity */
    float c[64], big[784];
    for (int k = 0; k < 64; k++) c[k] = 0.625f;
    rl_image_resize(big, 28, 28, c, 8, 8, RL_RESIZE_BILINEAR);
    for (int k = 0; k < 784; k++) cr_assert_eq(big[k], 0.625f, "constant image at %d: %g", k, big[k]);
    for (int k = 0; k < 64; k++) c[k] = (float)(k % 5) / 4;
    rl_image_resize(big, 28, 28, c, 8, 8, RL_RESIZE_BILINEAR);
    for (int k = 0; k < 784; k++) cr_assert(big[k] >= 0 && big[k] <= 1, "out of [0,1] at %d: %g", k, big[k]);
    for (int k = 0; k < 64; k++) c[k] = (float)k;
    rl_image_resize(big, 8, 8, c, 8, 8, RL_RESIZE_BILINEAR);
    for (int k = 0; k < 64; k++) cr_assert_eq(big[k], c[k]);
}

RL_TEST(datasets, digits_real_file)
{
    const char *p = getenv(RL_DIGITS_ENV);
    if (!p || !p[0]) p = RL_DIGITS_CSV;
    if (access(p, R_OK) != 0) {
        cr_skip_test("%s absent: it comes with python3-sklearn; set %s to a copy to run this", p,
                     RL_DIGITS_ENV);
        return;
    }
    rl_dataset d = {0};
    cr_assert_eq(rl_digits_load(&d, p, NULL), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(d.n, 1797);
    cr_assert_eq(d.dim, 64);
    const int want[10] = {178, 182, 177, 183, 181, 182, 181, 179, 174, 180};
    int count[10] = {0};
    for (int i = 0; i < d.n; i++) count[d.y[i]]++;
    for (int c = 0; c < 10; c++) cr_assert_eq(count[c], want[c], "class %d: %d", c, count[c]);
    cr_assert_eq(d.y[0], 0);
    cr_assert_eq(d.x[2], 5.0f / 16, "digits[0][0][2] is 5"); /* sklearn: data[0][2] == 5 */
    rl_dataset_free(&d);
}

/* ---- teacher ---- */

/* max |(QᵀQ)_ab - δ_ab| for q (m, r) row-major */
static double ortho_err(const double *q, int m, int r)
{
    double worst = 0;
    for (int a = 0; a < r; a++)
        for (int b = 0; b < r; b++) {
            double dot = 0;
            for (int i = 0; i < m; i++) dot += q[i * r + a] * q[i * r + b];
            worst = fmax(worst, fabs(dot - (a == b)));
        }
    return worst;
}

static void check_teacher(int d_out, int d_in, rl_teacher_opts o, const double *s_want)
{
    o.d_out = d_out;
    o.d_in = d_in;
    rl_teacher t;
    cr_assert_eq(rl_teacher_new(&t, &o), RL_OK, "%s", rl_errmsg());
    int r = d_in < d_out ? d_in : d_out;
    cr_assert_eq(t.r, r);
    double eu = ortho_err(t.u, d_out, r), ev = ortho_err(t.v, d_in, r);
    cr_assert(eu <= 1e-10 && ev <= 1e-10, "|UᵀU - I| = %.3g, |VᵀV - I| = %.3g", eu, ev);
    for (int k = 0; k < r; k++)
        cr_assert(fabs(t.s[k] - s_want[k]) <= 1e-15 * fmax(1, s_want[k]), "s[%d] = %.17g, want %.17g",
                  k, t.s[k], s_want[k]);

    /* ΔW* = U diag(s) Vᵀ, entry by entry (dw is float32: one rounding) */
    double worst = 0, scale = 0, fro2 = 0, s2 = 0;
    for (int k = 0; k < r; k++) s2 += s_want[k] * s_want[k];
    for (int i = 0; i < d_out; i++)
        for (int j = 0; j < d_in; j++) {
            double acc = 0;
            for (int k = 0; k < r; k++) acc += t.u[i * r + k] * s_want[k] * t.v[j * r + k];
            double w = t.dw[i * d_in + j];
            worst = fmax(worst, fabs(w - acc));
            scale = fmax(scale, fabs(acc));
            fro2 += w * w;
        }
    cr_assert(worst <= 1e-7 * fmax(scale, 1e-30), "ΔW* vs U diag(s) Vᵀ: %.3g (max %.3g)", worst, scale);
    cr_assert(fabs(fro2 - s2) <= 1e-6 * s2, "‖ΔW*‖_F² = %.9g, Σ s² = %.9g", fro2, s2);

    /* from the float ΔW* alone: ΔW*ᵀ ΔW* v_k = s_k² v_k */
    double *mv = malloc(sizeof(double) * (size_t)d_out), *w = malloc(sizeof(double) * (size_t)d_in);
    double smax2 = s_want[0] * s_want[0], res = 0;
    for (int k = 0; k < r; k++) {
        for (int i = 0; i < d_out; i++) { /* mv = ΔW* v_k */
            double acc = 0;
            for (int j = 0; j < d_in; j++) acc += (double)t.dw[i * d_in + j] * t.v[j * r + k];
            mv[i] = acc;
        }
        for (int j = 0; j < d_in; j++) { /* w = ΔW*ᵀ mv */
            double acc = 0;
            for (int i = 0; i < d_out; i++) acc += (double)t.dw[i * d_in + j] * mv[i];
            w[j] = acc;
            res = fmax(res, fabs(acc - s_want[k] * s_want[k] * t.v[j * r + k]));
        }
    }
    free(mv);
    free(w);
    cr_assert(res <= 1e-6 * smax2, "ΔW*ᵀΔW* V - V diag(s²): %.3g (s_max² = %.3g)", res, smax2);

    /* W0 ~ N(0, 1/d_in): sample variance · d_in near 1 (when there are
     * enough entries for the estimate to mean something) */
    if (d_out * d_in >= 400) {
        double v0 = 0;
        for (int k = 0; k < d_out * d_in; k++) v0 += (double)t.w0[k] * t.w0[k];
        v0 = v0 / (d_out * d_in) * d_in;
        cr_assert(fabs(v0 - 1) < 0.2, "var(W0) · d_in = %.3f", v0);
    }
    rl_teacher_free(&t);
    cr_assert_null(t.w0);
}

RL_TEST(datasets, teacher_spectra_exact)
{
    double s[48];
    for (int k = 0; k < 48; k++) s[k] = 1;
    check_teacher(32, 48, (rl_teacher_opts){.spectrum = RL_SPEC_FLAT, .seed = 1}, s);
    check_teacher(48, 20, (rl_teacher_opts){.spectrum = RL_SPEC_FLAT, .seed = 2}, s);

    for (int k = 0; k < 48; k++) s[k] = 0.5 * pow(k + 1, -1.5);
    check_teacher(40, 40,
                  (rl_teacher_opts){.spectrum = RL_SPEC_POWER, .alpha = 1.5, .scale = 0.5, .seed = 3},
                  s);
    for (int k = 0; k < 48; k++) s[k] = pow(0.8, k);
    check_teacher(24, 36, (rl_teacher_opts){.spectrum = RL_SPEC_GEOMETRIC, .alpha = 0.8, .seed = 4}, s);
    for (int k = 0; k < 48; k++) s[k] = 2.0 * (k < 5);
    check_teacher(30, 25,
                  (rl_teacher_opts){.spectrum = RL_SPEC_RANK_K, .rank_k = 5, .scale = 2, .seed = 5}, s);
    s[0] = 1;
    check_teacher(1, 7, (rl_teacher_opts){.spectrum = RL_SPEC_FLAT, .seed = 6}, s);
}

RL_TEST(datasets, teacher_rank_k_null_space)
{
    /* rank 3: ΔW* x = 0 for x orthogonal to v_0..v_2, e.g. any later v_k */
    rl_teacher_opts o = {.d_in = 16, .d_out = 12, .spectrum = RL_SPEC_RANK_K, .rank_k = 3, .seed = 9};
    rl_teacher t;
    cr_assert_eq(rl_teacher_new(&t, &o), RL_OK, "%s", rl_errmsg());
    double worst = 0;
    for (int k = 3; k < t.r; k++)
        for (int i = 0; i < 12; i++) {
            double acc = 0;
            for (int j = 0; j < 16; j++) acc += (double)t.dw[i * 16 + j] * t.v[j * t.r + k];
            worst = fmax(worst, fabs(acc));
        }
    cr_assert(worst < 1e-6, "ΔW* v_k for k >= 3: %.3g", worst);
    rl_teacher_free(&t);
}

RL_TEST(datasets, teacher_deterministic)
{
    rl_teacher_opts o = {.d_in = 20, .d_out = 10, .spectrum = RL_SPEC_POWER, .alpha = 1, .seed = 42};
    rl_teacher a, b, c;
    cr_assert_eq(rl_teacher_new(&a, &o), RL_OK);
    cr_assert_eq(rl_teacher_new(&b, &o), RL_OK);
    o.seed = 43;
    cr_assert_eq(rl_teacher_new(&c, &o), RL_OK);
    cr_assert_eq(memcmp(a.w0, b.w0, 200 * sizeof(float)), 0);
    cr_assert_eq(memcmp(a.dw, b.dw, 200 * sizeof(float)), 0);
    cr_assert_eq(memcmp(a.u, b.u, 100 * sizeof(double)), 0);
    cr_assert_neq(memcmp(a.dw, c.dw, 200 * sizeof(float)), 0);
    cr_assert_neq(memcmp(a.w0, c.w0, 200 * sizeof(float)), 0);

    rl_dataset x1, x2;
    cr_assert_eq(rl_teacher_sample(&x1, &a, 50, false, 7), RL_OK);
    cr_assert_eq(rl_teacher_sample(&x2, &b, 50, false, 7), RL_OK);
    cr_assert_eq(memcmp(x1.x, x2.x, 50 * 20 * sizeof(float)), 0);
    cr_assert_eq(memcmp(x1.t, x2.t, 50 * 10 * sizeof(float)), 0);
    rl_dataset_free(&x1);
    rl_dataset_free(&x2);
    rl_teacher_free(&a);
    rl_teacher_free(&b);
    rl_teacher_free(&c);
}

RL_TEST(datasets, teacher_sample_targets)
{
    rl_teacher_opts o = {.d_in = 24, .d_out = 6, .spectrum = RL_SPEC_FLAT, .seed = 11};
    rl_teacher t;
    cr_assert_eq(rl_teacher_new(&t, &o), RL_OK);
    rl_dataset d;
    cr_assert_eq(rl_teacher_sample(&d, &t, 300, true, 12), RL_OK, "%s", rl_errmsg());
    cr_assert(d.n == 300 && d.dim == 24 && d.n_out == 6 && d.n_classes == 6);
    cr_assert_not_null(d.y);
    cr_assert_not_null(d.t);
    double worst = 0, xs = 0, x2 = 0;
    int hist[6] = {0};
    for (int i = 0; i < 300; i++) {
        int best = 0;
        for (int o2 = 0; o2 < 6; o2++) {
            double acc = 0;
            for (int j = 0; j < 24; j++)
                acc += (double)d.x[i * 24 + j] * ((double)t.w0[o2 * 24 + j] + t.dw[o2 * 24 + j]);
            worst = fmax(worst, fabs(acc - d.t[i * 6 + o2]));
            if (d.t[i * 6 + o2] > d.t[i * 6 + best]) best = o2;
        }
        cr_assert_eq(d.y[i], best, "argmax of example %d", i);
        hist[best]++;
    }
    for (int k = 0; k < 300 * 24; k++) {
        xs += d.x[k];
        x2 += (double)d.x[k] * d.x[k];
    }
    cr_assert(worst < 1e-4, "targets differ from x (W0 + ΔW*)ᵀ by %.3g", worst);
    cr_assert(fabs(xs / 7200) < 0.05 && fabs(x2 / 7200 - 1) < 0.1, "x mean %.3f, E x² %.3f",
              xs / 7200, x2 / 7200);
    for (int c = 0; c < 6; c++) cr_assert(hist[c] > 10, "class %d has %d examples", c, hist[c]);
    rl_dataset_free(&d);

    cr_assert_eq(rl_teacher_sample(&d, &t, 10, false, 1), RL_OK);
    cr_assert_null(d.y);
    cr_assert_eq(d.n_classes, 0);
    rl_dataset_free(&d);
    cr_assert_eq(rl_teacher_sample(&d, &t, -1, false, 1), RL_EINVAL);
    rl_teacher_free(&t);
}

RL_TEST(datasets, teacher_bad_options)
{
    rl_teacher t;
    const rl_teacher_opts bad[] = {
        {.d_in = 0, .d_out = 4},
        {.d_in = 4, .d_out = -1},
        {.d_in = 4, .d_out = 4, .spectrum = RL_SPEC_POWER, .alpha = 0},
        {.d_in = 4, .d_out = 4, .spectrum = RL_SPEC_GEOMETRIC, .alpha = 1.5},
        {.d_in = 4, .d_out = 6, .spectrum = RL_SPEC_RANK_K, .rank_k = 5},
        {.d_in = 4, .d_out = 6, .spectrum = RL_SPEC_RANK_K, .rank_k = 0},
        {.d_in = 4, .d_out = 4, .scale = -1},
        {.d_in = 4, .d_out = 4, .w0_std = NAN},
        {.d_in = 4, .d_out = 4, .spectrum = (rl_spectrum_kind)9},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(rl_teacher_new(&t, &bad[i]), RL_EINVAL, "case %zu accepted", i);
        cr_assert_null(t.w0);
    }
    cr_assert_eq(rl_teacher_new(&t, NULL), RL_EINVAL);
    rl_teacher_free(&t);
    rl_teacher_free(NULL);
}

/* ---- permutation, shuffling, splits, minibatches ---- */

RL_TEST(datasets, perm_bijection_deterministic)
{
    int a[784], b[784], c[784];
    rl_perm_make(a, 784, 2024);
    rl_perm_make(b, 784, 2024);
    rl_perm_make(c, 784, 2025);
    cr_assert(rl_perm_is_bijection(a, 784));
    cr_assert(rl_perm_is_bijection(c, 784));
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "same seed, different permutation");
    cr_assert_neq(memcmp(a, c, sizeof a), 0, "different seeds, same permutation");
    int fixed = 0;
    for (int j = 0; j < 784; j++) fixed += a[j] == j;
    cr_assert(fixed < 10, "%d fixed points: not shuffled", fixed);
    b[5] = b[6];
    cr_assert_not(rl_perm_is_bijection(b, 784));
    b[5] = 784;
    cr_assert_not(rl_perm_is_bijection(b, 784));

    rl_dataset d;
    cr_assert_eq(rl_dataset_new(&d, 3, 784, 10, 0), RL_OK);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 784; j++) d.x[i * 784 + j] = (float)(i * 1000 + j);
    cr_assert_eq(rl_dataset_permute(&d, a), RL_OK);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 784; j++)
            cr_assert_eq(d.x[i * 784 + j], (float)(i * 1000 + a[j]), "x[%d][%d]", i, j);
    cr_assert_eq(rl_dataset_permute(&d, b), RL_EINVAL);
    cr_assert_not_null(strstr(rl_errmsg(), "bijection"));
    rl_dataset_free(&d);
}

RL_TEST(datasets, mt_below_in_range)
{
    rl_mt g;
    rl_mt_seed(&g, 3);
    int hist[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint32_t v = rl_mt_below(&g, 7);
        cr_assert(v < 7);
        hist[v]++;
    }
    for (int k = 0; k < 7; k++) cr_assert(abs(hist[k] - 10000) < 500, "bucket %d: %d", k, hist[k]);
    for (int i = 0; i < 100; i++) cr_assert_eq(rl_mt_below(&g, 1), 0u);
}

/* A dataset whose rows record their own index: x[i][j] = i + j/100,
 * y[i] = i % 3, t[i] = (-i, 2i). */
static void index_dataset(rl_dataset *d, int n)
{
    cr_assert_eq(rl_dataset_new(d, n, 4, 3, 2), RL_OK);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < 4; j++) d->x[i * 4 + j] = (float)i + (float)j / 100;
        d->y[i] = i % 3;
        d->t[i * 2] = (float)-i;
        d->t[i * 2 + 1] = (float)(2 * i);
    }
}

RL_TEST(datasets, batches_cover_each_index_once)
{
    rl_dataset d;
    index_dataset(&d, 103);
    rl_batcher b;
    cr_assert_eq(rl_batcher_init(&b, &d, 10, true, false, 77), RL_OK);
    float x[50 * 4], t[10 * 2]; /* sized for the largest batch below (50) */
    int y[10], idx[50], first[3][10];
    for (int e = 0; e < 3; e++) {
        int seen[103] = {0}, m, batches = 0, rows = 0;
        while ((m = rl_batcher_next(&b, x, y, t, idx)) > 0) {
            cr_assert(m == 10 || (m == 3 && batches == 10), "batch %d has %d rows", batches, m);
            if (batches == 0) memcpy(first[e], idx, sizeof first[e]);
            for (int k = 0; k < m; k++) {
                int i = idx[k];
                seen[i]++;
                cr_assert_eq(x[k * 4 + 2], (float)i + 0.02f, "row %d of batch is not example %d", k, i);
                cr_assert_eq(y[k], i % 3);
                cr_assert(t[k * 2] == (float)-i && t[k * 2 + 1] == (float)(2 * i));
            }
            batches++;
            rows += m;
        }
        cr_assert_eq(batches, 11);
        cr_assert_eq(rows, 103);
        for (int i = 0; i < 103; i++) cr_assert_eq(seen[i], 1, "epoch %d: index %d seen %d times", e, i, seen[i]);
        cr_assert_eq(b.epoch, e + 1);
    }
    cr_assert_neq(memcmp(first[0], first[1], sizeof first[0]), 0, "epochs 0 and 1 in the same order");
    rl_batcher_free(&b);

    /* the same seed replays the same batches; drop_last skips the tail */
    rl_batcher b2;
    cr_assert_eq(rl_batcher_init(&b2, &d, 10, true, true, 77), RL_OK);
    cr_assert_eq(rl_batcher_next(&b2, x, NULL, NULL, idx), 10);
    cr_assert_eq(memcmp(idx, first[0], sizeof first[0]), 0, "seed 77 replays differently");
    int batches = 1;
    while (rl_batcher_next(&b2, x, NULL, NULL, NULL) > 0) batches++;
    cr_assert_eq(batches, 10);
    rl_batcher_free(&b2);

    /* no shuffle: index order */
    cr_assert_eq(rl_batcher_init(&b2, &d, 50, false, false, 0), RL_OK);
    cr_assert_eq(rl_batcher_next(&b2, x, NULL, NULL, NULL), 50);
    cr_assert_eq(rl_batcher_next(&b2, x, NULL, NULL, idx), 50);
    cr_assert_eq(idx[0], 50);
    cr_assert_eq(rl_batcher_next(&b2, x, NULL, NULL, idx), 3);
    cr_assert_eq(idx[2], 102);
    cr_assert_eq(rl_batcher_next(&b2, x, NULL, NULL, idx), 0);
    rl_batcher_free(&b2);

    cr_assert_eq(rl_batcher_init(&b2, &d, 0, false, false, 0), RL_EINVAL);
    cr_assert_eq(rl_batcher_init(&b2, &d, 200, false, true, 0), RL_EINVAL);
    rl_batcher_free(&b2);
    rl_dataset_free(&d);
}

RL_TEST(datasets, split_partition_deterministic)
{
    rl_dataset d, tr, te, tr2, te2;
    index_dataset(&d, 50);
    cr_assert_eq(rl_dataset_split(&tr, &te, &d, 12, 5), RL_OK);
    cr_assert(tr.n == 38 && te.n == 12, "%d + %d", tr.n, te.n);
    cr_assert(tr.n_classes == 3 && tr.n_out == 2 && te.dim == 4);
    int seen[50] = {0};
    for (int i = 0; i < te.n; i++) seen[(int)te.x[i * 4]]++;
    for (int i = 0; i < tr.n; i++) seen[(int)tr.x[i * 4]]++;
    for (int i = 0; i < 50; i++) cr_assert_eq(seen[i], 1, "example %d in %d parts", i, seen[i]);
    for (int i = 1; i < te.n; i++) cr_assert(te.x[i * 4] > te.x[(i - 1) * 4], "test part not in source order");
    for (int i = 0; i < te.n; i++) {
        int k = (int)te.x[i * 4];
        cr_assert(te.y[i] == k % 3 && te.t[i * 2] == (float)-k);
    }
    /* 12 of 50 chosen at random: not simply the first or last 12 */
    cr_assert(te.x[11 * 4] > 11.5f || te.x[0] > 0.5f);

    cr_assert_eq(rl_dataset_split(&tr2, &te2, &d, 12, 5), RL_OK);
    cr_assert_eq(memcmp(te.x, te2.x, 12 * 4 * sizeof(float)), 0, "same seed, different split");
    rl_dataset_free(&tr2);
    rl_dataset_free(&te2);
    cr_assert_eq(rl_dataset_split(&tr2, &te2, &d, 12, 6), RL_OK);
    cr_assert_neq(memcmp(te.x, te2.x, 12 * 4 * sizeof(float)), 0, "different seeds, same split");
    rl_dataset_free(&tr2);
    rl_dataset_free(&te2);

    cr_assert_eq(rl_dataset_split(&tr2, &te2, &d, 51, 6), RL_EINVAL);
    cr_assert_null(tr2.x);
    int bad_idx[2] = {3, 50};
    cr_assert_eq(rl_dataset_take(&tr2, &d, bad_idx, 2), RL_EINVAL);
    cr_assert_not_null(strstr(rl_errmsg(), "idx[1] = 50"), "%s", rl_errmsg());
    cr_assert_eq(rl_dataset_new(&tr2, 3, 0, 0, 0), RL_EINVAL);
    rl_dataset_free(&tr);
    rl_dataset_free(&te);
    rl_dataset_free(&d);
}

/* ---- header counts never reserve memory (issue 15, defect 9) ----
 * The loaders used to size buffers from counts before reading: 2 GiB for a
 * labels header of 2^31 - 1, 7.8 GB from a 31 kB gzip of empty lines, so
 * under a memory limit the error named memory instead of the file. Each
 * load runs in a child under RLIMIT_AS = 1 GB (no limit in sanitizer
 * builds, which cannot start under one) and must fail with the real cause. */

typedef rl_status (*load_fn)(rl_dataset *d, const char *arg);

static rl_status load_fmnist_dir(rl_dataset *d, const char *dir) { return rl_fmnist_load(d, RL_SPLIT_TEST, dir, NULL); }

static rl_status load_digits_file(rl_dataset *d, const char *path)
{
    rl_digits_opts o = {.expect_rows = -1};
    return rl_digits_load(d, path, &o);
}

/* Run fn(arg) in a child limited to 1 GB of address space; its status and
 * message come back through a pipe. */
static rl_status load_limited(load_fn fn, const char *arg, char *msg, size_t n)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        if (!RL_TEST_ASAN) {
            struct rlimit rl = {(rlim_t)1 << 30, (rlim_t)1 << 30};
            setrlimit(RLIMIT_AS, &rl);
        }
        rl_dataset d = {0};
        rl_status st = fn(&d, arg);
        int code = (int)st;
        bool empty = d.x == NULL && d.n == 0;
        rl_dataset_free(&d);
        if (write(fd[1], &code, sizeof code) != sizeof code || write(fd[1], &empty, sizeof empty) != sizeof empty ||
            write(fd[1], rl_errmsg(), strlen(rl_errmsg()) + 1) < 0)
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    int code = 1;
    bool empty = false;
    cr_assert_eq(read(fd[0], &code, sizeof code), (ssize_t)sizeof code, "the child died");
    cr_assert_eq(read(fd[0], &empty, sizeof empty), (ssize_t)sizeof empty);
    ssize_t got = read(fd[0], msg, n - 1);
    msg[got > 0 ? got : 0] = '\0';
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(empty, "a failed load must leave the dataset empty");
    return (rl_status)code;
}

RL_TEST(datasets, idx_header_count_reserves_nothing)
{
    /* 2^31 - 1 images and labels announced, 6 present */
    write_images(IMG, 0x803, 6, 28, 28, 6);
    unsigned char b[8 + 6];
    put_be32(b, 0x801);
    put_be32(b + 4, 0x7fffffffu);
    memcpy(b + 8, LABELS6, 6);
    char p[256], msg[1024];
    write_gz(path_in(p, sizeof p, LAB), b, sizeof b);
    unsigned char h[16 + 6 * 784];
    put_be32(h, 0x803);
    put_be32(h + 4, 0x7fffffffu);
    put_be32(h + 8, 28);
    put_be32(h + 12, 28);
    memset(h + 16, 7, 6 * 784);
    write_gz(path_in(p, sizeof p, IMG), h, sizeof h);
    rl_status st = load_limited(load_fmnist_dir, g_dir, msg, sizeof msg);
    cr_assert_eq(st, RL_EFORMAT, "status %d: %s", st, msg);
    cr_assert(strstr(msg, "truncated") && strstr(msg, "after 6 of the 2147483647 bytes"), "%s", msg);
}

RL_TEST(datasets, digits_empty_lines_reserve_nothing)
{
    size_t n = (size_t)30 << 20; /* 30 million newlines: about 31 kB of gzip */
    char *nl = malloc(n), p[256], msg[1024];
    cr_assert_not_null(nl);
    memset(nl, '\n', n);
    write_gz(path_in(p, sizeof p, "newlines.csv.gz"), nl, n);
    free(nl);
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    cr_assert(sb.st_size < 64 * 1024, "the crafted gzip is %lld bytes", (long long)sb.st_size);
    rl_status st = load_limited(load_digits_file, p, msg, sizeof msg);
    cr_assert_eq(st, RL_EFORMAT, "status %d: %s", st, msg);
    cr_assert(strstr(msg, ":1: empty line"), "%s", msg);
}
