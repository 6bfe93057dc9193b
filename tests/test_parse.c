/* test_parse.c -- strict number parsing (lib/core/rl_parse.h) and the one
 * command-line value parser (experiments/flags.h). */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "core/rl_parse.h"
#include "flags.h"
#include "rl_test.h"

TestSuite(parse, .init = rl_test_mark);

RL_TEST(parse, integers_whole_string_and_range)
{
    int64_t v = 0;
    cr_assert_eq(rl_parse_i64("42", 0, 100, "n", &v), RL_OK);
    cr_assert_eq(v, 42);
    cr_assert_eq(rl_parse_i64("-7", -10, 10, "n", &v), RL_OK);
    cr_assert_eq(v, -7);
    cr_assert_eq(rl_parse_i64("-9223372036854775808", INT64_MIN, INT64_MAX, "n", &v), RL_OK);
    cr_assert_eq(v, INT64_MIN);
    cr_assert_eq(rl_parse_i64("9223372036854775807", INT64_MIN, INT64_MAX, "n", &v), RL_OK);
    cr_assert_eq(v, INT64_MAX);
    static const char *const bad[] = {"", " 1", "1 ", "+1", "0x10", "3abc", "1.0", "1e3", "-", "--1",
                                      "9223372036854775808", "-9223372036854775809",
                                      "99999999999999999999999"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        v = 12345;
        cr_assert_eq(rl_parse_i64(bad[k], INT64_MIN, INT64_MAX, "n", &v), RL_EINVAL, "'%s' accepted", bad[k]);
        cr_assert_eq(v, 12345, "'%s' wrote the output on failure", bad[k]);
    }
    /* 32-bit truncation is what atoi did: 4294967304 = 2^32 + 8 */
    int r = 5;
    cr_assert_eq(rl_parse_int("4294967304", 1, INT_MAX, "metadata 'r'", &r), RL_EINVAL);
    cr_assert_eq(r, 5);
    cr_assert(strstr(rl_errmsg(), "metadata 'r' '4294967304' is outside 1..2147483647"), "%s", rl_errmsg());
    cr_assert_eq(rl_parse_int("3abc", 1, 32, "--seeds", &r), RL_EINVAL);
    cr_assert(strstr(rl_errmsg(), "--seeds '3abc' is not an integer"), "%s", rl_errmsg());
}

RL_TEST(parse, unsigned_and_bool)
{
    uint64_t u = 0;
    cr_assert_eq(rl_parse_u64("18446744073709551615", 0, UINT64_MAX, NULL, &u), RL_OK);
    cr_assert_eq(u, UINT64_MAX);
    cr_assert_eq(rl_parse_u64("18446744073709551616", 0, UINT64_MAX, NULL, &u), RL_EINVAL);
    cr_assert_eq(rl_parse_u64("-1", 0, UINT64_MAX, NULL, &u), RL_EINVAL);
    bool b = false;
    cr_assert_eq(rl_parse_bool("true", "k", &b), RL_OK);
    cr_assert(b);
    cr_assert_eq(rl_parse_bool("false", "k", &b), RL_OK);
    cr_assert(!b);
    cr_assert_eq(rl_parse_bool("True", "k", &b), RL_EINVAL);
    cr_assert_eq(rl_parse_bool("1", "k", &b), RL_EINVAL);
    cr_assert_eq(rl_parse_bool("", "k", &b), RL_EINVAL);
}

RL_TEST(parse, doubles_plain_decimal_only)
{
    double d = 0;
    static const struct { const char *s; double v; } good[] = {
        {"1e-5", 1e-5}, {"-0.25", -0.25}, {"3", 3.0}, {".5", 0.5}, {"5.", 5.0}, {"1E+3", 1000.0}, {"0", 0.0},
        {"1e-400", 0.0} /* underflows to 0: a finite value, kept */};
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
        cr_assert_eq(rl_parse_double(good[k].s, -1e300, 1e300, "x", &d), RL_OK, "'%s': %s", good[k].s, rl_errmsg());
        cr_assert_eq(d, good[k].v, "'%s' -> %g", good[k].s, d);
    }
    static const char *const bad[] = {"", " 1", "1 ", "+1", "inf", "nan", "-inf", "0x1p3", "1e", "e5", ".", "-",
                                      "1.2.3", "1e400", "3abc", "1,5"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        d = 7.0;
        cr_assert_eq(rl_parse_double(bad[k], -DBL_MAX, DBL_MAX, "x", &d), RL_EINVAL, "'%s' accepted", bad[k]);
        cr_assert_eq(d, 7.0);
    }
    cr_assert_eq(rl_parse_double("2", 0, 1, "x", &d), RL_EINVAL);
    cr_assert_eq(rl_parse_positive("0", INFINITY, "--tol", &d), RL_EINVAL);
    cr_assert(strstr(rl_errmsg(), "--tol '0' is outside (0"), "%s", rl_errmsg());
    cr_assert_eq(rl_parse_positive("1e-320", INFINITY, "--tol", &d), RL_OK); /* subnormal but positive */
}

RL_TEST(parse, byte_counts)
{
    uint64_t b = 0;
    cr_assert_eq(rl_parse_bytes("1073741824", 1, UINT64_MAX, "--max-memory", &b), RL_OK);
    cr_assert_eq(b, 1073741824u);
    cr_assert_eq(rl_parse_bytes("512M", 1, UINT64_MAX, "--max-memory", &b), RL_OK);
    cr_assert_eq(b, 512u << 20);
    cr_assert_eq(rl_parse_bytes("2G", 1, UINT64_MAX, "--max-memory", &b), RL_OK);
    cr_assert_eq(b, 2ull << 30);
    cr_assert_eq(rl_parse_bytes("16777216T", 1, UINT64_MAX, "--max-memory", &b), RL_EINVAL); /* 2^64 */
    cr_assert_eq(rl_parse_bytes("G", 1, UINT64_MAX, "--max-memory", &b), RL_EINVAL);
    cr_assert_eq(rl_parse_bytes("1g", 1, UINT64_MAX, "--max-memory", &b), RL_EINVAL);
    cr_assert_eq(rl_parse_bytes("0", 1, UINT64_MAX, "--max-memory", &b), RL_EINVAL);
    cr_assert_eq(rl_parse_bytes("", 1, UINT64_MAX, "--max-memory", &b), RL_EINVAL);
}

RL_TEST(parse, flag_lists_refuse_empty_and_junk)
{
    int v[8];
    cr_assert_eq(flag_int_list("t", "--r", "1,2,64", 1, 64, v, 8), 3);
    cr_assert_eq(v[0], 1);
    cr_assert_eq(v[2], 64);
    cr_assert_eq(flag_int_list("t", "--r", "", 1, 64, v, 8), -1);
    cr_assert_eq(flag_int_list("t", "--r", "1,,2", 1, 64, v, 8), -1);
    cr_assert_eq(flag_int_list("t", "--r", "1,2,", 1, 64, v, 8), -1);
    cr_assert_eq(flag_int_list("t", "--r", ",1", 1, 64, v, 8), -1);
    cr_assert_eq(flag_int_list("t", "--r", "1,3abc", 1, 64, v, 8), -1);
    cr_assert_eq(flag_int_list("t", "--r", "4294967297", 1, 64, v, 8), -1);
    cr_assert_eq(flag_int_list("t", "--r", "1,2,3", 1, 64, v, 2), -1); /* never cut silently */
    double d[4];
    cr_assert_eq(flag_double_list("t", "--lr", "1e-3,0.5", 0, 1, d, 4), 2);
    cr_assert_eq(d[1], 0.5);
    cr_assert_eq(flag_double_list("t", "--lr", "1e-3,nan", 0, 1, d, 4), -1);
    static const char *const names[] = {"dense", "sparse", "very_sparse"};
    cr_assert_eq(flag_name_list("t", "--bases", "very_sparse,dense", names, 3, v, 8), 2);
    cr_assert_eq(v[0], 2);
    cr_assert_eq(v[1], 0);
    cr_assert_eq(flag_name_list("t", "--bases", "dense,Dense", names, 3, v, 8), -1);
    int c = -1;
    cr_assert(flag_choice("t", "--dtype", "BF16", (const char *const[]){"F32", "F16", "BF16"}, 3, &c));
    cr_assert_eq(c, 2);
    cr_assert(!flag_choice("t", "--dtype", "bf16", (const char *const[]){"F32", "F16", "BF16"}, 3, &c));
    int pairs[4][2];
    cr_assert_eq(flag_pair_list("t", "--shapes", "256x256,768x3072", 1, 65536, pairs, 4), 2);
    cr_assert_eq(pairs[1][0], 768);
    cr_assert_eq(pairs[1][1], 3072);
    cr_assert_eq(flag_pair_list("t", "--shapes", "256x", 1, 65536, pairs, 4), -1);
    cr_assert_eq(flag_pair_list("t", "--shapes", "256x256x3", 1, 65536, pairs, 4), -1);
    cr_assert_eq(flag_pair_list("t", "--shapes", "256", 1, 65536, pairs, 4), -1);
}
