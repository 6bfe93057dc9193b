/* test_safetensors.c -- reader/writer round trips, the PEFT fixture, and
 * every malformed-header case the reader must refuse.
 *
 * Each test runs in a fresh mkdtemp directory under /tmp that .fini empties
 * and removes. Corrupt files are built byte by byte with write_raw (8-byte
 * little-endian length, a JSON string, then filler data bytes), so each case
 * shows exactly which header it feeds the reader. The reader and writer use
 * malloc, not rl_alloc; .fini still checks that the tracked counter did not
 * move, and `make asan` (LeakSanitizer) checks the malloc side.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rl_err.h"
#include "core/rl_half.h"
#include "core/rl_tensor.h"
#include "rl_test.h"
#include "io/rl_safetensors.h"

static char g_dir[64];

static void st_init(void)
{
    rl_test_tmpdir(g_dir, "rl_st_");
    rl_test_mark();
}

static void st_fini(void) { rl_test_rmdir(g_dir); /* the leak check runs inside each test (RL_TEST) */ }

TestSuite(safetensors, .init = st_init, .fini = st_fini);

/* ---- helpers ---- */

static const char *path_in(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", g_dir, name);
    return buf;
}

/* Number of entries in the temp dir (without . and ..). */
static int dir_entries(void)
{
    DIR *d = opendir(g_dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* Write <dir>/name: the 8-byte little-endian `hlen`, the JSON text, then
 * ndata filler bytes. Returns the path in a static buffer. */
static const char *write_raw(const char *name, uint64_t hlen, const char *json, size_t ndata)
{
    static char p[512];
    path_in(p, sizeof p, name);
    FILE *fp = fopen(p, "wb");
    cr_assert_not_null(fp, "fopen %s: %s", p, strerror(errno));
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(le, 1, 8, fp);
    fwrite(json, 1, strlen(json), fp);
    for (size_t i = 0; i < ndata; i++) fputc((int)(i & 0x7f), fp);
    cr_assert_eq(fclose(fp), 0);
    return p;
}

/* The usual case: the length field is the true JSON length. */
static const char *write_st(const char *json, size_t ndata)
{
    return write_raw("bad.safetensors", strlen(json), json, ndata);
}

/* Opening `path` must fail with `code`, leave *out NULL, and leave a message
 * naming the file and containing w1 and w2 (either may be NULL). */
static void expect_fail(const char *path, rl_status code, const char *w1, const char *w2)
{
    rl_st_file *f = (rl_st_file *)&f;   /* must be reset to NULL */
    rl_errclear();
    rl_status s = rl_st_open(&f, path);
    const char *m = rl_errmsg();
    cr_assert_eq(s, code, "status %d (%s), want %d; message: %s", s, rl_strerror(s), code, m);
    cr_assert_null(f);
    cr_assert(strstr(m, path), "message does not name the file: %s", m);
    cr_assert(!w1 || strstr(m, w1), "message lacks \"%s\": %s", w1, m);
    cr_assert(!w2 || strstr(m, w2), "message lacks \"%s\": %s", w2, m);
}

static void expect_bad_header(const char *json, size_t ndata, const char *w1, const char *w2)
{
    expect_fail(write_st(json, ndata), RL_EFORMAT, w1, w2);
}

/* Read the 8-byte header length of a file. */
static uint64_t header_len(const char *path, char *json, size_t size)
{
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp);
    unsigned char le[8];
    cr_assert_eq(fread(le, 1, 8, fp), 8u);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | le[i];
    size_t k = n < size - 1 ? (size_t)n : size - 1;
    cr_assert_eq(fread(json, 1, k, fp), k);
    json[k] = '\0';
    fclose(fp);
    return n;
}

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* ---- round trips ---- */

RL_TEST(safetensors, roundtrip_f32)
{
    float w[12], b[4], sc = 42.5f;
    for (int i = 0; i < 12; i++) w[i] = 0.37f * (float)i - 1.0f;
    for (int i = 0; i < 4; i++) b[i] = -1e-30f * (float)(i + 1);
    int sw[2] = { 3, 4 }, sb[1] = { 4 }, se[2] = { 0, 5 };
    rl_st_writer *wr;
    cr_assert_eq(rl_st_writer_new(&wr), RL_OK);
    cr_assert_eq(rl_st_writer_add(wr, "w", RL_DT_F32, 2, sw, w), RL_OK);
    cr_assert_eq(rl_st_writer_add(wr, "empty", RL_DT_F32, 2, se, NULL), RL_OK);
    cr_assert_eq(rl_st_writer_add(wr, "b", RL_DT_F32, 1, sb, b), RL_OK);
    cr_assert_eq(rl_st_writer_add(wr, "scalar", RL_DT_F32, 0, NULL, &sc), RL_OK);
    char p[512], json[4096];
    path_in(p, sizeof p, "a.safetensors");
    cr_assert_eq(rl_st_writer_save(wr, p), RL_OK, "%s", rl_errmsg());
    rl_st_writer_free(wr);

    uint64_t n = header_len(p, json, sizeof json);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq((8 + n) % 8, 0u, "header not padded: N=%llu", (unsigned long long)n);
    cr_assert_eq((uint64_t)st.st_size, 8 + n + 48 + 16 + 4);
    cr_assert_null(strstr(json, "__metadata__"), "no metadata was added: %s", json);

    rl_st_file *f;
    cr_assert_eq(rl_st_open(&f, p), RL_OK, "%s", rl_errmsg());
    cr_assert_str_eq(rl_st_path(f), p);
    cr_assert_eq(rl_st_count(f), 4u);
    const char *order[4] = { "w", "empty", "b", "scalar" };
    for (size_t i = 0; i < 4; i++) cr_assert_str_eq(rl_st_at(f, i)->name, order[i]);
    const rl_st_tensor *t = rl_st_find(f, "w");
    cr_assert(t && t->dtype == RL_DT_F32 && t->ndim == 2 && t->shape[0] == 3 &&
              t->shape[1] == 4 && t->numel == 12 && t->nbytes == 48);
    cr_assert_eq(rl_st_find(f, "empty")->numel, 0u);
    cr_assert_eq(rl_st_find(f, "scalar")->ndim, 0);
    cr_assert_null(rl_st_find(f, "nope"));
    /* data packed in insertion order */
    cr_assert_eq(rl_st_find(f, "b")->data - t->data, 48);
    cr_assert_eq(rl_st_find(f, "scalar")->data - t->data, 64);

    float got[12], gs;
    cr_assert_eq(rl_st_read_f32(f, "w", 2, sw, got), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(memcmp(got, w, sizeof w), 0);
    cr_assert_eq(rl_st_read_f32(f, "b", 1, sb, got), RL_OK);
    cr_assert_eq(memcmp(got, b, sizeof b), 0);
    cr_assert_eq(rl_st_read_f32(f, "scalar", 0, NULL, &gs), RL_OK);
    cr_assert_eq(bits(gs), bits(sc));
    rl_st_close(f);
}

/* Values a 16-bit type holds exactly come back bit for bit; 1/3 and exact
 * ties are rounded to nearest even. `want_bits` are the expected raw words. */
static void roundtrip_half(rl_dtype dt, const float *exact, int n, const float *rounded,
                           const uint16_t *want_bits, int m)
{
    rl_st_writer *wr;
    cr_assert_eq(rl_st_writer_new(&wr), RL_OK);
    cr_assert_eq(rl_st_writer_add(wr, "exact", dt, 1, &n, exact), RL_OK);
    cr_assert_eq(rl_st_writer_add(wr, "rounded", dt, 1, &m, rounded), RL_OK);
    char p[512];
    path_in(p, sizeof p, "h.safetensors");
    cr_assert_eq(rl_st_writer_save(wr, p), RL_OK, "%s", rl_errmsg());
    rl_st_writer_free(wr);

    rl_st_file *f;
    cr_assert_eq(rl_st_open(&f, p), RL_OK, "%s", rl_errmsg());
    const rl_st_tensor *t = rl_st_find(f, "exact");
    cr_assert(t && t->dtype == dt && t->nbytes == 2 * (size_t)n);
    float got[16];
    cr_assert_eq(rl_st_read_f32(f, "exact", 1, &n, got), RL_OK, "%s", rl_errmsg());
    for (int i = 0; i < n; i++)
        cr_assert_eq(bits(got[i]), bits(exact[i]), "%s [%d]: %a -> %a", rl_dtype_name(dt), i,
                     (double)exact[i], (double)got[i]);
    t = rl_st_find(f, "rounded");
    cr_assert_eq(rl_st_read_f32(f, "rounded", 1, &m, got), RL_OK);
    for (int i = 0; i < m; i++) {
        uint16_t h = (uint16_t)(t->data[2 * i] | (t->data[2 * i + 1] << 8));
        cr_assert_eq(h, want_bits[i], "%s [%d]: %a stored as 0x%04x, want 0x%04x",
                     rl_dtype_name(dt), i, (double)rounded[i], h, want_bits[i]);
        float want = dt == RL_DT_F16 ? rl_round_f16(rounded[i]) : rl_round_bf16(rounded[i]);
        cr_assert_eq(bits(got[i]), bits(want));
    }
    rl_st_close(f);
}

RL_TEST(safetensors, roundtrip_f16)
{
    const float exact[] = { 0.0f, -0.0f, 1.0f, -2.0f, 0.5f, 65504.0f, 0x1p-24f, 1025.0f,
                            -0x1.ff8p-15f, INFINITY };
    /* 1/3 -> 0x3555; 2049 is a tie between 2048 and 2050 -> 2048 (even);
     * 2051 is a tie between 2050 and 2052 -> 2052 (even) */
    const float rounded[] = { 1.0f / 3.0f, 2049.0f, 2051.0f };
    const uint16_t want[] = { 0x3555, 0x6800, 0x6802 };
    roundtrip_half(RL_DT_F16, exact, 10, rounded, want, 3);
}

RL_TEST(safetensors, roundtrip_bf16)
{
    const float exact[] = { 0.0f, -0.0f, 1.0f, -2.0f, 0.5f, 3.140625f, 255.0f, 0x1p-126f,
                            -0x1.fep+127f, -INFINITY };
    /* 1/3 (0x3eaaaaab) -> 0x3eab; 1 + 2^-8 is a tie -> 1.0 (0x3f80);
     * 1 + 3*2^-8 is a tie -> 1 + 2^-6 (0x3f82) */
    const float rounded[] = { 1.0f / 3.0f, 1.0f + 0x1p-8f, 1.0f + 0x3p-8f };
    const uint16_t want[] = { 0x3eab, 0x3f80, 0x3f82 };
    roundtrip_half(RL_DT_BF16, exact, 10, rounded, want, 3);
}

RL_TEST(safetensors, metadata_roundtrip)
{
    rl_st_writer *wr;
    cr_assert_eq(rl_st_writer_new(&wr), RL_OK);
    float x[2] = { 1, 2 };
    int sh[1] = { 2 };
    cr_assert_eq(rl_st_writer_add(wr, "x", RL_DT_F32, 1, sh, x), RL_OK);
    cr_assert_eq(rl_st_writer_meta(wr, "method", "lora"), RL_OK);
    cr_assert_eq(rl_st_writer_meta(wr, "r", "4"), RL_OK);
    cr_assert_eq(rl_st_writer_meta(wr, "empty", ""), RL_OK);
    cr_assert_eq(rl_st_writer_meta(wr, "quote", "a \"b\" \\ ü"), RL_OK);
    cr_assert_eq(rl_st_writer_meta(wr, "r", "5"), RL_EINVAL);
    char p[512], json[4096];
    path_in(p, sizeof p, "m.safetensors");
    cr_assert_eq(rl_st_writer_save(wr, p), RL_OK, "%s", rl_errmsg());
    rl_st_writer_free(wr);

    header_len(p, json, sizeof json);
    cr_assert_eq(strncmp(json, "{\"__metadata__\":", 16), 0, "metadata not first: %s", json);
    rl_st_file *f;
    cr_assert_eq(rl_st_open(&f, p), RL_OK, "%s", rl_errmsg());
    cr_assert_str_eq(rl_st_meta(f, "method"), "lora");
    cr_assert_str_eq(rl_st_meta(f, "r"), "4");
    cr_assert_str_eq(rl_st_meta(f, "empty"), "");
    cr_assert_str_eq(rl_st_meta(f, "quote"), "a \"b\" \\ ü");
    cr_assert_null(rl_st_meta(f, "alpha"));
    cr_assert_eq(rl_st_count(f), 1u);
    rl_st_close(f);
}

RL_TEST(safetensors, fixture_lora_basic)
{
    const char *p = "tests/fixtures/peft/lora_basic.safetensors";
    rl_st_file *f;
    cr_assert_eq(rl_st_open(&f, p), RL_OK, "%s", rl_errmsg());
    cr_assert_str_eq(rl_st_meta(f, "method"), "lora");
    cr_assert_str_eq(rl_st_meta(f, "format"), "peft-parity-v1");
    cr_assert_eq(rl_st_count(f), 13u);
    cr_assert_str_eq(rl_st_at(f, 0)->name, "layers.0.bias");   /* header order */
    const rl_st_tensor *t = rl_st_find(f, "layers.0.weight");
    cr_assert_not_null(t);
    cr_assert(t->dtype == RL_DT_F32 && t->ndim == 2 && t->shape[0] == 24 && t->shape[1] == 40);
    float *w = malloc(24 * 40 * sizeof *w);
    cr_assert_eq(rl_st_read_f32(f, "layers.0.weight", 2, (int[]){ 24, 40 }, w), RL_OK,
                 "%s", rl_errmsg());
    double sum = 0;
    for (int i = 0; i < 24 * 40; i++) {
        cr_assert(isfinite(w[i]), "weight[%d] = %g", i, (double)w[i]);
        sum += fabs(w[i]);
    }
    cr_assert_gt(sum, 0.0);
    free(w);
    rl_st_close(f);
}

RL_TEST(safetensors, read_f32_checks_shape_and_key)
{
    rl_st_file *f;
    const char *p = "tests/fixtures/peft/lora_basic.safetensors";
    cr_assert_eq(rl_st_open(&f, p), RL_OK, "%s", rl_errmsg());
    float w[24 * 40];
    cr_assert_eq(rl_st_read_f32(f, "layers.0.weight", 2, (int[]){ 40, 24 }, w), RL_ESHAPE);
    const char *m = rl_errmsg();
    cr_assert(strstr(m, p) && strstr(m, "layers.0.weight") && strstr(m, "[40, 24]") &&
              strstr(m, "[24, 40]"), "%s", m);
    cr_assert_eq(rl_st_read_f32(f, "layers.0.weight", 1, (int[]){ 960 }, w), RL_ESHAPE);
    cr_assert_eq(rl_st_read_f32(f, "layers.0.weight", 3, (int[]){ 1, 24, 40 }, w), RL_ESHAPE);
    cr_assert_eq(rl_st_read_f32(f, "layers.9.weight", 2, (int[]){ 24, 40 }, w), RL_ENOTFOUND);
    cr_assert(strstr(rl_errmsg(), "layers.9.weight"), "%s", rl_errmsg());
    rl_st_close(f);
}

RL_TEST(safetensors, open_buffer_uses_label)
{
    const char *json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    unsigned char buf[128] = { 0 };
    size_t n = strlen(json);
    buf[0] = (unsigned char)n;
    memcpy(buf + 8, json, n);
    rl_st_file *f;
    cr_assert_eq(rl_st_open_buffer(&f, buf, 8 + n + 8, "membuf"), RL_OK, "%s", rl_errmsg());
    cr_assert_str_eq(rl_st_path(f), "membuf");
    cr_assert_eq(rl_st_find(f, "a")->numel, 2u);
    rl_st_close(f);
    cr_assert_eq(rl_st_open_buffer(&f, buf, 8 + n + 4, "membuf"), RL_EFORMAT);
    cr_assert_null(f);
    cr_assert(strstr(rl_errmsg(), "membuf") && strstr(rl_errmsg(), "\"a\""), "%s", rl_errmsg());
}

/* ---- writer argument checks and atomic save ---- */

RL_TEST(safetensors, writer_rejects_bad_arguments)
{
    rl_st_writer *wr;
    cr_assert_eq(rl_st_writer_new(&wr), RL_OK);
    float x[4] = { 0 };
    int sh[1] = { 4 }, neg[2] = { 2, -2 };
    cr_assert_eq(rl_st_writer_add(wr, "x", RL_DT_F32, 1, sh, x), RL_OK);
    cr_assert_eq(rl_st_writer_add(wr, "x", RL_DT_F16, 1, sh, x), RL_EINVAL);
    cr_assert(strstr(rl_errmsg(), "\"x\""), "%s", rl_errmsg());
    cr_assert_eq(rl_st_writer_add(wr, "y", RL_DT_F32, 2, neg, x), RL_EINVAL);
    cr_assert_eq(rl_st_writer_add(wr, "y", RL_DT_F32, RL_ST_MAX_DIMS + 1, sh, x), RL_EINVAL);
    cr_assert_eq(rl_st_writer_add(wr, "__metadata__", RL_DT_F32, 1, sh, x), RL_EINVAL);
    cr_assert_eq(rl_st_writer_add(wr, "y", RL_DT_F32, 1, sh, NULL), RL_EINVAL);
    cr_assert_eq(rl_st_writer_meta(wr, "k", "\xff\xfe"), RL_EINVAL);
    rl_st_writer_free(wr);
}

/* Missing parent directories are created; a parent that is a regular file
 * cannot be, and the save fails with RL_EWRITE naming the path. */
RL_TEST(safetensors, save_creates_dirs_but_not_through_a_file)
{
    rl_st_writer *wr;
    cr_assert_eq(rl_st_writer_new(&wr), RL_OK);
    char p[512], f[512];
    path_in(p, sizeof p, "new/dir/x.safetensors");
    cr_assert_eq(rl_st_writer_save(wr, p), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(access(p, R_OK), 0);
    unlink(p);
    path_in(f, sizeof f, "new/dir");
    rmdir(f);
    path_in(f, sizeof f, "new");
    rmdir(f);
    path_in(f, sizeof f, "plainfile");
    FILE *fp = fopen(f, "w");
    cr_assert_not_null(fp);
    fclose(fp);
    path_in(p, sizeof p, "plainfile/x.safetensors");
    cr_assert_eq(rl_st_writer_save(wr, p), RL_EWRITE);
    cr_assert(strstr(rl_errmsg(), "plainfile") != NULL, "%s", rl_errmsg());
    unlink(f);
    rl_st_writer_free(wr);
    cr_assert_eq(dir_entries(), 0, "something was left in %s", g_dir);
}

/* The temp file is created here but the rename onto a directory fails:
 * the temp file must be gone afterwards. */
RL_TEST(safetensors, failed_rename_leaves_no_temp)
{
    char p[512];
    path_in(p, sizeof p, "sub");
    cr_assert_eq(mkdir(p, 0700), 0);
    rl_st_writer *wr;
    cr_assert_eq(rl_st_writer_new(&wr), RL_OK);
    cr_assert_eq(rl_st_writer_save(wr, p), RL_EWRITE);
    cr_assert(strstr(rl_errmsg(), p), "%s", rl_errmsg());
    rl_st_writer_free(wr);
    cr_assert_eq(dir_entries(), 1, "a temp file was left in %s", g_dir);
}

RL_TEST(safetensors, save_replaces_existing_file)
{
    char p[512];
    path_in(p, sizeof p, "r.safetensors");
    for (int round = 0; round < 2; round++) {
        rl_st_writer *wr;
        cr_assert_eq(rl_st_writer_new(&wr), RL_OK);
        float v = (float)round;
        cr_assert_eq(rl_st_writer_add(wr, round ? "second" : "first", RL_DT_F32, 0, NULL, &v),
                     RL_OK);
        cr_assert_eq(rl_st_writer_save(wr, p), RL_OK, "%s", rl_errmsg());
        rl_st_writer_free(wr);
    }
    rl_st_file *f;
    cr_assert_eq(rl_st_open(&f, p), RL_OK);
    cr_assert_eq(rl_st_count(f), 1u);
    cr_assert_not_null(rl_st_find(f, "second"));
    rl_st_close(f);
    cr_assert_eq(dir_entries(), 1);
}

/* ---- malformed files ---- */

RL_TEST(safetensors, missing_file_is_eio)
{
    char p[512];
    expect_fail(path_in(p, sizeof p, "absent.safetensors"), RL_EIO, strerror(ENOENT), NULL);
}

RL_TEST(safetensors, empty_file)
{
    char p[512];
    path_in(p, sizeof p, "empty.safetensors");
    FILE *fp = fopen(p, "wb");
    cr_assert_not_null(fp);
    fclose(fp);
    expect_fail(p, RL_EFORMAT, "shorter than", NULL);
}

RL_TEST(safetensors, file_shorter_than_length_field)
{
    char p[512];
    path_in(p, sizeof p, "short.safetensors");
    FILE *fp = fopen(p, "wb");
    cr_assert_not_null(fp);
    fwrite("\x02\0\0\0\0", 1, 5, fp);
    fclose(fp);
    expect_fail(p, RL_EFORMAT, "5 bytes", "shorter than");
}

RL_TEST(safetensors, header_longer_than_file)
{
    /* 8 + 2 + 190 = 200 bytes, 192 after the length field */
    expect_fail(write_raw("long.safetensors", 1000, "{}", 190), RL_EFORMAT,
                "header length 1000 exceeds the 192 bytes", NULL);
}

RL_TEST(safetensors, header_length_absurd)
{
    expect_fail(write_raw("huge.safetensors", (uint64_t)1 << 40, "{}", 0), RL_EFORMAT,
                "1099511627776", "absurd");
}

/* A valid file cut in the middle of its data. */
RL_TEST(safetensors, truncated_data)
{
    float x[64] = { 0 };
    int sh[2] = { 8, 8 };
    rl_st_writer *wr;
    cr_assert_eq(rl_st_writer_new(&wr), RL_OK);
    cr_assert_eq(rl_st_writer_add(wr, "layer.w", RL_DT_F32, 2, sh, x), RL_OK);
    char p[512], json[1024];
    path_in(p, sizeof p, "t.safetensors");
    cr_assert_eq(rl_st_writer_save(wr, p), RL_OK);
    rl_st_writer_free(wr);
    uint64_t n = header_len(p, json, sizeof json);
    cr_assert_eq(truncate(p, (off_t)(8 + n + 100)), 0);
    expect_fail(p, RL_EFORMAT, "\"layer.w\"", "beyond the 100-byte data region");
}

RL_TEST(safetensors, not_json)
{
    expect_bad_header("{\"a\": {\"dtype\": ", 0, "not valid JSON", NULL);
    expect_bad_header("        ", 0, "not valid JSON", NULL);
}

RL_TEST(safetensors, json_not_object)
{
    expect_bad_header("[1, 2, 3]", 0, "not a JSON object", NULL);
}

RL_TEST(safetensors, entry_not_object)
{
    expect_bad_header("{\"a\": 5}", 0, "\"a\"", "not a JSON object");
}

RL_TEST(safetensors, duplicate_key)
{
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                      8, "duplicate", NULL);
}

RL_TEST(safetensors, missing_or_bad_dtype)
{
    expect_bad_header("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"w\"", "dtype");
    expect_bad_header("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"w\"",
                      "not a string");
}

RL_TEST(safetensors, unknown_dtype)
{
    const char *names[] = { "F64", "I64", "XYZ", "f32" };
    for (int i = 0; i < 4; i++) {
        char json[256], want[32];
        snprintf(json, sizeof json,
                 "{\"w\":{\"dtype\":\"%s\",\"shape\":[1],\"data_offsets\":[0,8]}}", names[i]);
        snprintf(want, sizeof want, "\"%s\"", names[i]);
        expect_bad_header(json, 8, want, "\"w\"");
    }
}

RL_TEST(safetensors, bad_shape)
{
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1,4],\"data_offsets\":[0,0]}}", 0,
                      "\"w\"", "negative");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
                      "\"w\"", "not an integer");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,12]}}", 12,
                      "\"w\"", "not an array");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "\"w\"", "shape");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                      "\"data_offsets\":[0,4]}}", 4, "\"w\"", "9 dims");
}

RL_TEST(safetensors, numel_overflow)
{
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                      "\"data_offsets\":[0,4]}}", 4, "\"w\"", "overflows");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387905],"
                      "\"data_offsets\":[0,4]}}", 4, "\"w\"", "overflows");
}

RL_TEST(safetensors, bad_data_offsets)
{
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
                      "\"w\"", "two integers");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", 4,
                      "\"w\"", "two integers");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "\"w\"", "data_offsets");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
                      "\"w\"", "negative");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
                      "\"w\"", "begin 8 > end 4");
}

RL_TEST(safetensors, offsets_out_of_range)
{
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
                      "\"w\"", "beyond the 8-byte data region");
}

RL_TEST(safetensors, byte_count_mismatch)
{
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16,
                      "\"w\"", "needs 12");
    expect_bad_header("{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16,
                      "\"w\"", "needs 8");
}

RL_TEST(safetensors, overlap)
{
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                      24, "\"a\"", "overlap");
    /* out of header order, and a small tensor inside a larger one */
    expect_bad_header("{\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[20,24]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}",
                      32, "\"b\"", "overlap");
}

RL_TEST(safetensors, bad_metadata)
{
    expect_bad_header("{\"__metadata__\":[1]}", 0, "__metadata__", "not a JSON object");
    expect_bad_header("{\"__metadata__\":{\"method\":\"lora\",\"r\":4}}", 0, "\"r\"",
                      "not a string");
}

/* Zero-element tensors are allowed and occupy no bytes, even at an offset
 * inside another tensor's range; trailing bytes after the data are ignored. */
RL_TEST(safetensors, zero_element_tensor_allowed)
{
    const char *p = write_st("{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[2,2]},"
                             "\"w\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                             6);
    rl_st_file *f;
    cr_assert_eq(rl_st_open(&f, p), RL_OK, "%s", rl_errmsg());
    cr_assert_eq(rl_st_count(f), 2u);
    cr_assert_str_eq(rl_st_at(f, 0)->name, "e");
    cr_assert_eq(rl_st_at(f, 0)->numel, 0u);
    cr_assert_eq(rl_st_read_f32(f, "e", 2, (int[]){ 0, 3 }, (float[1]){ 0 }), RL_OK);
    rl_st_close(f);
}
