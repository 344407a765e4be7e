/* Registry names and URIs. A name becomes a directory name, so it is checked before any path is
 * built from it: letters, digits, '.', '_' and '-', starting with a letter or digit, at most
 * KILN_REGISTRY_NAME_MAX characters, not ending in ".tmp". That excludes "..", "/", empty names,
 * hidden files and the names of files being replaced. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/registry.h"

#define MAX_VERSION 1000000000000LL

int kiln_registry_is_uri(const char *s)
{
    return s && !strncmp(s, KILN_REGISTRY_URI_PREFIX, strlen(KILN_REGISTRY_URI_PREFIX));
}

static int name_char_ok(char c) { return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-'; }

kiln_status kiln_registry_check_name(const char *what, const char *name)
{
    size_t n = strlen(name);
    int ok = n > 0 && n <= KILN_REGISTRY_NAME_MAX && isalnum((unsigned char)name[0]);
    for (size_t i = 0; ok && i < n; i++) ok = name_char_ok(name[i]);
    ok = ok && !(n >= 4 && !strcmp(name + n - 4, ".tmp")); /* the suffix of files being written */
    if (ok) return KILN_OK;
    return KILN_ERROR(KILN_ERR_ARG, "%s '%s' is not valid: expected 1 to %d characters of "
                      "letters, digits, '.', '_' and '-', starting with a letter or digit and "
                      "not ending in '.tmp'", what, name, KILN_REGISTRY_NAME_MAX);
}

/* Digits only, 1 .. MAX_VERSION. */
static int parse_version(const char *s, int64_t *v)
{
    if (!*s || strlen(s) > 13) return 0;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p)) return 0;
    long long x = strtoll(s, NULL, 10);
    if (x < 1 || x > MAX_VERSION) return 0;
    *v = x;
    return 1;
}

static kiln_status uri_error(const char *uri, const char *why)
{
    return KILN_ERROR(KILN_ERR_ARG, "registry URI '%s' %s: expected registry:NAME@ALIAS or "
                      "registry:NAME/VERSION (VERSION a number >= 1)", uri, why);
}

kiln_status kiln_registry_parse_uri(const char *uri, kiln_registry_ref *ref)
{
    memset(ref, 0, sizeof *ref);
    if (!kiln_registry_is_uri(uri)) return uri_error(uri, "does not start with 'registry:'");
    const char *body = uri + strlen(KILN_REGISTRY_URI_PREFIX);
    size_t name_len = strcspn(body, "@/");
    char name[2 * KILN_REGISTRY_NAME_MAX];
    if (name_len >= sizeof name) return uri_error(uri, "has a model name that is too long");
    memcpy(name, body, name_len);
    name[name_len] = '\0';
    const char *rest = body + name_len;
    if (!*rest) return uri_error(uri, "names no alias or version");
    kiln_status st = kiln_registry_check_name("model name", name);
    if (st != KILN_OK) {
        char why[512];
        snprintf(why, sizeof why, "is invalid: %s", kiln_error_message());
        return uri_error(uri, why);
    }
    memcpy(ref->name, name, name_len + 1); /* checked: at most KILN_REGISTRY_NAME_MAX */
    if (*rest == '/') {
        if (!parse_version(rest + 1, &ref->version))
            return uri_error(uri, "has an invalid version");
        return KILN_OK;
    }
    if (strchr(rest + 1, '/') || strchr(rest + 1, '@')) return uri_error(uri, "has an invalid alias");
    st = kiln_registry_check_name("alias", rest + 1);
    if (st != KILN_OK) {
        char why[512];
        snprintf(why, sizeof why, "is invalid: %s", kiln_error_message());
        return uri_error(uri, why);
    }
    memcpy(ref->alias, rest + 1, strlen(rest + 1) + 1);
    return KILN_OK;
}

void kiln_registry_format_uri(const kiln_registry_ref *ref, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s/%" PRId64, KILN_REGISTRY_URI_PREFIX, ref->name, ref->version);
}

const char *kiln_registry_root(const char *configured)
{
    if (configured && *configured) return configured;
    const char *env = getenv("KILN_REGISTRY");
    return env && *env ? env : "registry";
}
