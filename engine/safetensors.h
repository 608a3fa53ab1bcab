/*
 * safetensors.h - one safetensors file: header parsed and validated the way
 * the reference library does (huggingface/safetensors tensor.rs), data left
 * in a read-only mmap.
 *
 * Layout: u64 little-endian N, N bytes of UTF-8 JSON (starting with '{',
 * optionally padded with spaces), then the byte buffer. Each tensor's
 * data_offsets [BEGIN, END) are relative to byte 8+N. Validation:
 *   - N <= ST_MAX_HEADER and 8+N <= file size;
 *   - header is UTF-8 JSON, an object of objects; `__metadata__` is a
 *     string->string map and is skipped; duplicate names are rejected;
 *   - dtype is one of the safetensors names; shape has <= ST_MAX_DIMS
 *     non-negative integers; numel * bits via checked multiplication,
 *     a whole number of bytes, equal to END-BEGIN;
 *   - offsets are contiguous from 0 in offset order (no holes, no overlap)
 *     and the last END equals the buffer size (file size - 8 - N).
 * Opening does no per-byte work on tensor data.
 */
#ifndef LODE_ENGINE_SAFETENSORS_H
#define LODE_ENGINE_SAFETENSORS_H

#include "common/fs.h"

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_HEADER 100000000u /* bytes, the reference library's cap */
#define ST_MAX_DIMS 8
#define ST_MAX_TENSORS (1u << 20)
#define ST_MAX_NAME 1024

enum st_dtype {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_F64,
    ST_I64,
    ST_U64,
    ST_C64,
    ST_F8_E5M2,
    ST_F8_E4M3,
    ST_F8_E8M0,
    ST_F8_E4M3FNUZ,
    ST_F8_E5M2FNUZ,
    ST_F6_E2M3,
    ST_F6_E3M2,
    ST_F4,
    ST_NDTYPE
};

/* "BF16" etc.; "?" for an out-of-range value. */
const char *st_dtype_name(enum st_dtype d);
/* Bits per element (4 for F4, 6 for F6_*). */
int st_dtype_bits(enum st_dtype d);
/* Parses a dtype name; returns 0 or ERR_INVAL. */
int st_dtype_parse(const char *s, enum st_dtype *out);

struct st_tensor {
    char *name; /* owned by the st_file */
    enum st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end; /* relative to the byte buffer */
    const uint8_t *data; /* points into the mapping (or parsed buffer) */
};

struct st_file {
    char *path;          /* owned; used in messages */
    struct fs_map map;   /* empty when parsed from memory */
    struct st_tensor *t; /* sorted by name */
    size_t n;            /* tensor count (without __metadata__) */
    uint64_t header_len; /* N */
    uint64_t data_bytes; /* size of the byte buffer */
};

/* Maps `path` read-only and validates it. On failure the message names the
 * file and the tensor or key; *f is left closed. Caller closes with st_close. */
int st_open(struct st_file *f, const char *path);

/* Validates a whole file image p[0..n) (borrowed: must outlive *f). `label`
 * names it in messages. Used by st_open and the fuzz target. */
int st_parse(struct st_file *f, const uint8_t *p, size_t n, const char *label);

/* Frees everything; accepts a zeroed or half-built struct. */
void st_close(struct st_file *f);

/* Looks a tensor up by name (binary search). Borrowed; NULL if absent. */
const struct st_tensor *st_find(const struct st_file *f, const char *name);

#endif
