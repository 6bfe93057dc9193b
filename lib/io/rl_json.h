/* rl_json.h -- read a small JSON document (a Hugging Face config.json, an
 * index file) and look fields up by dotted key, with messages that name the
 * file and the field.
 *
 * Only lib/io parses files; the commands above it ask for typed fields:
 *
 *     rl_json *j;
 *     RL_TRY(rl_json_load(&j, "config.json"));
 *     long long h;
 *     rl_status st = rl_json_int(j, "vision_config.hidden_size", 1, 1 << 20, &h);
 *
 * A dotted key walks nested objects ("vision_config.hidden_size"). A field
 * that is absent or JSON null is RL_ENOTFOUND ("config.json: field
 * 'vision_config.hidden_size' is missing"); a field of the wrong type or out
 * of range is RL_EFORMAT naming the field, the value and what was expected.
 * The parser is jansson with duplicate keys refused. The document is read
 * whole (it is a few kB); rl_json_free releases it.
 */
#ifndef RL_JSON_H
#define RL_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/rl_err.h"

typedef struct rl_json rl_json;

/* Parse `path`; the root must be a JSON object. RL_EIO if unreadable,
 * RL_EFORMAT (with line and column) if not JSON or not an object. */
rl_status rl_json_load(rl_json **out, const char *path);
void rl_json_free(rl_json *j);
const char *rl_json_path(const rl_json *j);

/* Is `key` present and not null? */
bool rl_json_has(const rl_json *j, const char *key);
/* An integer in [lo, hi]. A float with an integral value (768.0) is
 * accepted; anything else is RL_EFORMAT. */
rl_status rl_json_int(const rl_json *j, const char *key, long long lo, long long hi, long long *out);
/* A string; *out points into the document (valid until rl_json_free). */
rl_status rl_json_str(const rl_json *j, const char *key, const char **out);
rl_status rl_json_bool(const rl_json *j, const char *key, bool *out);
/* Number of members of an object or elements of an array (id2label). */
rl_status rl_json_size(const rl_json *j, const char *key, size_t *out);
/* Element i of an array of strings ("architectures"). */
rl_status rl_json_str_at(const rl_json *j, const char *key, size_t i, const char **out);

#endif
