/* JSON helpers: parse with yajl_tree, generate with yajl_gen. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "qm/json.h"

yajl_val qm_json_parse(const char *text, size_t len, struct qm_error *err)
{
    char errbuf[256];
    char *copy = qm_strndup(text, len);
    yajl_val v;

    errbuf[0] = '\0';
    v = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    free(copy);
    if (!v) {
        /* yajl's message spans several lines: keep the first one. */
        errbuf[strcspn(errbuf, "\n")] = '\0';
        qm_fail(err, 400, "invalid JSON: %s", errbuf[0] ? errbuf : "parse error");
    }
    return v;
}

static yajl_val object_member(yajl_val v, const char *key, size_t key_len)
{
    if (!YAJL_IS_OBJECT(v))
        return NULL;
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];

        if (strlen(k) == key_len && memcmp(k, key, key_len) == 0)
            return v->u.object.values[i];
    }
    return NULL;
}

yajl_val qm_json_get(yajl_val v, const char *path)
{
    const char *p = path;

    while (v && *p) {
        size_t n = strcspn(p, "/");

        v = object_member(v, p, n);
        p += n;
        if (*p == '/')
            p++;
    }
    return v;
}

const char *qm_json_get_string(yajl_val v, const char *path)
{
    return YAJL_GET_STRING(qm_json_get(v, path));
}

bool qm_json_get_int(yajl_val v, const char *path, long long *out)
{
    yajl_val m = qm_json_get(v, path);

    if (!YAJL_IS_INTEGER(m))
        return false;
    *out = YAJL_GET_INTEGER(m);
    return true;
}

bool qm_json_get_bool(yajl_val v, const char *path, bool *out)
{
    yajl_val m = qm_json_get(v, path);

    if (YAJL_IS_TRUE(m))
        *out = true;
    else if (YAJL_IS_FALSE(m))
        *out = false;
    else
        return false;
    return true;
}

static void gen_value(yajl_gen g, yajl_val v)
{
    if (!v) {
        yajl_gen_null(g);
        return;
    }
    switch (v->type) {
    case yajl_t_string:
        yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string));
        break;
    case yajl_t_number:
        /* The raw text keeps integers beyond 2^53 and the original notation. */
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
        break;
    case yajl_t_object:
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            const char *k = v->u.object.keys[i];

            yajl_gen_string(g, (const unsigned char *)k, strlen(k));
            gen_value(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
        break;
    case yajl_t_array:
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++)
            gen_value(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
        break;
    case yajl_t_true:
        yajl_gen_bool(g, 1);
        break;
    case yajl_t_false:
        yajl_gen_bool(g, 0);
        break;
    default:
        yajl_gen_null(g);
        break;
    }
}

static void append_gen_output(struct strbuf *sb, yajl_gen g)
{
    const unsigned char *buf;
    size_t len;

    yajl_gen_get_buf(g, &buf, &len);
    sb_addn(sb, (const char *)buf, len);
    yajl_gen_free(g);
}

void qm_json_add_string(struct strbuf *sb, const char *s)
{
    yajl_gen g = yajl_gen_alloc(NULL);

    if (!g)
        abort();
    yajl_gen_string(g, (const unsigned char *)s, strlen(s));
    append_gen_output(sb, g);
}

void qm_json_add_value(struct strbuf *sb, yajl_val v)
{
    yajl_gen g = yajl_gen_alloc(NULL);

    if (!g)
        abort();
    gen_value(g, v);
    append_gen_output(sb, g);
}

char *qm_json_dump(yajl_val v)
{
    struct strbuf sb = {0};

    qm_json_add_value(&sb, v);
    return sb_detach(&sb);
}

char *qm_json_build(const char *fmt, ...)
{
    struct strbuf sb = {0};
    va_list ap;

    va_start(ap, fmt);
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            sb_addc(&sb, *p);
            continue;
        }
        p++;
        if (*p == 's') {
            const char *s = va_arg(ap, const char *);

            if (s)
                qm_json_add_string(&sb, s);
            else
                sb_add(&sb, "null");
        } else if (*p == 'j') {
            const char *s = va_arg(ap, const char *);

            sb_add(&sb, s ? s : "null");
        } else if (*p == 'd') {
            sb_addf(&sb, "%d", va_arg(ap, int));
        } else if (*p == 'u') {
            sb_addf(&sb, "%u", va_arg(ap, unsigned));
        } else if (strncmp(p, "lld", 3) == 0) {
            sb_addf(&sb, "%lld", va_arg(ap, long long));
            p += 2;
        } else if (*p == 'b') {
            sb_add(&sb, va_arg(ap, int) ? "true" : "false");
        } else if (*p == '%') {
            sb_addc(&sb, '%');
        } else {
            fprintf(stderr, "<2>qm_json_build: unknown conversion in \"%s\"\n", fmt);
            abort();
        }
    }
    va_end(ap);
    return sb_detach(&sb);
}
