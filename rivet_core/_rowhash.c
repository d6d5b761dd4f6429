/* Row hashes over Arrow buffers, in C: one XXH64 (seed 0) per row of the canonical
 * encoding docs/row-hash.md specifies.
 *
 * The Python side (rivet_core.rowhash) reduces every column to one of the physical layouts
 * below and passes its buffers as a tree of rh_node (lists and structs have children).
 * Nothing is allocated and no Python object is touched: ctypes releases the GIL for the
 * call. XXH64 follows the public specification (xxHash doc/xxhash_spec.md), written here
 * for streaming so that a value of any size is hashed without being copied whole.
 *
 * Rows are hashed a block at a time, column by column within the block: each column's
 * loop runs one kind of value, and the block's hash states stay in L1 cache.
 */

#include <stdint.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rivet_core._rowhash reads Arrow buffers as little-endian; big-endian hosts are not supported"
#endif

/* --------------------------------------------------------------------------- XXH64 */

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

typedef struct {
    uint64_t acc[4];
    uint64_t total;      /* bytes fed so far */
    uint8_t mem[64];     /* the stripe being filled, and room for what overflows it */
    uint32_t held;       /* bytes in mem */
    uint32_t _pad;
} xxh64_state;

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t read64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t read32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t xround(uint64_t acc, uint64_t lane) {
    acc += lane * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}

static inline uint64_t xmerge(uint64_t acc, uint64_t value) {
    acc ^= xround(0, value);
    return acc * P1 + P4;
}

static inline void stripe(xxh64_state *s, const uint8_t *p) {
    s->acc[0] = xround(s->acc[0], read64(p));
    s->acc[1] = xround(s->acc[1], read64(p + 8));
    s->acc[2] = xround(s->acc[2], read64(p + 16));
    s->acc[3] = xround(s->acc[3], read64(p + 24));
}

static inline void st_init(xxh64_state *s) {
    s->acc[0] = P1 + P2;
    s->acc[1] = P2;
    s->acc[2] = 0;
    s->acc[3] = 0 - P1;
    s->total = 0;
    s->held = 0;
}

/* A few bytes (len a constant ≤ 32, so every copy is a constant-size move). */
static inline __attribute__((always_inline)) void st_small(xxh64_state *s, const uint8_t *p,
                                                           uint32_t len) {
    memcpy(s->mem + s->held, p, len);
    s->held += len;
    s->total += len;
    if (s->held >= 32) {
        stripe(s, s->mem);
        s->held -= 32;
        memcpy(s->mem, s->mem + 32, 32);
    }
}

static inline void st_update(xxh64_state *s, const uint8_t *p, uint64_t len) {
    s->total += len;
    if (s->held + len < 32) {
        memcpy(s->mem + s->held, p, len);
        s->held += (uint32_t)len;
        return;
    }
    if (s->held) {
        uint32_t fill = 32 - s->held;
        memcpy(s->mem + s->held, p, fill);
        stripe(s, s->mem);
        p += fill;
        len -= fill;
        s->held = 0;
    }
    while (len >= 32) {
        stripe(s, p);
        p += 32;
        len -= 32;
    }
    if (len) {
        memcpy(s->mem, p, len);
        s->held = (uint32_t)len;
    }
}

static uint64_t st_digest(const xxh64_state *s) {
    uint64_t acc;
    if (s->total >= 32) {
        acc = rotl(s->acc[0], 1) + rotl(s->acc[1], 7) + rotl(s->acc[2], 12) +
              rotl(s->acc[3], 18);
        acc = xmerge(acc, s->acc[0]);
        acc = xmerge(acc, s->acc[1]);
        acc = xmerge(acc, s->acc[2]);
        acc = xmerge(acc, s->acc[3]);
    } else {
        acc = s->acc[2] + P5; /* the seed (0) + PRIME64_5 */
    }
    acc += s->total;
    const uint8_t *p = s->mem;
    uint32_t left = s->held;
    while (left >= 8) {
        acc ^= xround(0, read64(p));
        acc = rotl(acc, 27) * P1 + P4;
        p += 8;
        left -= 8;
    }
    if (left >= 4) {
        acc ^= (uint64_t)read32(p) * P1;
        acc = rotl(acc, 23) * P2 + P3;
        p += 4;
        left -= 4;
    }
    while (left) {
        acc ^= (uint64_t)(*p) * P5;
        acc = rotl(acc, 11) * P1;
        p++;
        left--;
    }
    acc ^= acc >> 33;
    acc *= P2;
    acc ^= acc >> 29;
    acc *= P3;
    acc ^= acc >> 32;
    return acc;
}

/* ------------------------------------------------------------------ the encoding */

/* Type tags: docs/row-hash.md, and rivet_core.rowhash.Tag, which must agree. */
enum {
    T_NULL = 0x00, T_BOOL = 0x01, T_INT = 0x02, T_UINT = 0x03, T_FLOAT = 0x04,
    T_DECIMAL = 0x05, T_DECIMAL_WIDE = 0x06, T_STRING = 0x07, T_BINARY = 0x08,
    T_DATE = 0x09, T_TIMESTAMP = 0x0A, T_TIMESTAMP_TZ = 0x0B, T_TIME = 0x0C,
    T_DURATION = 0x0D, T_LIST = 0x0E, T_STRUCT = 0x0F,
};

/* Physical layouts: rivet_core.rowhash.Kind, which must agree. */
enum {
    K_NULL = 0,      /* Arrow null type: every value is NULL */
    K_BOOL = 1,      /* bit-packed */
    K_SINT = 2,      /* signed, `width` bytes */
    K_UINT = 3,      /* unsigned, `width` bytes */
    K_FLOAT32 = 4,
    K_FLOAT64 = 5,
    K_DEC128 = 6,
    K_DEC256 = 7,
    K_VAR32 = 8,     /* int32 offsets + data (string, binary) */
    K_VAR64 = 9,     /* int64 offsets + data (large_string, large_binary) */
    K_FIXED = 10,    /* `width` bytes a value (fixed_size_binary) */
    K_DATE32 = 11,   /* int32 days */
    K_INT64 = 12,    /* int64 divided (floor) by `divisor`: timestamp, time64, duration */
    K_LIST32 = 13,   /* int32 offsets into the one child */
    K_LIST64 = 14,   /* int64 offsets into the one child */
    K_FIXLIST = 15,  /* `width` child values a value */
    K_STRUCT = 16,   /* children at the same index */
};

typedef struct {
    int32_t kind;
    int32_t tag;           /* tag of a valid value */
    int32_t width;         /* K_SINT, K_UINT, K_FIXED: bytes; K_FIXLIST: values */
    int32_t scale;         /* decimals */
    int64_t offset;        /* the array's offset, in values */
    int64_t divisor;       /* K_INT64 */
    const uint8_t *validity; /* NULL: every value valid */
    const uint8_t *data;
    const uint8_t *offsets;
    int32_t child;         /* first entry in the links array, for nested kinds */
    int32_t nchildren;
} rh_node;

static inline void put_u64(xxh64_state *s, uint8_t tag, uint64_t v) {
    uint8_t b[9];
    b[0] = tag;
    memcpy(b + 1, &v, 8);
    st_small(s, b, 9);
}

static inline void put_tag(xxh64_state *s, uint8_t tag) { st_small(s, &tag, 1); }

static inline void put_bytes(xxh64_state *s, uint8_t tag, const uint8_t *p, uint64_t len) {
    put_u64(s, tag, len);
    if (len) st_update(s, p, len); /* an array of empty strings may have no data buffer */
}

static inline int64_t floor_div(int64_t v, int64_t d) {
    int64_t q = v / d;
    return (v % d != 0 && v < 0) ? q - 1 : q;
}

static inline int64_t read_signed(const uint8_t *p, int32_t width) {
    switch (width) {
    case 1: { int8_t v; memcpy(&v, p, 1); return v; }
    case 2: { int16_t v; memcpy(&v, p, 2); return v; }
    case 4: { int32_t v; memcpy(&v, p, 4); return v; }
    default: { int64_t v; memcpy(&v, p, 8); return v; }
    }
}

static inline uint64_t read_unsigned(const uint8_t *p, int32_t width) {
    switch (width) {
    case 1: return *p;
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}

static inline void put_float(xxh64_state *s, double d) {
    uint64_t bits;
    if (d != d) {
        bits = 0x7FF8000000000000ULL; /* every NaN is the one quiet NaN */
    } else {
        if (d == 0.0) d = 0.0;          /* -0.0 is 0.0 */
        memcpy(&bits, &d, 8);
    }
    put_u64(s, T_FLOAT, bits);
}

static inline void put_decimal(xxh64_state *s, int32_t scale, const uint8_t *p, int wide) {
    uint8_t head[2] = {T_DECIMAL, (uint8_t)(int8_t)scale};
    if (wide) {
        /* A decimal256 value that fits in 128 bits is encoded as a decimal128 one: the
         * encoding is the value's, not the column's width. */
        uint8_t ext = (p[15] & 0x80) ? 0xFF : 0x00;
        int fits = 1;
        for (int i = 16; i < 32; i++) {
            if (p[i] != ext) {
                fits = 0;
                break;
            }
        }
        if (!fits) {
            head[0] = T_DECIMAL_WIDE;
            st_small(s, head, 2);
            st_small(s, p, 32);
            return;
        }
    }
    st_small(s, head, 2);
    st_small(s, p, 16);
}

static inline int is_null(const rh_node *n, int64_t at) {
    return n->validity && !((n->validity[at >> 3] >> (at & 7)) & 1);
}

/* Value i of node n (i counts from the node's offset, as Arrow's logical index does). */
static void put_value(const rh_node *nodes, const int32_t *links, const rh_node *n, int64_t i,
                      xxh64_state *s) {
    int64_t at = n->offset + i;
    if (n->kind == K_NULL || is_null(n, at)) {
        put_tag(s, T_NULL);
        return;
    }
    switch (n->kind) {
    case K_BOOL: {
        uint8_t b[2] = {T_BOOL, (uint8_t)((n->data[at >> 3] >> (at & 7)) & 1)};
        st_small(s, b, 2);
        return;
    }
    case K_SINT:
        put_u64(s, T_INT, (uint64_t)read_signed(n->data + at * n->width, n->width));
        return;
    case K_UINT: {
        uint64_t v = read_unsigned(n->data + at * n->width, n->width);
        put_u64(s, v >> 63 ? T_UINT : T_INT, v);
        return;
    }
    case K_FLOAT32: {
        float f;
        memcpy(&f, n->data + at * 4, 4);
        put_float(s, (double)f);
        return;
    }
    case K_FLOAT64: {
        double d;
        memcpy(&d, n->data + at * 8, 8);
        put_float(s, d);
        return;
    }
    case K_DEC128:
        put_decimal(s, n->scale, n->data + at * 16, 0);
        return;
    case K_DEC256:
        put_decimal(s, n->scale, n->data + at * 32, 1);
        return;
    case K_VAR32: {
        int32_t start, end;
        memcpy(&start, n->offsets + at * 4, 4);
        memcpy(&end, n->offsets + at * 4 + 4, 4);
        put_bytes(s, (uint8_t)n->tag, n->data + start, (uint64_t)(end - start));
        return;
    }
    case K_VAR64: {
        int64_t start, end;
        memcpy(&start, n->offsets + at * 8, 8);
        memcpy(&end, n->offsets + at * 8 + 8, 8);
        put_bytes(s, (uint8_t)n->tag, n->data + start, (uint64_t)(end - start));
        return;
    }
    case K_FIXED:
        put_bytes(s, (uint8_t)n->tag, n->data + at * n->width, (uint64_t)n->width);
        return;
    case K_DATE32: {
        int32_t days;
        memcpy(&days, n->data + at * 4, 4);
        put_u64(s, T_DATE, (uint64_t)(int64_t)days);
        return;
    }
    case K_INT64: {
        int64_t v;
        memcpy(&v, n->data + at * 8, 8);
        put_u64(s, (uint8_t)n->tag, (uint64_t)floor_div(v, n->divisor));
        return;
    }
    case K_LIST32:
    case K_LIST64:
    case K_FIXLIST: {
        int64_t start, end;
        if (n->kind == K_LIST32) {
            int32_t a, b;
            memcpy(&a, n->offsets + at * 4, 4);
            memcpy(&b, n->offsets + at * 4 + 4, 4);
            start = a;
            end = b;
        } else if (n->kind == K_LIST64) {
            memcpy(&start, n->offsets + at * 8, 8);
            memcpy(&end, n->offsets + at * 8 + 8, 8);
        } else {
            start = at * n->width;
            end = start + n->width;
        }
        put_u64(s, T_LIST, (uint64_t)(end - start));
        for (int64_t j = start; j < end; j++) put_value(nodes, links, &nodes[links[n->child]], j, s);
        return;
    }
    case K_STRUCT:
        put_tag(s, T_STRUCT);
        for (int32_t c = 0; c < n->nchildren; c++)
            put_value(nodes, links, &nodes[links[n->child + c]], i, s);
        return;
    default:
        return;
    }
}

/* Rows first..first+count of one column into their states: the common flat kinds in loops
 * of their own (inlined, constant-size copies), the rest value by value. */
static void put_column(const rh_node *nodes, const int32_t *links, const rh_node *n,
                       int64_t first, int64_t count, xxh64_state *states) {
    int64_t base = n->offset + first;
    switch (n->kind) {
    case K_SINT:
        if (n->width != 8) break;
        for (int64_t r = 0; r < count; r++) {
            if (is_null(n, base + r)) put_tag(&states[r], T_NULL);
            else put_u64(&states[r], T_INT, read64(n->data + (base + r) * 8));
        }
        return;
    case K_FLOAT64:
        for (int64_t r = 0; r < count; r++) {
            double d;
            memcpy(&d, n->data + (base + r) * 8, 8);
            if (is_null(n, base + r)) put_tag(&states[r], T_NULL);
            else put_float(&states[r], d);
        }
        return;
    case K_VAR32:
        for (int64_t r = 0; r < count; r++) {
            int32_t start, end;
            if (is_null(n, base + r)) {
                put_tag(&states[r], T_NULL);
                continue;
            }
            memcpy(&start, n->offsets + (base + r) * 4, 4);
            memcpy(&end, n->offsets + (base + r) * 4 + 4, 4);
            put_bytes(&states[r], (uint8_t)n->tag, n->data + start, (uint64_t)(end - start));
        }
        return;
    case K_INT64:
        if (n->divisor != 1) break;
        for (int64_t r = 0; r < count; r++) {
            if (is_null(n, base + r)) put_tag(&states[r], T_NULL);
            else put_u64(&states[r], (uint8_t)n->tag, read64(n->data + (base + r) * 8));
        }
        return;
    default:
        break;
    }
    for (int64_t r = 0; r < count; r++) put_value(nodes, links, n, first + r, &states[r]);
}

#define BLOCK 256

/* The hash of each of `rows` rows (from row 0 of every column) into `out`: the columns
 * are the nodes `columns[0..ncolumns)`, in order. */
EXPORT void rh_hash_rows(const rh_node *nodes, const int32_t *links, const int32_t *columns,
                         int32_t ncolumns, int64_t rows, uint64_t *out) {
    xxh64_state states[BLOCK];
    for (int64_t first = 0; first < rows; first += BLOCK) {
        int64_t count = rows - first < BLOCK ? rows - first : BLOCK;
        for (int64_t r = 0; r < count; r++) st_init(&states[r]);
        for (int32_t c = 0; c < ncolumns; c++)
            put_column(nodes, links, &nodes[columns[c]], first, count, states);
        for (int64_t r = 0; r < count; r++) out[first + r] = st_digest(&states[r]);
    }
}
