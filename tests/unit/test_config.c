/* Tests of the YAML config system against a schema defined here: defaults, file values,
 * overrides, every rejection (with the file, line and key path in its message), the YAML
 * round trip and the --help-config listing. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "kiln/config.h"

typedef struct {
    int steps;
    int64_t tokens;
    int amp;
    kiln_cfg_str run_name;
    kiln_cfg_str optim_name;
    double lr;
    kiln_cfg_int_list hidden;
    kiln_cfg_str act;
    int dim;
    int seed;
} test_cfg;

#define KEY(path, type, field, def, choices, help) \
    {path, type, offsetof(test_cfg, field), def, choices, help}
static const kiln_cfg_key test_keys[] = {
    KEY("train.steps", KILN_CFG_INT, steps, "100", NULL, "optimizer steps"),
    KEY("train.tokens", KILN_CFG_INT64, tokens, "5000000000", NULL, "token budget"),
    KEY("train.amp", KILN_CFG_BOOL, amp, "false", NULL, "mixed precision"),
    KEY("train.run_name", KILN_CFG_STRING, run_name, "", NULL, "name shown in logs"),
    KEY("optim.name", KILN_CFG_STRING, optim_name, "adamw", "adamw|sgd", "optimizer"),
    KEY("optim.lr", KILN_CFG_FLOAT, lr, "3e-4", NULL, "peak learning rate"),
    KEY("model.mlp.hidden", KILN_CFG_INT_LIST, hidden, "[512, 512]", NULL, "hidden widths"),
    KEY("model.mlp.act", KILN_CFG_STRING, act, "gelu", "gelu|relu", "activation"),
    KEY("model.dim", KILN_CFG_INT, dim, "64", NULL, "input width"),
    KEY("seed", KILN_CFG_INT, seed, "1234", NULL, "random seed"),
};
static const kiln_cfg_schema test_schema = {"test", test_keys,
                                            sizeof test_keys / sizeof test_keys[0], NULL, 0};

/* A fresh temporary file holding text; the caller removes it and frees the name. */
static char *tmp_yaml(const char *text)
{
    static int counter;
    const char *dir = getenv("KILN_TEST_TMP");
    if (!dir || !*dir) dir = "/tmp";
    mkdir(dir, 0777); /* ctest's tmp dir may not exist yet; EEXIST is fine */
    char *path = malloc(4096);
    snprintf(path, 4096, "%s/test_config_%d_%d.yaml", dir, (int)getpid(), counter++);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

static kiln_status load_text(test_cfg *c, const char *yaml, const char *const *ov, int n)
{
    return kiln_config_load_text(&test_schema, c, yaml, "configs/x.yaml", ov, n);
}

static void check_defaults(const test_cfg *c)
{
    CHECK(c->steps == 100, "steps %d", c->steps);
    CHECK(c->tokens == 5000000000LL, "tokens %lld", (long long)c->tokens);
    CHECK(c->amp == 0, "amp %d", c->amp);
    CHECK(!strcmp(c->run_name, ""), "run_name '%s'", c->run_name);
    CHECK(!strcmp(c->optim_name, "adamw"), "optim.name '%s'", c->optim_name);
    CHECK(c->lr == 3e-4, "lr %.17g", c->lr);
    CHECK(c->hidden.n == 2 && c->hidden.v[0] == 512 && c->hidden.v[1] == 512, "hidden n=%d",
          c->hidden.n);
    CHECK(!strcmp(c->act, "gelu"), "act '%s'", c->act);
    CHECK(c->dim == 64 && c->seed == 1234, "dim %d seed %d", c->dim, c->seed);
}

static void test_defaults(void)
{
    test_cfg c;
    memset(&c, 0x5a, sizeof c);
    CHECK_OK(kiln_config_load(&test_schema, &c, NULL, NULL, 0));
    check_defaults(&c);
    /* an empty file, an empty mapping and a comment-only file are all defaults too */
    const char *empties[] = {"", "{}\n", "# nothing here\n\n", "---\n",
                             "optim:\n  # lr: 1\nmodel: {mlp: ~}\n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        test_cfg d;
        memset(&d, 0x5a, sizeof d);
        CHECK_OK(load_text(&d, empties[i], NULL, 0));
        CHECK(!memcmp(&c, &d, sizeof c), "config from '%s' differs from defaults", empties[i]);
    }
}

static const char file_yaml[] =
    "# a training config\n"
    "train:\n"
    "  steps: 2500     # comment after a value\n"
    "  tokens: -9223372036854775808\n"
    "  amp: yes\n"
    "  run_name: 'nightly: #3'\n"
    "optim: {name: sgd, lr: 1e-2}\n"
    "model:\n"
    "  mlp:\n"
    "    hidden:\n"
    "      - 1024\n"
    "      - 256\n"
    "      - 4\n"
    "  dim: 8\n"
    "seed: 7\n";

static void check_file_values(const test_cfg *c)
{
    CHECK(c->steps == 2500, "steps %d", c->steps);
    CHECK(c->tokens == INT64_MIN, "tokens %lld", (long long)c->tokens);
    CHECK(c->amp == 1, "amp %d", c->amp);
    CHECK(!strcmp(c->run_name, "nightly: #3"), "run_name '%s'", c->run_name);
    CHECK(!strcmp(c->optim_name, "sgd"), "optim.name '%s'", c->optim_name);
    CHECK(c->lr == 1e-2, "lr %.17g", c->lr);
    CHECK(c->hidden.n == 3 && c->hidden.v[0] == 1024 && c->hidden.v[1] == 256 &&
              c->hidden.v[2] == 4, "hidden n=%d", c->hidden.n);
    CHECK(!strcmp(c->act, "gelu"), "act '%s' (not in the file: default)", c->act);
    CHECK(c->dim == 8 && c->seed == 7, "dim %d seed %d", c->dim, c->seed);
}

static void test_file_and_overrides(void)
{
    char *path = tmp_yaml(file_yaml);
    test_cfg c;
    memset(&c, 0, sizeof c);
    CHECK_OK(kiln_config_load(&test_schema, &c, path, NULL, 0));
    check_file_values(&c);

    /* overrides beat the file, apply in order, and reach every type */
    const char *ov[] = {"optim.lr=5e-5", "train.steps=10", "train.steps=11", "train.amp=off",
                        "model.mlp.hidden=[8, 16]", "model.mlp.act=relu",
                        "train.run_name=a=b", "train.tokens=42"};
    CHECK_OK(kiln_config_load(&test_schema, &c, path, ov, (int)(sizeof ov / sizeof ov[0])));
    CHECK(c.lr == 5e-5, "lr %.17g", c.lr);
    CHECK(c.steps == 11, "last override wins: steps %d", c.steps);
    CHECK(c.amp == 0 && c.tokens == 42, "amp %d tokens %lld", c.amp, (long long)c.tokens);
    CHECK(c.hidden.n == 2 && c.hidden.v[0] == 8 && c.hidden.v[1] == 16, "hidden n=%d", c.hidden.n);
    CHECK(!strcmp(c.act, "relu") && !strcmp(c.run_name, "a=b"), "act '%s' run_name '%s'", c.act,
          c.run_name);
    CHECK(!strcmp(c.optim_name, "sgd") && c.dim == 8, "file values kept: %s %d", c.optim_name,
          c.dim);
    remove(path);
    free(path);

    /* the same text from memory gives the same struct as the file */
    test_cfg t;
    memset(&t, 0, sizeof t);
    CHECK_OK(load_text(&t, file_yaml, NULL, 0));
    check_file_values(&t);
}

static void test_value_forms(void)
{
    struct { const char *set; size_t off; double want; } nums[] = {
        {"optim.lr=3", offsetof(test_cfg, lr), 3.0},
        {"optim.lr=-2.5E+3", offsetof(test_cfg, lr), -2500.0},
        {"optim.lr=.5", offsetof(test_cfg, lr), 0.5},
        {"train.steps=-7", offsetof(test_cfg, steps), -7},
        {"train.steps=2147483647", offsetof(test_cfg, steps), 2147483647.0},
        {"train.amp=ON", offsetof(test_cfg, amp), 1},
        {"train.amp=1", offsetof(test_cfg, amp), 1},
        {"train.amp=No", offsetof(test_cfg, amp), 0},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        test_cfg c;
        memset(&c, 0, sizeof c);
        CHECK_OK(load_text(&c, "train: {amp: true}\n", &nums[i].set, 1));
        const char *f = (const char *)&c + nums[i].off;
        double got = nums[i].off == offsetof(test_cfg, lr) ? *(const double *)f : *(const int *)f;
        CHECK(got == nums[i].want, "%s -> %.17g", nums[i].set, got);
    }
    test_cfg c;
    memset(&c, 0, sizeof c);
    const char *empty_list = "model.mlp.hidden=[]";
    CHECK_OK(load_text(&c, NULL, &empty_list, 1));
    CHECK(c.hidden.n == 0, "empty list: n=%d", c.hidden.n);
    const char *flow = "model: {mlp: {hidden: [3, 2, 1]}}\n";
    CHECK_OK(load_text(&c, flow, NULL, 0));
    CHECK(c.hidden.n == 3 && c.hidden.v[2] == 1, "flow list n=%d", c.hidden.n);
    const char *sixteen = "model.mlp.hidden=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16";
    CHECK_OK(load_text(&c, NULL, &sixteen, 1));
    CHECK(c.hidden.n == 16 && c.hidden.v[15] == 16, "16 items: n=%d", c.hidden.n);
    char longest[KILN_CFG_STR_MAX + 32] = "train.run_name=";
    memset(longest + strlen(longest), 'x', KILN_CFG_STR_MAX - 1);
    const char *ov = longest;
    CHECK_OK(load_text(&c, NULL, &ov, 1));
    CHECK(strlen(c.run_name) == KILN_CFG_STR_MAX - 1, "longest string: %zu", strlen(c.run_name));
}

/* Loading must fail with KILN_ERR_CONFIG, a message containing want, and *out untouched. */
static void check_text_fails(const char *yaml, const char *override, const char *want)
{
    test_cfg c, before;
    memset(&c, 0xa5, sizeof c);
    before = c;
    CHECK_FAILS(load_text(&c, yaml, &override, override ? 1 : 0), KILN_ERR_CONFIG, want);
    CHECK(!memcmp(&c, &before, sizeof c), "failed load of '%s' / '%s' changed the struct",
          yaml ? yaml : "", override ? override : "");
}

/* Same through a real file: want is what follows the file's name in the message. */
static void check_file_fails(const char *yaml, const char *want_after_path)
{
    char *path = tmp_yaml(yaml);
    char want[4200];
    snprintf(want, sizeof want, "%s%s", path, want_after_path);
    test_cfg c;
    CHECK_FAILS(kiln_config_load(&test_schema, &c, path, NULL, 0), KILN_ERR_CONFIG, want);
    remove(path);
    free(path);
}

static void test_yaml_errors(void)
{
    check_file_fails("train:\n  steps: 5\noptim:\n  lr: 1: 2\n",
                     ":4:8: malformed YAML: mapping values are not allowed in this context");
    check_file_fails("model: {dim: [1, 2}\n", ":1:");
    check_file_fails("train:\n  steps: 5\n\n\noptim:\n  name: sgd\n  lrr: 0.1\n",
                     ":7: unknown key 'optim.lrr' (did you mean 'optim.lr'?)");
    check_file_fails("train:\n  steps: 1\n  steps: 2\n",
                     ":3: duplicate key 'train.steps' (first at line 2)");
    check_file_fails("train: {steps: 1}\noptim: {lr: 1}\ntrain: {amp: on}\n",
                     ":3: duplicate key 'train' (first at line 1)");
    char *missing = tmp_yaml("");
    remove(missing);
    char want[4200];
    snprintf(want, sizeof want, "config file '%s': No such file or directory", missing);
    test_cfg c;
    CHECK_FAILS(kiln_config_load(&test_schema, &c, missing, NULL, 0), KILN_ERR_CONFIG, want);
    free(missing);

    check_text_fails("optim:\n  learning_rate: 1\n", NULL,
                     "configs/x.yaml:2: unknown key 'optim.learning_rate' (known keys under "
                     "'optim': optim.name, optim.lr)");
    check_text_fails("modle:\n  dim: 3\n", NULL,
                     "configs/x.yaml:1: unknown key 'modle' (did you mean 'model'?)");
    check_text_fails("model:\n  mlp:\n    width: 3\n", NULL,
                     "configs/x.yaml:3: unknown key 'model.mlp.width' (known keys under "
                     "'model.mlp': model.mlp.hidden, model.mlp.act)");
    check_text_fails("zzzzzzzz: 1\n", NULL,
                     "unknown key 'zzzzzzzz' (known top-level keys: train, optim, model, seed)");
    check_text_fails("optim: 3\n", NULL,
                     "configs/x.yaml:1: 'optim' is a section (optim.name, optim.lr): expected a "
                     "mapping, found '3'");
    check_text_fails("model:\n  mlp: [1, 2]\n", NULL, "configs/x.yaml:2: 'model.mlp' is a section");
    check_text_fails("optim:\n  lr: {a: 1}\n", NULL,
                     "configs/x.yaml:2: key 'optim.lr' expects a number, found a mapping");
    check_text_fails("train:\n  steps: [1, 2]\n", NULL,
                     "configs/x.yaml:2: key 'train.steps' expects an integer, found a sequence");
    check_text_fails("model:\n  mlp:\n    hidden: [1, [2]]\n", NULL,
                     "configs/x.yaml:3: key 'model.mlp.hidden': list items must be scalars, found "
                     "a sequence");
    check_text_fails("train: &a {steps: 1}\noptim: *a\n", NULL, "configs/x.yaml:2: key 'optim'");
    check_text_fails("[1, 2]\n", NULL, "configs/x.yaml:1: expected a mapping of config keys");
    check_text_fails("seed: 1\n---\nseed: 2\n", NULL, "configs/x.yaml:2: a config holds one YAML");
    check_text_fails("optim.lr: 1\n", NULL, "configs/x.yaml:1: invalid key 'optim.lr'");
}

static void test_type_errors(void)
{
    static const struct { const char *set, *want; } bad[] = {
        {"train.steps=1.5", "key 'train.steps' expects an integer, found '1.5'"},
        {"train.steps=abc", "key 'train.steps' expects an integer, found 'abc'"},
        {"train.steps=", "key 'train.steps' expects an integer, found ''"},
        {"train.steps=2147483648",
         "key 'train.steps' expects an integer, found '2147483648' (out of range)"},
        {"train.steps=-99999999999",
         "key 'train.steps' expects an integer, found '-99999999999' (out of range)"},
        {"train.tokens=9223372036854775808", "key 'train.tokens' expects a 64-bit integer"},
        {"train.tokens=1e3", "key 'train.tokens' expects a 64-bit integer, found '1e3'"},
        {"optim.lr=nan", "key 'optim.lr' expects a number, found 'nan'"},
        {"optim.lr=inf", "key 'optim.lr' expects a number, found 'inf'"},
        {"optim.lr=-Infinity", "key 'optim.lr' expects a number"},
        {"optim.lr=1e999", "key 'optim.lr' expects a number, found '1e999'"},
        {"optim.lr=1.2.3", "key 'optim.lr' expects a number, found '1.2.3'"},
        {"optim.lr=0.1x", "key 'optim.lr' expects a number"},
        {"train.amp=maybe", "key 'train.amp' expects a boolean (true/false/yes/no/on/off/1/0), "
                            "found 'maybe'"},
        {"train.amp=2", "key 'train.amp' expects a boolean"},
        {"optim.name=adam", "key 'optim.name' must be one of adamw|sgd, found 'adam'"},
        {"optim.name=", "key 'optim.name' must be one of adamw|sgd, found ''"},
        {"optim.name=adamw|sgd", "key 'optim.name' must be one of adamw|sgd, found 'adamw|sgd'"},
        {"model.mlp.hidden=1,x", "key 'model.mlp.hidden' expects a list of integers, found 'x'"},
        {"model.mlp.hidden=[1,2", "key 'model.mlp.hidden' expects a list of integers, found '[1'"},
        {"model.mlp.hidden=1,,2", "key 'model.mlp.hidden' expects a list of integers, found ''"},
        {"model.mlp.hidden=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
         "key 'model.mlp.hidden' expects at most 16 integers, found 17"},
        {"optim.lrr=1", "unknown key 'optim.lrr' (did you mean 'optim.lr'?)"},
        {"optim=3", "'optim' is a section (optim.name, optim.lr): expected a mapping, found '3'"},
        {"optim.lr", "expected key=value"},
        {"=3", "expected key=value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[512];
        /* every override error names the --set argument first */
        snprintf(want, sizeof want, "--set %s: %s", bad[i].set, bad[i].want);
        check_text_fails(NULL, bad[i].set, want);
    }
    char toolong[KILN_CFG_STR_MAX + 32] = "train.run_name=";
    memset(toolong + strlen(toolong), 'x', KILN_CFG_STR_MAX);
    check_text_fails(NULL, toolong,
                     "key 'train.run_name' expects a string of at most 511 bytes, found 512 bytes");

    /* the same rules in a file, with the line of the key */
    check_text_fails("optim:\n  lr: 1e-3\ntrain:\n  steps: abc\n", NULL,
                     "configs/x.yaml:4: key 'train.steps' expects an integer, found 'abc'");
    check_text_fails("optim: {name: adam}\n", NULL,
                     "configs/x.yaml:1: key 'optim.name' must be one of adamw|sgd, found 'adam'");
    check_text_fails("model:\n  mlp:\n    hidden:\n      - 1\n      - 1.5\n", NULL,
                     "configs/x.yaml:3: key 'model.mlp.hidden' expects a list of integers, found "
                     "'1.5'");

    /* a bad default is a schema bug, reported against the schema */
    static const kiln_cfg_key bad_key[] = {
        {"x", KILN_CFG_INT, offsetof(test_cfg, steps), "abc", NULL, "broken"}};
    const kiln_cfg_schema bad_schema = {"broken", bad_key, 1, NULL, 0};
    test_cfg c;
    CHECK_FAILS(kiln_config_load(&bad_schema, &c, NULL, NULL, 0), KILN_ERR_CONFIG,
                "schema 'broken' default: key 'x' expects an integer, found 'abc'");
}

static void check_round_trip(const test_cfg *a, const char *what)
{
    char *yaml = kiln_config_to_yaml(&test_schema, a);
    CHECK(yaml != NULL, "%s: to_yaml returned NULL", what);
    if (!yaml) return;
    test_cfg b;
    memset(&b, 0, sizeof b);
    CHECK_OK(kiln_config_load_text(&test_schema, &b, yaml, what, NULL, 0));
    CHECK(!memcmp(a, &b, sizeof b), "%s: config differs after the YAML round trip:\n%s", what,
          yaml);
    free(yaml);
}

static void set_str(char *field, const char *s)
{
    memset(field, 0, KILN_CFG_STR_MAX);
    strcpy(field, s);
}

static void test_round_trip(void)
{
    test_cfg a;
    memset(&a, 0, sizeof a);
    CHECK_OK(kiln_config_load(&test_schema, &a, NULL, NULL, 0));
    char *yaml = kiln_config_to_yaml(&test_schema, &a);
    const char *expect =
        "train:\n  steps: 100\n  tokens: 5000000000\n  amp: false\n  run_name: \"\"\n"
        "optim:\n  name: \"adamw\"\n  lr: 0.0003\n"
        "model:\n  mlp:\n    hidden: [512, 512]\n    act: \"gelu\"\n  dim: 64\n"
        "seed: 1234\n";
    CHECK(yaml && !strcmp(yaml, expect), "defaults as YAML:\n%s", yaml ? yaml : "(null)");
    free(yaml);
    check_round_trip(&a, "defaults");

    a.lr = (double)0.1f; /* a float32 value: %.9g must still read back exactly */
    a.tokens = INT64_MAX;
    a.steps = INT32_MIN;
    a.amp = 1;
    a.hidden.n = KILN_CFG_LIST_MAX;
    for (int i = 0; i < KILN_CFG_LIST_MAX; i++) a.hidden.v[i] = i % 2 ? INT32_MAX : -i;
    set_str(a.run_name,
            "say \"hi\" \\ tab\there\nline2: #not-a-comment 'q' \x01\x7f caf\xc3\xa9 - [x]");
    set_str(a.act, "relu");
    check_round_trip(&a, "extremes");

    a.lr = 0.1; /* needs all 17 digits */
    set_str(a.run_name, "true");
    a.hidden.n = 0;
    memset(a.hidden.v, 0, sizeof a.hidden.v);
    check_round_trip(&a, "double and lookalike string");
    a.lr = -0.0;
    set_str(a.run_name, "123");
    check_round_trip(&a, "negative zero and numeric string");
    a.lr = 4.9406564584124654e-324;
    set_str(a.run_name, "~");
    check_round_trip(&a, "denormal and null-like string");
}

static void test_help(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    kiln_config_print_help(&test_schema, f);
    fclose(f);
    CHECK(strstr(text, "'test'") != NULL, "help names the schema:\n%s", text);
    const char *header = strstr(text, "KEY");
    const char *type_col = header ? strstr(header, "TYPE") : NULL;
    CHECK(type_col != NULL, "help has a header row:\n%s", text);
    size_t col = type_col ? (size_t)(type_col - header) : 0;
    for (size_t i = 0; i < test_schema.n_keys; i++) {
        const kiln_cfg_key *k = &test_keys[i];
        char start[128];
        snprintf(start, sizeof start, "\n  %s ", k->path);
        const char *line = strstr(text, start);
        CHECK(line != NULL, "help lacks key %s:\n%s", k->path, text);
        if (!line) continue;
        line += 3; /* to the key, where the header's KEY sits */
        const char *eol = strchr(line, '\n');
        CHECK(eol && strstr(line, k->help) && strstr(line, k->help) < eol, "help of %s", k->path);
        CHECK(line[col - 1] == ' ' && line[col] != ' ', "%s: type column not aligned:\n%s",
              k->path, text);
        if (k->choices)
            CHECK(strstr(line, k->choices) && strstr(line, k->choices) < eol, "choices of %s",
                  k->path);
    }
    CHECK(strstr(text, "[512, 512]") != NULL, "help shows the list default:\n%s", text);
    free(text);
}

/* ---- compositions: sections declared once, placed in a job's struct ---- */

typedef struct { kiln_cfg_str name; int threads; } part_a;
typedef struct { double lr; int steps; } part_b;
typedef struct {
    int pad;
    part_b b;
    part_a a;
} job_cfg;

static const kiln_cfg_key a_keys[] = {
    {"run.name", KILN_CFG_STRING, offsetof(part_a, name), "x", NULL, "name"},
    {"run.threads", KILN_CFG_INT, offsetof(part_a, threads), "2", NULL, "threads"},
};
static const kiln_cfg_key b_keys[] = {
    {"optim.lr", KILN_CFG_FLOAT, offsetof(part_b, lr), "0.5", NULL, "lr"},
    {"optim.steps", KILN_CFG_INT, offsetof(part_b, steps), "10", NULL, "steps"},
};
static const kiln_cfg_schema sec_a = {"run", a_keys, 2, NULL, 0};
static const kiln_cfg_schema sec_b = {"optim", b_keys, 2, NULL, 0};
static const kiln_cfg_part job_parts[] = {{&sec_a, offsetof(job_cfg, a)}, {&sec_b, offsetof(job_cfg, b)}};
static const kiln_cfg_schema job_schema = {"job", NULL, 0, job_parts, 2};

static void test_composition(void)
{
    job_cfg c;
    memset(&c, 0x5a, sizeof c);
    const char *ov[] = {"run.threads=8"};
    CHECK_OK(kiln_config_load_text(&job_schema, &c, "optim:\n  lr: 0.25\n", "job.yaml", ov, 1));
    CHECK(!strcmp(c.a.name, "x") && c.a.threads == 8, "part a: '%s' %d", c.a.name, c.a.threads);
    CHECK(c.b.lr == 0.25 && c.b.steps == 10, "part b: %g %d", c.b.lr, c.b.steps);
    CHECK(c.pad == 0x5a5a5a5a, "bytes outside the parts are untouched: %x", (unsigned)c.pad);
    /* the emitted YAML lists the parts in order and reads back to the same values */
    char *yaml = kiln_config_to_yaml(&job_schema, &c);
    CHECK(yaml && strstr(yaml, "run:\n  name: \"x\"\n  threads: 8\noptim:\n  lr: 0.25\n"),
          "yaml of a composition:\n%s", yaml ? yaml : "(null)");
    job_cfg d;
    memset(&d, 0, sizeof d);
    CHECK_OK(kiln_config_load_text(&job_schema, &d, yaml, "emitted", NULL, 0));
    CHECK(d.a.threads == 8 && d.b.lr == 0.25, "round trip: %d %g", d.a.threads, d.b.lr);
    free(yaml);
    CHECK_FAILS(kiln_config_load_text(&job_schema, &c, "train:\n  x: 1\n", "job.yaml", NULL, 0),
                KILN_ERR_CONFIG, "unknown key 'train' (known top-level keys: run, optim)");
    kiln_cfg_key *keys;
    size_t n;
    CHECK_OK(kiln_config_keys(&job_schema, &keys, &n));
    CHECK(n == 4 && keys[2].offset == offsetof(job_cfg, b) + offsetof(part_b, lr),
          "flattened: %zu keys, optim.lr at %zu", n, n > 2 ? keys[2].offset : 0);
    free(keys);
}

static void test_key_declared_twice(void)
{
    static const kiln_cfg_part twice[] = {{&sec_a, offsetof(job_cfg, a)}, {&sec_a, offsetof(job_cfg, a)}};
    const kiln_cfg_schema bad = {"twice", NULL, 0, twice, 2};
    job_cfg c;
    CHECK_FAILS(kiln_config_load_text(&bad, &c, NULL, NULL, NULL, 0), KILN_ERR_CONFIG,
                "key 'run.name' is declared twice: by section 'run' and by section 'run'");
}

/* A checkpoint's config holds a whole job's sections: one section is read out of it alone. */
static void test_load_sections(void)
{
    part_b b;
    const char *text = "model:\n  kind: \"gpt\"\noptim:\n  lr: 0.125\ntrain:\n  steps: 3\n";
    CHECK_OK(kiln_config_load_sections(&sec_b, &b, text, "ckpt.h5"));
    CHECK(b.lr == 0.125 && b.steps == 10, "sections only: lr %g steps %d", b.lr, b.steps);
    CHECK_FAILS(kiln_config_load_sections(&sec_b, &b, "optim:\n  lrr: 1\n", "ckpt.h5"),
                KILN_ERR_CONFIG, "unknown key 'optim.lrr'");
}

typedef struct { int n, quoted_seen, plain_seen, seq_len; } walk_seen;

static kiln_status on_value(void *ctx, const char *path, const char *const *items, int n_items,
                            int is_sequence, int quoted)
{
    walk_seen *w = ctx;
    w->n++;
    if (!strcmp(path, "a.s")) w->quoted_seen = quoted && !strcmp(items[0], "12");
    if (!strcmp(path, "a.i")) w->plain_seen = !quoted && !strcmp(items[0], "12");
    if (!strcmp(path, "b")) w->seq_len = is_sequence ? n_items : -1;
    return KILN_OK;
}

static void test_walk_values(void)
{
    walk_seen w = {0};
    CHECK_OK(kiln_config_walk_values("a:\n  s: \"12\"\n  i: 12\nb: [1, 2, 3]\n", "text",
                                     on_value, &w));
    CHECK(w.n == 3 && w.quoted_seen && w.plain_seen && w.seq_len == 3,
          "walk: %d values, quoted %d, plain %d, sequence of %d", w.n, w.quoted_seen,
          w.plain_seen, w.seq_len);
}

/* Numbers are held to their key's range; a NUL byte cannot cut a value short. */
typedef struct { double p; int n; kiln_cfg_int_list widths; kiln_cfg_str name; } ranged_cfg;
static const kiln_cfg_key ranged_keys[] = {
    {"p", KILN_CFG_FLOAT, offsetof(ranged_cfg, p), "0", "[0,1)", "a probability"},
    {"n", KILN_CFG_INT, offsetof(ranged_cfg, n), "1", "(0,8]", "a count"},
    {"widths", KILN_CFG_INT_LIST, offsetof(ranged_cfg, widths), "[4]", "[1,)", "widths"},
    {"name", KILN_CFG_STRING, offsetof(ranged_cfg, name), "", NULL, "a name"},
};
static const kiln_cfg_schema ranged_schema = {"ranged", ranged_keys, 4, NULL, 0};

static void test_ranges_and_nul(void)
{
    ranged_cfg c;
    const char *ok[] = {"p=0", "p=0.999", "n=8", "widths=1,2"};
    CHECK_OK(kiln_config_load_text(&ranged_schema, &c, NULL, NULL, ok, 4));
    CHECK(c.p == 0.999 && c.n == 8 && c.widths.n == 2, "in range: %g %d", c.p, c.n);
    const char *bad[][2] = {{"p=1", "key 'p' must be in [0,1), found 1"},
                            {"p=-0.5", "key 'p' must be in [0,1), found -0.5"},
                            {"n=0", "key 'n' must be in (0,8], found 0"},
                            {"n=9", "key 'n' must be in (0,8], found 9"},
                            {"widths=3,0", "key 'widths' must be in [1,), found 0"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_FAILS(kiln_config_load_text(&ranged_schema, &c, NULL, NULL, bad[i], 1),
                    KILN_ERR_CONFIG, bad[i][1]);
    CHECK_FAILS(kiln_config_load_text(&ranged_schema, &c, "n: 12\n", "r.yaml", NULL, 0),
                KILN_ERR_CONFIG, "r.yaml:1: key 'n' must be in (0,8], found 12");
    CHECK_FAILS(kiln_config_load_text(&ranged_schema, &c, "name: \"ab\\0cd\"\n", "r.yaml", NULL, 0),
                KILN_ERR_CONFIG, "r.yaml:1: key 'name': the value holds a NUL byte");
    CHECK_FAILS(kiln_config_load_text(&ranged_schema, &c, "\"na\\0me\": x\n", "r.yaml", NULL, 0),
                KILN_ERR_CONFIG, "r.yaml:1: a key under '(top level)' holds a NUL byte");
    static const kiln_cfg_key broken_key[] = {{"x", KILN_CFG_INT, 0, "1", "[0;1]", "x"}};
    const kiln_cfg_schema broken = {"broken", broken_key, 1, NULL, 0};
    int x;
    CHECK_FAILS(kiln_config_load_text(&broken, &x, NULL, NULL, NULL, 0), KILN_ERR_CONFIG,
                "key 'x' has a malformed range '[0;1]' in its schema");
}

int main(void)
{
    test_ranges_and_nul();
    test_composition();
    test_key_declared_twice();
    test_load_sections();
    test_walk_values();
    test_defaults();
    test_file_and_overrides();
    test_value_forms();
    test_yaml_errors();
    test_type_errors();
    test_round_trip();
    test_help();
    TEST_MAIN_END();
}
