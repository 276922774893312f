/* Scalar checks, named value formats and regular expressions of the schema. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

/* Compiled patterns, keyed by the pattern string's address (they are all literals). */
struct regex_cache_entry {
    const char *pattern;
    regex_t re;
    bool ok;
};

static struct regex_cache_entry *regex_cache;
static size_t regex_cache_n;
static pthread_mutex_t regex_lock = PTHREAD_MUTEX_INITIALIZER;

bool qm_regex_match(const char *pattern, const char *value)
{
    pthread_mutex_lock(&regex_lock);
    struct regex_cache_entry *entry = NULL;
    for (size_t i = 0; i < regex_cache_n; i++) {
        if (regex_cache[i].pattern == pattern) {
            entry = &regex_cache[i];
            break;
        }
    }
    if (!entry) {
        regex_cache = qm_realloc(regex_cache, (regex_cache_n + 1) * sizeof(*regex_cache));
        entry = &regex_cache[regex_cache_n++];
        entry->pattern = pattern;
        entry->ok = regcomp(&entry->re, pattern, REG_EXTENDED | REG_NOSUB) == 0;
        if (!entry->ok)
            qm_log(QM_LOG_ERR, 0, "invalid schema pattern '%s'", pattern);
    }
    bool match = entry->ok && regexec(&entry->re, value, 0, NULL, 0) == 0;
    pthread_mutex_unlock(&regex_lock);
    return match;
}

bool qm_parse_boolean(const char *value, int *out)
{
    static const char *const yes[] = { "1", "on", "yes", "true" };
    static const char *const no[] = { "0", "off", "no", "false" };

    for (size_t i = 0; i < QM_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(value, yes[i]) == 0) {
            *out = 1;
            return true;
        }
        if (strcasecmp(value, no[i]) == 0) {
            *out = 0;
            return true;
        }
    }
    return false;
}

bool qm_is_integer(const char *value)
{
    const char *p = value;
    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return false;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p != '\0')
        return false;
    /* Integers beyond 64 bits cannot be used, so they are invalid rather than cut. */
    errno = 0;
    (void)strtoll(value, NULL, 10);
    return errno != ERANGE;
}

/* Perl's number syntax as the schema validator accepts it: 1, 1.5, 1., .5, 1e3, -2. */
bool qm_is_number(const char *value)
{
    return qm_regex_match("^[+-]?([0-9]+\\.[0-9]+|[0-9]+\\.|\\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?$",
                          value);
}

bool qm_parse_size(const char *value, unsigned long long *bytes)
{
    if (!qm_regex_match("^[0-9]+(\\.[0-9]+)?([KMGT](iB)?)?$", value))
        return false;
    char *end;
    long double size = strtold(value, &end);
    switch (*end) {
    case 'K': size *= 1024.0L; break;
    case 'M': size *= 1024.0L * 1024; break;
    case 'G': size *= 1024.0L * 1024 * 1024; break;
    case 'T': size *= 1024.0L * 1024 * 1024 * 1024; break;
    default: break;
    }
    /* A size beyond the range of the result is invalid, not wrapped around. */
    if (size >= 18446744073709551615.0L)
        return false;
    *bytes = (unsigned long long)size;
    return true;
}

char *qm_format_size(unsigned long long bytes)
{
    static const char units[] = "KMGT";
    unsigned long long value = bytes;
    int unit = -1;

    while (unit < 3 && value % 1024 == 0 && value != 0) {
        value /= 1024;
        unit++;
    }
    if (unit < 0)
        return qm_sprintf("%llu", value);
    return qm_sprintf("%llu%c", value, units[unit]);
}

bool qm_is_drive_key(const char *key)
{
    static const struct {
        const char *prefix;
        int max_index;
    } families[] = {
        { "ide", 3 }, { "sata", 5 }, { "scsi", 30 }, { "virtio", 15 },
        { "efidisk", 0 }, { "tpmstate", 0 },
    };

    for (size_t i = 0; i < QM_ARRAY_SIZE(families); i++) {
        size_t len = strlen(families[i].prefix);
        if (strncmp(key, families[i].prefix, len) != 0)
            continue;
        const char *digits = key + len;
        long long index;
        if (!isdigit((unsigned char)digits[0]) || (digits[0] == '0' && digits[1] != '\0'))
            return false;
        if (!qm_parse_int(digits, &index))
            return false;
        return index <= families[i].max_index;
    }
    return false;
}

/* Splits a list value the way the reference does: on NUL, else on ',', ';' and whitespace. */
static void split_list(const char *value, struct strvec *items)
{
    const char *p = value;
    while (*p) {
        while (*p && (isspace((unsigned char)*p) || *p == ',' || *p == ';'))
            p++;
        const char *start = p;
        while (*p && !isspace((unsigned char)*p) && *p != ',' && *p != ';')
            p++;
        if (p > start) {
            char *item = qm_strndup(start, (size_t)(p - start));
            sv_push(items, item);
            free(item);
        }
    }
}

static bool is_ipv4(const char *value)
{
    /* inet_pton rejects leading zeros and out-of-range octets, like the reference. */
    struct in_addr addr;
    return inet_pton(AF_INET, value, &addr) == 1;
}

static bool is_ipv6(const char *value)
{
    struct in6_addr addr;
    return inet_pton(AF_INET6, value, &addr) == 1;
}

static bool is_cidr(const char *value, bool v6)
{
    const char *slash = strchr(value, '/');
    if (!slash)
        return false;
    char *addr = qm_strndup(value, (size_t)(slash - value));
    bool ok = v6 ? is_ipv6(addr) : is_ipv4(addr);
    free(addr);
    long long prefix;
    if (!ok || !qm_parse_int(slash + 1, &prefix) || !isdigit((unsigned char)slash[1]))
        return false;
    return prefix >= 8 && prefix <= (v6 ? 128 : 32);
}

static const char *const dns_name_re =
    "^(([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)\\.)*([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)$";
static const char *const volume_id_re = "^([a-zA-Z][a-zA-Z0-9._-]*[a-zA-Z0-9]):(.+)$";
static const char *const storage_id_re = "^[a-zA-Z][a-zA-Z0-9._-]*[a-zA-Z0-9]$";
static const char *const configid_re = "^[a-zA-Z][a-zA-Z0-9_-]+$";

static bool check_volume_id(const char *value, struct strbuf *reason)
{
    if (qm_regex_match(volume_id_re, value))
        return true;
    sb_addf(reason, "unable to parse volume ID '%s'", value);
    return false;
}

static bool check_cpuset(const char *value, struct strbuf *reason)
{
    /* Comma-separated CPU numbers or ranges a-b with a <= b, spaces around parts allowed. */
    char *copy = qm_strdup(value);
    bool ok = true;
    int count = 0;

    for (char *save = NULL, *part = strtok_r(copy, ",", &save); part;
         part = strtok_r(NULL, ",", &save)) {
        char *item = qm_str_trim(part);
        unsigned long a, b;
        int used = 0;
        if (sscanf(item, "%lu-%lu%n", &a, &b, &used) == 2 && item[used] == '\0') {
            if (a > b)
                ok = false;
        } else if (sscanf(item, "%lu%n", &a, &used) != 1 || item[used] != '\0') {
            ok = false;
        }
        if (!isdigit((unsigned char)item[0]))
            ok = false;
        count++;
    }
    if (count == 0)
        ok = false;
    free(copy);
    if (!ok)
        sb_add(reason, "unable to parse cpuset option");
    return ok;
}

static bool check_startup_order(const char *value, struct strbuf *reason)
{
    char *copy = qm_strdup(value);
    bool ok = true;

    for (char *save = NULL, *part = strtok_r(copy, ",", &save); part && ok;
         part = strtok_r(NULL, ",", &save)) {
        if (qm_regex_match("^(order=)?[0-9]+$", part) || qm_regex_match("^up=[0-9]+$", part) ||
            qm_regex_match("^down=[0-9]+$", part))
            continue;
        if (qm_regex_match("^[[:space:]]*$", part))
            continue;
        ok = false;
    }
    free(copy);
    if (!ok)
        sb_add(reason, "unable to parse startup options");
    return ok;
}

static bool check_bootdev(const char *dev, struct strbuf *reason)
{
    if (qm_is_drive_key(dev) && strncmp(dev, "efidisk", 7) != 0 &&
        strncmp(dev, "tpmstate", 8) != 0)
        return true;
    const struct qm_schema_key *key = qm_schema_lookup(dev);
    if (key && (qm_str_starts(dev, "net") || qm_str_starts(dev, "usb") ||
                qm_str_starts(dev, "hostpci")) && key->max_index >= 0)
        return true;
    sb_addf(reason, "invalid boot device '%s'", dev);
    return false;
}

static bool check_hotplug(const char *value, struct strbuf *reason)
{
    if (strcmp(value, "0") == 0 || strcmp(value, "1") == 0)
        return true;
    struct strvec items = { 0 };
    bool ok = true;
    split_list(value, &items);
    for (size_t i = 0; i < items.n && ok; i++) {
        if (!qm_regex_match("^(network|disk|cpu|memory|usb|cloudinit)$", items.v[i])) {
            sb_addf(reason, "invalid hotplug feature '%s'", items.v[i]);
            ok = false;
        }
    }
    sv_free(&items);
    return ok;
}

/* A format name ending in "-list": every item of the split value must pass the base format. */
static bool check_list(const char *base, const char *value, struct strbuf *reason)
{
    struct strvec items = { 0 };
    bool ok = true;
    split_list(value, &items);
    for (size_t i = 0; i < items.n && ok; i++)
        ok = qm_format_check(base, items.v[i], reason);
    sv_free(&items);
    return ok;
}

bool qm_format_check(const char *format, const char *value, struct strbuf *reason)
{
    if (qm_str_ends(format, "-list")) {
        char *base = qm_strndup(format, strlen(format) - 5);
        bool ok = check_list(base, value, reason);
        free(base);
        return ok;
    }

    if (strcmp(format, "pve-volume-id") == 0)
        return check_volume_id(value, reason);
    if (strcmp(format, "pve-volume-id-or-absolute-path") == 0)
        return value[0] == '/' || check_volume_id(value, reason);
    if (strcmp(format, "pve-volume-id-or-qm-path") == 0) {
        if (strcmp(value, "none") == 0 || strcmp(value, "cdrom") == 0 || value[0] == '/')
            return true;
        return check_volume_id(value, reason);
    }
    if (strcmp(format, "pve-storage-id") == 0) {
        if (strlen(value) < 2) {
            sb_addf(reason, "storage ID '%s' cannot be shorter than 2 characters", value);
            return false;
        }
        if (!qm_regex_match(storage_id_re, value)) {
            sb_addf(reason, "storage ID '%s' contains illegal characters", value);
            return false;
        }
        return true;
    }
    if (strcmp(format, "pve-configid") == 0) {
        if (qm_regex_match(configid_re, value))
            return true;
        sb_addf(reason, "invalid configuration ID '%s'", value);
        return false;
    }
    if (strcmp(format, "pve-bridge-id") == 0) {
        if (qm_regex_match("^[-_.[:alnum:]]+$", value))
            return true;
        sb_addf(reason, "invalid bridge ID '%s'", value);
        return false;
    }
    if (strcmp(format, "urlencoded") == 0) {
        if (qm_regex_match("^[-%a-zA-Z0-9_.!~*'()]*$", value))
            return true;
        sb_addf(reason, "invalid urlencoded string: %s", value);
        return false;
    }
    if (strcmp(format, "dns-name") == 0) {
        if (qm_regex_match(dns_name_re, value))
            return true;
        sb_add(reason, "value does not look like a valid DNS name");
        return false;
    }
    if (strcmp(format, "address") == 0) {
        if (is_ipv4(value) || is_ipv6(value) || qm_regex_match(dns_name_re, value))
            return true;
        sb_addf(reason, "value does not look like a valid address: %s", value);
        return false;
    }
    if (strcmp(format, "ipv4") == 0) {
        if (is_ipv4(value))
            return true;
        sb_add(reason, "value does not look like a valid IPv4 address");
        return false;
    }
    if (strcmp(format, "ipv6") == 0) {
        if (is_ipv6(value))
            return true;
        sb_add(reason, "value does not look like a valid IPv6 address");
        return false;
    }
    if (strcmp(format, "pve-ipv4-config") == 0) {
        if (strcmp(value, "dhcp") == 0 || strcmp(value, "manual") == 0 || is_cidr(value, false))
            return true;
        sb_add(reason, "value does not look like a valid ipv4 network configuration");
        return false;
    }
    if (strcmp(format, "pve-ipv6-config") == 0) {
        if (strcmp(value, "auto") == 0 || strcmp(value, "dhcp") == 0 ||
            strcmp(value, "manual") == 0 || is_cidr(value, true))
            return true;
        sb_add(reason, "value does not look like a valid ipv6 network configuration");
        return false;
    }
    if (strcmp(format, "mac-addr") == 0) {
        if (qm_regex_match("^[a-fA-F0-9][02468aceACE](:[a-fA-F0-9]{2}){5}$", value))
            return true;
        sb_add(reason, "value does not look like a valid unicast MAC address");
        return false;
    }
    if (strcmp(format, "disk-size") == 0) {
        unsigned long long bytes;
        if (qm_parse_size(value, &bytes))
            return true;
        sb_addf(reason, "value does not look like a valid disk size: %s", value);
        return false;
    }
    if (strcmp(format, "pve-tag") == 0) {
        if (qm_regex_match("^[a-zA-Z0-9_][a-zA-Z0-9_+.-]*$", value))
            return true;
        sb_add(reason, "invalid characters in tag");
        return false;
    }
    if (strcmp(format, "pve-cpuset") == 0)
        return check_cpuset(value, reason);
    if (strcmp(format, "pve-startup-order") == 0)
        return check_startup_order(value, reason);
    if (strcmp(format, "pve-hotplug-features") == 0)
        return check_hotplug(value, reason);
    if (strcmp(format, "pve-qm-bootdev") == 0)
        return check_bootdev(value, reason);
    if (strcmp(format, "pve-qm-bootdisk") == 0) {
        if (qm_is_drive_key(value))
            return true;
        sb_addf(reason, "invalid drive name '%s'", value);
        return false;
    }
    if (strcmp(format, "pve-phys-bits") == 0) {
        long long bits;
        if (strcmp(value, "host") == 0)
            return true;
        if (qm_regex_match("^[0-9]{1,2}$", value) && qm_parse_int(value, &bits) && bits >= 8 &&
            bits <= 64)
            return true;
        sb_addf(reason, "invalid phys-bits value '%s'", value);
        return false;
    }

    sb_addf(reason, "undefined format '%s'", format);
    return false;
}

bool qm_schema_check_value(const struct qm_schema_key *key, const char *value,
                           struct strbuf *reason)
{
    static const char *const type_names[] = {
        [QM_TYPE_STRING] = "string", [QM_TYPE_BOOLEAN] = "boolean",
        [QM_TYPE_INTEGER] = "integer", [QM_TYPE_NUMBER] = "number",
    };

    bool type_ok = true;
    switch (key->type) {
    case QM_TYPE_BOOLEAN:
        type_ok = strcmp(value, "0") == 0 || strcmp(value, "1") == 0;
        break;
    case QM_TYPE_INTEGER:
        type_ok = qm_is_integer(value);
        break;
    case QM_TYPE_NUMBER:
        type_ok = qm_is_number(value);
        break;
    case QM_TYPE_STRING:
        break;
    }
    if (!type_ok) {
        sb_addf(reason, "type check ('%s') failed - got '%s'", type_names[key->type], value);
        return false;
    }

    if (key->format) {
        struct strbuf why = { 0 };
        bool ok = qm_format_check(key->format, value, &why);
        if (!ok)
            sb_addf(reason, "invalid format - %s", why.buf);
        sb_free(&why);
        if (!ok)
            return false;
    }
    if (key->propstr) {
        struct qm_propstr ps;
        struct qm_error err;
        if (qm_propstr_parse_format(key->propstr, value, &ps, &err) < 0) {
            sb_addf(reason, "invalid format - %s", err.msg);
            return false;
        }
        qm_propstr_free(&ps);
    }
    if (key->pattern && !qm_regex_match(key->pattern, value)) {
        sb_add(reason, "value does not match the regex pattern");
        return false;
    }
    if (key->max_length > 0 && strlen(value) > (size_t)key->max_length) {
        sb_addf(reason, "value may only be %d characters long", key->max_length);
        return false;
    }
    if ((key->has_min || key->has_max) && qm_is_number(value)) {
        double number = strtod(value, NULL);
        if (key->has_max && number > key->max) {
            sb_addf(reason, "value must have a maximum value of %.15g", key->max);
            return false;
        }
        if (key->has_min && number < key->min) {
            sb_addf(reason, "value must have a minimum value of %.15g", key->min);
            return false;
        }
    }
    if (key->enum_values) {
        for (const char *const *e = key->enum_values; *e; e++) {
            if (strcmp(*e, value) == 0)
                return true;
        }
        sb_addf(reason, "value '%s' does not have a value in the enumeration '", value);
        for (const char *const *e = key->enum_values; *e; e++)
            sb_addf(reason, "%s%s", e == key->enum_values ? "" : ", ", *e);
        sb_addc(reason, '\'');
        return false;
    }
    return true;
}

bool qm_conf_is_drive_key(const char *key)
{
    return qm_is_drive_key(key);
}

bool qm_conf_parse_size(const char *value, unsigned long long *bytes)
{
    return qm_parse_size(value, bytes);
}
