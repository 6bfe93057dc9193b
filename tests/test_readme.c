/* test_readme.c -- the README's findings block is the report's, not
 * hand-written: every number in it appears, verbatim, in the CSV its line
 * cites (a table inherits the citation of the line that introduces it). */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl_test.h"

#define BEGIN "<!-- findings:begin"
#define END "<!-- findings:end -->"


/* The `results/...csv` paths named in a line, into cites (max 4). */
static int citations(const char *line, size_t len, char cites[4][128])
{
    int n = 0;
    for (const char *p = line; p < line + len && n < 4; p++) {
        if (*p != '`' || strncmp(p + 1, "results/", 8)) continue;
        const char *e = memchr(p + 1, '`', (size_t)(line + len - p - 1));
        if (!e || e - p - 1 >= 128 || strncmp(e - 4, ".csv", 4)) continue;
        snprintf(cites[n++], 128, "%.*s", (int)(e - p - 1), p + 1);
        p = e;
    }
    return n;
}

Test(readme, findings_numbers_come_from_the_csvs_they_cite)
{
    char *readme = rl_test_slurp("README.md", NULL);
    cr_assert_not_null(readme, "README.md not found (tests run from the project root)");
    char *a = strstr(readme, BEGIN), *z = a ? strstr(a, END) : NULL;
    cr_assert(a && z, "README.md has no findings block between the markers");
    a = strchr(a, '\n');
    cr_assert(a && a < z);
    a++;
    char cites[4][128];
    int nc = 0, lines = 0, numbers = 0;
    char *files[4] = {NULL};
    for (char *line = a; line < z;) {
        char *end = memchr(line, '\n', (size_t)(z - line));
        size_t len = end ? (size_t)(end - line) : (size_t)(z - line);
        char c2[4][128];
        int n2 = citations(line, len, c2);
        bool table_row = len > 0 && line[0] == '|';
        if (n2 > 0) { /* a new citation: this line and the table it may introduce */
            for (int i = 0; i < nc; i++) free(files[i]);
            nc = n2;
            for (int i = 0; i < nc; i++) {
                memcpy(cites[i], c2[i], sizeof cites[i]);
                files[i] = rl_test_slurp(cites[i], NULL);
                cr_assert_not_null(files[i], "the block cites %s, which does not exist", cites[i]);
            }
        } else if (len > 0 && !table_row) {
            cr_assert(0, "a line of the findings block cites no CSV: %.*s", (int)len, line);
        }
        if (len > 0 && (n2 > 0 || table_row)) {
            lines++;
            for (size_t i = 0; i < len; i++) {
                if (!isdigit((unsigned char)line[i]) || (i > 0 && (isalnum((unsigned char)line[i - 1]) || line[i - 1] == '.')))
                    continue;
                size_t j = i;
                while (j < len && isdigit((unsigned char)line[j])) j++;
                if (j + 1 < len && line[j] == '.' && isdigit((unsigned char)line[j + 1])) {
                    j++;
                    while (j < len && isdigit((unsigned char)line[j])) j++;
                }
                if (j + 1 < len && (line[j] == 'e' || line[j] == 'E') &&
                    (isdigit((unsigned char)line[j + 1]) || line[j + 1] == '-' || line[j + 1] == '+')) {
                    j += 2;
                    while (j < len && isdigit((unsigned char)line[j])) j++;
                }
                char num[64];
                snprintf(num, sizeof num, "%.*s", (int)(j - i), line + i);
                bool found = false;
                for (int k = 0; k < nc && !found; k++) found = strstr(files[k], num) != NULL;
                cr_assert(found, "README findings: %s is in none of %s%s (line: %.*s)", num, cites[0],
                          nc > 1 ? " ..." : "", (int)len, line);
                numbers++;
                i = j;
            }
        }
        line = end ? end + 1 : z;
    }
    for (int i = 0; i < nc; i++) free(files[i]);
    cr_assert(lines > 0 && numbers > 0, "the findings block is empty");
    free(readme);
}
