/* test_safetensors.c - the safetensors header validator on handcrafted files. */
#include "common/err.h"
#include "engine/safetensors.h"
#include "testhelp.h"

/* A file image: u64 header length, the header text, `data` bytes of zeros (or hdr_len
 * overrides the length field when nonzero). */
static uint8_t *image(const char *hdr, size_t data, uint64_t hdr_len, size_t *n)
{
    size_t h = strlen(hdr);
    *n = 8 + h + data;
    uint8_t *p = calloc(1, *n ? *n : 1);
    uint64_t L = hdr_len ? hdr_len : h;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(L >> (8 * i));
    memcpy(p + 8, hdr, h);
    return p;
}

static int parse(const char *hdr, size_t data, uint64_t hdr_len, struct st_file *f)
{
    size_t n;
    uint8_t *p = image(hdr, data, hdr_len, &n);
    memset(f, 0, sizeof *f);
    int rc = st_parse(f, p, n, "x.safetensors");
    /* keep p alive while f is open: tests close f before returning, then free */
    if (rc == 0) {
        for (size_t i = 0; i < f->n; i++)
            CHECK(f->t[i].data >= p + 8 && f->t[i].data <= p + n);
        st_close(f);
    }
    free(p);
    return rc;
}

static void t_valid(void)
{
    struct st_file f;
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[16,28]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                    "\"e\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[28,28]},"
                    "\"s\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[28,32]}}   ";
    size_t n;
    uint8_t *p = image(h, 32, 0, &n);
    memset(&f, 0, sizeof f);
    REQUIRE(st_parse(&f, p, n, "x.safetensors") == 0);
    CHECK_INT(f.n, 4);
    const struct st_tensor *b = st_find(&f, "b");
    REQUIRE(b);
    CHECK(b->dtype == ST_BF16 && b->ndim == 2 && b->shape[1] == 3 &&
          b->data == p + 8 + strlen(h) + 16);
    CHECK(st_find(&f, "s") && st_find(&f, "s")->ndim == 0 && st_find(&f, "s")->numel == 1);
    CHECK(st_find(&f, "e") && st_find(&f, "e")->numel == 0);
    CHECK(!st_find(&f, "__metadata__") && !st_find(&f, "zz"));
    st_close(&f);
    st_close(&f); /* idempotent */
    free(p);
}

static void t_dtypes(void)
{
    enum st_dtype d;
    CHECK(st_dtype_parse("F8_E4M3", &d) == 0 && st_dtype_bits(d) == 8);
    CHECK(st_dtype_parse("F4", &d) == 0 && st_dtype_bits(d) == 4);
    CHECK(st_dtype_parse("bf16", &d) < 0);
    struct st_file f;
    /* 3 F4 elements are 12 bits: not whole bytes */
    CHECK(parse("{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2, 0, &f) < 0 &&
          strstr(err_msg(), "not whole bytes"));
    CHECK(parse("{\"a\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[0,2]}}", 2, 0, &f) == 0);
}

/* Every malformed header is refused with its own message. */
static void t_defects(void)
{
    static const struct {
        const char *hdr;
        size_t data;
        uint64_t hlen;
        const char *want;
    } tab[] = {
        { "{}", 0, 100, "runs past the end" },
        { "{}", 0, 200000000, "exceeds the" },
        { "[1]", 0, 0, "does not begin with '{'" },
        { "{\"a\":", 0, 0, "not valid JSON" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]}} x", 2, 0,
          "trailing bytes" },
        { "{\"a\":{\"dtype\":\"BF17\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, 0,
          "unknown dtype 'BF17'" },
        { "{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,2]}}", 2, 0,
          "unknown dtype (not a string)" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, 0, "needs 4" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[4611686018427387904,4611686018427387904],\"data_"
          "offsets\":[0,2]}}",
          2, 0, "not a non-negative integer" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[4294967296,4294967296,4294967296],\"data_"
          "offsets\":[0,2]}}",
          2, 0, "overflows 64 bits" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[-1],\"data_offsets\":[0,2]}}", 2, 0,
          "shape[0] is not a non-negative integer" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[1.5],\"data_offsets\":[0,2]}}", 2, 0, "shape[0]" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,2]}}", 2, 0,
          "9 dimensions" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[2,0]}}", 2, 0,
          "end 0 < begin 2" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0]}}", 2, 0, "[BEGIN, END]" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[1]}}", 2, 0, "missing 'data_offsets'" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2],\"x\":1}}", 2, 0,
          "unexpected or repeated key 'x'" },
        { "{\"a\":[1]}", 0, 0, "entry is not an object" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},\"b\":{\"dtype\":"
          "\"BF16\",\"shape\":[2],\"data_offsets\":[2,6]}}",
          6, 0, "overlaps" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},\"b\":{\"dtype\":"
          "\"BF16\",\"shape\":[2],\"data_offsets\":[6,10]}}",
          10, 0, "leaves a hole" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 2, 0,
          "truncated or offsets out of range" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, 0,
          "holds 8 after the header" },
        { "{\"a\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]},\"a\":{\"dtype\":"
          "\"BF16\",\"shape\":[1],\"data_offsets\":[2,4]}}",
          4, 0, "duplicate tensor 'a'" },
        { "{\"__metadata__\":{\"k\":1}}", 0, 0, "value 'k' is not a string" },
        { "{\"__metadata__\":[]}", 0, 0, "'__metadata__' is not an object" },
        { "{\"\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, 0,
          "tensor name of 0 bytes" },
        { "{\"\xff\":1}", 0, 0, "not valid UTF-8" },
    };
    for (size_t i = 0; i < sizeof tab / sizeof *tab; i++) {
        struct st_file f;
        int rc = parse(tab[i].hdr, tab[i].data, tab[i].hlen, &f);
        CHECKF(rc < 0 && strstr(err_msg(), tab[i].want) && strstr(err_msg(), "x.safetensors"),
               "case %zu: rc %d msg '%s' (want '%s')", i, rc, err_msg(), tab[i].want);
    }
    /* shorter than the length field */
    struct st_file f = { 0 };
    uint8_t tiny[5] = { 0 };
    CHECK(st_parse(&f, tiny, 5, "x.safetensors") < 0 && strstr(err_msg(), "too short"));
    CHECK(st_open(&f, "/nonexistent/dir/m.safetensors") < 0);
}

int main(void)
{
    TEST_RUN(t_valid);
    TEST_RUN(t_dtypes);
    TEST_RUN(t_defects);
    TEST_END();
}
