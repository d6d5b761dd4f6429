/* Binary COPY → Arrow column buffers, in C.
 *
 * Runs `COPY (...) TO STDOUT (FORMAT binary)` on a libpq connection that psycopg owns and
 * decodes the rows straight into Arrow buffers (validity bitmaps, values, offsets): no
 * Python object per row or value. It calls the libpq that psycopg itself loaded, through
 * function pointers the Python side (rivet_postgres.copybin) looks up, so it links against
 * nothing and needs no libpq headers.
 *
 * Loaded with ctypes, which releases the GIL for every call: a reader thread decodes while
 * the runner encodes. One reader per connection, used from one thread at a time.
 *
 * The output types are those of the ADBC PostgreSQL driver this replaces (so the
 * conversions in rivet_postgres.copyconvert apply unchanged): dates and timestamps shifted
 * from the 2000 epoch to 1970 with wrapping arithmetic (infinities land below 0001-01-01,
 * where copyconvert's checks find them), oid as int32, money as int64, jsonb without its
 * version byte, uuid as 16 bytes.
 *
 * A row of at least the batch budget is a batch of its own, and its largest text or bytes
 * value is not copied: the column's data buffer points into the CopyData message libpq
 * returned (rvt_take hands the message over as the buffer's owner, freed with PQfreemem).
 * libpq still holds the message once more, in its input buffer.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

/* libpq, as function pointers (filled by the Python side). */
typedef struct {
    int (*get_copy_data)(void *conn, char **buffer, int async);
    void (*freemem)(void *ptr);
    void *(*exec)(void *conn, const char *sql);
    void *(*get_result)(void *conn);
    int (*result_status)(const void *res);
    char *(*result_error_field)(const void *res, int fieldcode);
    char *(*result_error_message)(const void *res);
    char *(*error_message)(const void *conn);
    void (*clear)(void *res);
    int (*is_nonblocking)(const void *conn);
    int (*set_nonblocking)(void *conn, int arg);
} rvt_libpq;

#define PGRES_COMMAND_OK 1
#define PGRES_COPY_OUT 3
#define PG_DIAG_SQLSTATE 'C'
#define PG_DIAG_MESSAGE_PRIMARY 'M'

enum {
    K_BOOL = 1, K_INT16 = 2, K_INT32 = 3, K_INT64 = 4, K_FLOAT32 = 5, K_FLOAT64 = 6,
    K_DATE = 7, K_TIME = 8, K_TIMESTAMP = 9, K_VAR = 10, K_JSONB = 11, K_UUID = 12,
    K_BYTES = 13 /* decoded as K_VAR; only the Arrow type differs */, K_NUMERIC = 14,
};

enum { S_COPYING = 0, S_DONE = 1, S_ERROR = 2 };

#define LEND_PICK (-2)

typedef struct {
    int32_t kind;
    int32_t width;          /* bytes per value for fixed kinds; 0 for bool and var */
    uint8_t *validity;      /* bitmap, bit set = valid */
    int64_t validity_cap;   /* bytes */
    uint8_t *values;        /* fixed values, bool bitmap, or var data */
    int64_t values_cap;     /* bytes */
    int64_t values_len;     /* bytes used (var kinds) */
    int32_t *offsets;       /* var kinds: rows + 1 entries */
    int64_t offsets_cap;    /* entries */
    int64_t null_count;
    int32_t precision;      /* K_NUMERIC: the decimal128 it becomes */
    int32_t scale;
    int64_t validity_hint;  /* the capacities the last batch ended with: the next batch */
    int64_t values_hint;    /* starts there instead of growing (and copying) again */
    int64_t offsets_hint;
    char *owner;            /* var kinds: the libpq message `values` points into, or NULL
                             * when `values` is this column's own malloc'd buffer */
} rvt_col;

typedef struct {
    const rvt_libpq *pq;
    void *conn;
    int32_t ncols;
    int32_t state;
    int32_t lost;           /* the connection failed (not a server-side error) */
    int32_t header_seen;
    int32_t saved_nonblocking;
    int32_t alone;          /* the batch being built is one row of the whole budget */
    int64_t rows;           /* rows in the batch being built */
    int64_t expected;       /* rows the batch will likely hold (from its first row) */
    char *lender;           /* the message being decoded, when it may lend its bytes */
    int32_t lend;           /* the column it lends them to (-1: none; LEND_PICK: choose) */
    int32_t lent;           /* that column took the message: it is freed with the column */
    rvt_col *cols;
    char *pending;          /* a CopyData message not decoded yet (libpq's memory) */
    int32_t pending_len;
    char sqlstate[8];
    char error[1024];
    int32_t bad_column;     /* a numeric that does not fit: its column, and its text */
    char bad_value[160];
} rvt_reader;

static const char SIGNATURE[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};
static const int64_t SHIFT_DAYS = 10957;
static const int64_t SHIFT_US = 10957LL * 86400000000LL;

static uint16_t be16(const char *p) {
    const uint8_t *u = (const uint8_t *)p;
    return (uint16_t)((u[0] << 8) | u[1]);
}

static uint32_t be32(const char *p) {
    const uint8_t *u = (const uint8_t *)p;
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
}

static uint64_t be64(const char *p) {
    return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

static void fail(rvt_reader *r, const char *message, const char *sqlstate, int lost) {
    r->state = S_ERROR;
    r->lost = lost;
    strncpy(r->error, message ? message : "unknown error", sizeof r->error - 1);
    r->error[sizeof r->error - 1] = '\0';
    if (sqlstate) {
        strncpy(r->sqlstate, sqlstate, sizeof r->sqlstate - 1);
        r->sqlstate[sizeof r->sqlstate - 1] = '\0';
    }
}

static int grow_to(void **buffer, int64_t *cap, int64_t need, int64_t unit, int clear) {
    if (need <= *cap)
        return 1;
    /* Doubling keeps appends amortised; a need past twice the capacity (one large value)
     * gets exactly that, not the next power of two. */
    int64_t next = *cap ? *cap * 2 : 4096;
    if (next < need)
        next = need;
    void *p = realloc(*buffer, (size_t)(next * unit));
    if (!p)
        return 0;
    if (clear)
        memset((char *)p + *cap * unit, 0, (size_t)((next - *cap) * unit));
    *buffer = p;
    *cap = next;
    return 1;
}

static int grow(void **buffer, int64_t *cap, int64_t need, int64_t unit) {
    return grow_to(buffer, cap, need, unit, 0);
}

/* A bitmap's new bytes start cleared: its bits are only ever set. */
static int grow_bitmap(uint8_t **bitmap, int64_t *cap, int64_t need) {
    return grow_to((void **)bitmap, cap, need, 1, 1);
}

static int64_t larger(int64_t a, int64_t b) { return a > b ? a : b; }

/* Room for row number `row` (0-based) in every buffer of `c`, except var data. The first
 * row of a batch sizes the buffers for the `expected` rows of the batch at once. */
static int reserve_row(rvt_col *c, int64_t row, int64_t expected) {
    if (row == 0) {
        int64_t bitmap = larger(c->validity_hint, expected / 8 + 1);
        if (!grow_bitmap(&c->validity, &c->validity_cap, bitmap))
            return 0;
        if (c->kind == K_BOOL) {
            if (!grow_bitmap(&c->values, &c->values_cap, larger(c->values_hint, bitmap)))
                return 0;
        } else if (c->width) {
            if (!grow((void **)&c->values, &c->values_cap,
                      larger(c->values_hint, expected * c->width), 1))
                return 0;
        } else if (!grow((void **)&c->values, &c->values_cap, c->values_hint, 1) ||
                   !grow((void **)&c->offsets, &c->offsets_cap,
                         larger(c->offsets_hint, expected + 1), sizeof(int32_t))) {
            return 0;
        }
    }
    int64_t bitmap_bytes = row / 8 + 1;
    if (!grow_bitmap(&c->validity, &c->validity_cap, bitmap_bytes))
        return 0;
    if (c->kind == K_BOOL)
        return grow_bitmap(&c->values, &c->values_cap, bitmap_bytes);
    if (c->width)
        return grow((void **)&c->values, &c->values_cap, (row + 1) * c->width, 1);
    if (!grow((void **)&c->offsets, &c->offsets_cap, row + 2, sizeof(int32_t)))
        return 0;
    if (row == 0)
        c->offsets[0] = 0;
    return 1;
}

static int fixed_width(int32_t kind) {
    switch (kind) {
    case K_INT16: return 2;
    case K_INT32: case K_FLOAT32: case K_DATE: return 4;
    case K_INT64: case K_FLOAT64: case K_TIME: case K_TIMESTAMP: return 8;
    case K_UUID: case K_NUMERIC: return 16;
    default: return 0;
    }
}

/* The text of a numeric's binary form, for the error about it. */
static void numeric_text(const char *p, int32_t len, char *out, size_t size) {
    int16_t ndigits = (int16_t)be16(p), weight = (int16_t)be16(p + 2);
    uint16_t sign = be16(p + 4);
    int16_t dscale = (int16_t)be16(p + 6);
    size_t n = 0;
    if (sign == 0xC000 || sign == 0xD000 || sign == 0xF000) {
        snprintf(out, size, "%s", sign == 0xC000 ? "NaN" : sign == 0xD000 ? "Infinity"
                                                                       : "-Infinity");
        return;
    }
    if (8 + 2 * (int32_t)ndigits > len || ndigits < 0) {
        snprintf(out, size, "?");
        return;
    }
#define DIGIT(k) ((k) >= 0 && (k) < ndigits ? (int)be16(p + 8 + 2 * (k)) : 0)
    if (sign == 0x4000)
        n += (size_t)snprintf(out + n, size - n, "-");
    if (weight < 0)
        n += (size_t)snprintf(out + n, size - n, "0");
    for (int k = 0; k <= weight && n < size; k++)
        n += (size_t)snprintf(out + n, size - n, k ? "%04d" : "%d", DIGIT(k));
    if (dscale > 0 && n < size) {
        n += (size_t)snprintf(out + n, size - n, ".");
        size_t start = n;
        for (int k = weight + 1; n < size && n - start < (size_t)dscale; k++)
            n += (size_t)snprintf(out + n, size - n, "%04d", DIGIT(k));
        if (n - start > (size_t)dscale && start + (size_t)dscale < size)
            out[start + (size_t)dscale] = '\0';
    }
#undef DIGIT
}

/* A numeric's binary form as a decimal128 of the column's precision and scale; 0 when it
 * does not fit exactly (NaN, infinity, more digits than the scale, too large). */
static int numeric_value(const rvt_col *c, const char *p, int32_t len, __int128 *out) {
    if (len < 8)
        return 0;
    int16_t ndigits = (int16_t)be16(p), weight = (int16_t)be16(p + 2);
    uint16_t sign = be16(p + 4);
    if (ndigits < 0 || len != 8 + 2 * (int32_t)ndigits || (sign != 0 && sign != 0x4000))
        return 0;
    const __int128 max = (__int128)(~(unsigned __int128)0 >> 1);
    /* Powers of ten of the unscaled value: the last group's units digit sits at
     * 10^exponent. Digits below 10^0 must be zeros (else the value would round). */
    int64_t exponent = 4 * ((int64_t)weight - (ndigits - 1)) + c->scale;
    while (exponent <= -4 && ndigits > 0 && be16(p + 8 + 2 * (ndigits - 1)) == 0) {
        ndigits--;
        exponent += 4;
    }
    if (exponent <= -4 && ndigits > 0)
        return 0;
    __int128 value = 0;
    for (int k = 0; k < ndigits; k++) {
        int digit = be16(p + 8 + 2 * k);
        int keep = 4;  /* decimal digits of this group that stay */
        if (k == ndigits - 1 && exponent < 0) {
            for (int64_t e = exponent; e < 0; e++) {
                if (digit % 10)
                    return 0;  /* would round */
                digit /= 10;
                keep--;
            }
            exponent = 0;
        }
        for (int i = 0; i < keep; i++) {
            if (value > max / 10)
                return 0;
            value *= 10;
        }
        if (value > max - digit)
            return 0;
        value += digit;
    }
    for (; exponent > 0 && value; exponent--) {
        if (value > max / 10)
            return 0;
        value *= 10;
    }
    __int128 bound = 1;
    for (int i = 0; i < c->precision; i++)
        bound *= 10;
    if (value >= bound)
        return 0;
    *out = sign == 0x4000 ? -value : value;
    return 1;
}

/* One field of row `row`: `len` bytes at `p` (len -1: NULL). 0 on a malformed value. */
static int put_field(rvt_reader *r, rvt_col *c, int64_t row, const char *p, int32_t len) {
    if (len < 0) {
        c->null_count++;
        if (c->width)
            memset(c->values + row * c->width, 0, (size_t)c->width);
        else if (c->kind != K_BOOL)
            c->offsets[row + 1] = (int32_t)c->values_len;
        return 1;
    }
    c->validity[row >> 3] |= (uint8_t)(1u << (row & 7));
    if (c->kind == K_NUMERIC) {
        __int128 value;
        if (!numeric_value(c, p, len, &value)) {
            r->bad_column = (int32_t)(c - r->cols);
            numeric_text(p, len, r->bad_value, sizeof r->bad_value);
            fail(r, "binary COPY: a numeric value does not fit its decimal", NULL, 0);
            return 0;
        }
        memcpy(c->values + row * 16, &value, 16);
        return 1;
    }
    if (c->width && len != c->width) {
        fail(r, "binary COPY: a value has the wrong size for its column type", NULL, 0);
        return 0;
    }
    uint8_t *out = c->values + row * c->width;
    switch (c->kind) {
    case K_BOOL:
        if (len != 1) {
            fail(r, "binary COPY: a boolean value has the wrong size", NULL, 0);
            return 0;
        }
        if (p[0])
            c->values[row >> 3] |= (uint8_t)(1u << (row & 7));
        return 1;
    case K_INT16: {
        uint16_t v = be16(p);
        memcpy(out, &v, 2);
        return 1;
    }
    case K_INT32: case K_FLOAT32: {
        uint32_t v = be32(p);
        memcpy(out, &v, 4);
        return 1;
    }
    case K_DATE: {
        uint32_t v = be32(p) + (uint32_t)SHIFT_DAYS;  /* wraps, as the driver did */
        memcpy(out, &v, 4);
        return 1;
    }
    case K_INT64: case K_FLOAT64: case K_TIME: {
        uint64_t v = be64(p);
        memcpy(out, &v, 8);
        return 1;
    }
    case K_TIMESTAMP: {
        uint64_t v = be64(p) + (uint64_t)SHIFT_US;
        memcpy(out, &v, 8);
        return 1;
    }
    case K_UUID:
        memcpy(out, p, 16);
        return 1;
    case K_JSONB:
        if (len < 1 || p[0] != 1) {
            fail(r, "binary COPY: unknown jsonb format version", NULL, 0);
            return 0;
        }
        p++;
        len--;
        /* fall through */
    case K_VAR: case K_BYTES: {
        if (r->lend == (int32_t)(c - r->cols)) {
            /* The row is a batch of its own (see rvt_next): its data is this value, in
             * place in the message. */
            free(c->values);
            c->values = (uint8_t *)p;
            c->values_cap = 0;
            c->values_len = len;
            c->offsets[row + 1] = len;
            c->owner = r->lender;
            r->lent = 1;
            return 1;
        }
        int64_t end = c->values_len + len;
        if (end > INT32_MAX) {
            fail(r, "binary COPY: a batch column passed 2 GiB", NULL, 0);
            return 0;
        }
        if (!grow((void **)&c->values, &c->values_cap, end, 1)) {
            fail(r, "binary COPY: out of memory", NULL, 0);
            return 0;
        }
        memcpy(c->values + c->values_len, p, (size_t)len);
        c->values_len = end;
        c->offsets[row + 1] = (int32_t)end;
        return 1;
    }
    default:
        fail(r, "binary COPY: unknown column kind", NULL, 0);
        return 0;
    }
}

/* The text or bytes field with the most bytes in the row whose fields start at `p` (-1
 * when there is none, or the row is malformed: decoding then reports it). */
static int32_t largest_var(const rvt_reader *r, const char *p, const char *end) {
    int32_t best = -1;
    int64_t most = 0;
    for (int32_t i = 0; i < r->ncols; i++) {
        if (end - p < 4)
            return -1;
        int32_t len = (int32_t)be32(p);
        p += 4;
        if (len > 0 && (int64_t)len > end - p)
            return -1;
        int32_t kind = r->cols[i].kind;
        if ((kind == K_VAR || kind == K_BYTES || kind == K_JSONB) && len > most) {
            best = i;
            most = len;
        }
        if (len > 0)
            p += len;
    }
    return best;
}

/* Decode one CopyData message: the header (first message only), then one row or the
 * trailer. Returns 1 for a row, 0 for the trailer or header alone, -1 on error. */
static int decode_message(rvt_reader *r, const char *p, int32_t n) {
    const char *end = p + n;
    if (!r->header_seen) {
        if (n < 19 || memcmp(p, SIGNATURE, 11) != 0) {
            fail(r, "binary COPY: the stream does not start with the PGCOPY signature",
                 NULL, 0);
            return -1;
        }
        uint32_t extension = be32(p + 15);
        p += 19;
        if ((int64_t)extension > end - p) {
            fail(r, "binary COPY: truncated header", NULL, 0);
            return -1;
        }
        p += extension;
        r->header_seen = 1;
        if (p == end)
            return 0;
    }
    if (end - p < 2) {
        fail(r, "binary COPY: truncated row", NULL, 0);
        return -1;
    }
    int16_t fields = (int16_t)be16(p);
    p += 2;
    if (fields == -1)
        return 0;  /* trailer */
    if (fields != r->ncols) {
        fail(r, "binary COPY: a row has another number of columns than the query", NULL, 0);
        return -1;
    }
    if (r->lend == LEND_PICK)
        r->lend = largest_var(r, p, end);
    int64_t row = r->rows;
    for (int32_t i = 0; i < r->ncols; i++) {
        rvt_col *c = &r->cols[i];
        if (!reserve_row(c, row, r->expected)) {
            fail(r, "binary COPY: out of memory", NULL, 0);
            return -1;
        }
        if (end - p < 4) {
            fail(r, "binary COPY: truncated row", NULL, 0);
            return -1;
        }
        int32_t len = (int32_t)be32(p);
        p += 4;
        if (len < -1 || (len > 0 && (int64_t)len > end - p)) {
            fail(r, "binary COPY: truncated value", NULL, 0);
            return -1;
        }
        if (!put_field(r, c, row, p, len))
            return -1;
        if (len > 0)
            p += len;
    }
    r->rows++;
    return 1;
}

static void set_blocking(rvt_reader *r) {
    r->saved_nonblocking = r->pq->is_nonblocking(r->conn);
    if (r->saved_nonblocking)
        r->pq->set_nonblocking(r->conn, 0);
}

static void restore_blocking(rvt_reader *r) {
    if (r->saved_nonblocking) {
        r->pq->set_nonblocking(r->conn, 1);
        r->saved_nonblocking = 0;
    }
}

/* A failed result's error: the server's primary message (as psycopg reports it) and its
 * SQLSTATE. */
static void fail_with_result(rvt_reader *r, const void *res) {
    const char *primary = r->pq->result_error_field(res, PG_DIAG_MESSAGE_PRIMARY);
    fail(r, primary ? primary : r->pq->result_error_message(res),
         r->pq->result_error_field(res, PG_DIAG_SQLSTATE), 0);
}

/* The command's results after the COPY data: success, or the server's error. */
static void finish(rvt_reader *r) {
    void *res;
    int ok = 1;
    while ((res = r->pq->get_result(r->conn)) != NULL) {
        if (ok && r->pq->result_status(res) != PGRES_COMMAND_OK) {
            ok = 0;
            fail_with_result(r, res);
        }
        r->pq->clear(res);
    }
    if (ok)
        r->state = S_DONE;
    restore_blocking(r);
}

EXPORT rvt_reader *rvt_open(const rvt_libpq *pq, void *conn, const char *sql, int32_t ncols,
                            const int32_t *kinds, const int32_t *precisions,
                            const int32_t *scales) {
    rvt_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->pq = pq;
    r->conn = conn;
    r->ncols = ncols;
    r->bad_column = -1;
    r->lend = -1;
    r->cols = calloc((size_t)(ncols > 0 ? ncols : 1), sizeof(rvt_col));
    if (!r->cols) {
        free(r);
        return NULL;
    }
    for (int32_t i = 0; i < ncols; i++) {
        r->cols[i].kind = kinds[i];
        r->cols[i].width = fixed_width(kinds[i]);
        r->cols[i].precision = precisions[i];
        r->cols[i].scale = scales[i];
        if (kinds[i] < K_BOOL || kinds[i] > K_NUMERIC ||
            (kinds[i] == K_NUMERIC && (precisions[i] < 1 || precisions[i] > 38))) {
            fail(r, "binary COPY: unknown column kind", NULL, 0);
            return r;
        }
    }
    set_blocking(r);
    void *res = pq->exec(conn, sql);
    if (!res) {
        fail(r, pq->error_message(conn), NULL, 1);
        restore_blocking(r);
        return r;
    }
    if (pq->result_status(res) != PGRES_COPY_OUT) {
        fail_with_result(r, res);
        pq->clear(res);
        /* Drain what follows, so the connection is idle again. */
        while ((res = pq->get_result(conn)) != NULL)
            pq->clear(res);
        restore_blocking(r);
        return r;
    }
    pq->clear(res);
    r->state = S_COPYING;
    return r;
}

/* Decode rows into fresh buffers until `max_rows` rows or `max_bytes` bytes of messages,
 * or the end. Returns the rows of the batch (0 at the end), or -1 on error (see `error`,
 * `sqlstate`, `lost`). The caller takes the buffers (rvt_take) before the next call. */
EXPORT int64_t rvt_next(rvt_reader *r, int64_t max_rows, int64_t max_bytes) {
    if (r->state == S_ERROR)
        return -1;
    r->rows = 0;
    r->alone = 0;
    int64_t bytes = 0;
    while (r->state == S_COPYING && r->rows < max_rows && bytes < max_bytes) {
        char *message = r->pending;
        int32_t n = r->pending_len;
        r->pending = NULL;
        if (!message) {
            n = r->pq->get_copy_data(r->conn, &message, 0);
            if (n == -1) {
                finish(r);
                if (r->state == S_ERROR)
                    return -1;
                break;
            }
            if (n < 0) {
                fail(r, r->pq->error_message(r->conn), NULL, 1);
                restore_blocking(r);
                return -1;
            }
        }
        /* Var data of one batch column stays below 2 GiB, and a row of the whole budget
         * is a batch of its own: a row that would pass either starts the next batch. */
        if (r->rows > 0 && (bytes + n > INT32_MAX / 2 || n >= max_bytes)) {
            r->pending = message;
            r->pending_len = n;
            break;
        }
        r->alone = n >= max_bytes;
        if (r->rows == 0) {
            int64_t guess = max_bytes / (n > 0 ? n : 1) + 1;
            r->expected = r->alone ? 1 : guess < max_rows ? guess : max_rows;
        }
        r->lender = message;
        r->lend = r->alone ? LEND_PICK : -1;
        r->lent = 0;
        int got = decode_message(r, message, n);
        if (!r->lent)
            r->pq->freemem(message);
        r->lender = NULL;
        r->lend = -1;
        if (got < 0)
            return -1;
        bytes += n;
        if (r->alone && got > 0)
            break;
    }
    return r->rows;
}

/* Hand the buffers of column `i` to the caller, who frees them with rvt_free, except
 * `values` when `owner` is set: that is the libpq message `values` points into, freed with
 * PQfreemem. */
EXPORT void rvt_take(rvt_reader *r, int32_t i, void **validity, void **values,
                     void **offsets, void **owner, int64_t *values_len,
                     int64_t *null_count) {
    rvt_col *c = &r->cols[i];
    /* A batch of one large row does not size the next ones. */
    c->validity_hint = r->alone ? 0 : c->validity_cap;
    c->values_hint = r->alone ? 0 : c->values_cap;
    c->offsets_hint = r->alone ? 0 : c->offsets_cap;
    *validity = c->validity;
    *values = c->values;
    *offsets = c->offsets;
    *owner = c->owner;
    *values_len = c->values_len;
    *null_count = c->null_count;
    c->validity = NULL;
    c->values = NULL;
    c->offsets = NULL;
    c->owner = NULL;
    c->validity_cap = c->values_cap = c->offsets_cap = 0;
    c->values_len = 0;
    c->null_count = 0;
}

EXPORT void rvt_free(void *p) { free(p); }

EXPORT int32_t rvt_lost(const rvt_reader *r) { return r->lost; }
EXPORT const char *rvt_error(const rvt_reader *r) { return r->error; }
EXPORT const char *rvt_sqlstate(const rvt_reader *r) { return r->sqlstate; }
EXPORT int32_t rvt_bad_column(const rvt_reader *r) { return r->bad_column; }
EXPORT const char *rvt_bad_value(const rvt_reader *r) { return r->bad_value; }

/* Free the reader. A COPY still running leaves the connection mid-protocol: the caller
 * cancels it and closes the connection. */
EXPORT void rvt_close(rvt_reader *r) {
    if (!r)
        return;
    if (r->pending)
        r->pq->freemem(r->pending);
    restore_blocking(r);
    for (int32_t i = 0; i < r->ncols; i++) {
        free(r->cols[i].validity);
        if (r->cols[i].owner)
            r->pq->freemem(r->cols[i].owner);
        else
            free(r->cols[i].values);
        free(r->cols[i].offsets);
    }
    free(r->cols);
    free(r);
}
