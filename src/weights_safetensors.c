/* weights_safetensors.c — a safetensors file (timm's weights as the Hugging Face hub serves them)
 * converted into an HDF5 file in memory in kao's layout (weights_source.h).
 *
 * The format: an 8-byte little-endian header length N; N bytes of JSON, an object with one entry
 * per tensor, {"dtype": "F16", "shape": [32, 3, 3, 3], "data_offsets": [begin, end]}, offsets into
 * the data that follows the header, and an optional "__metadata__" object; then the data, little
 * endian. Everything is checked before any data is read: the header length against the file, each
 * entry's fields, its byte count against dtype × shape (overflow-checked), the offsets against the
 * data and against each other (no overlaps), duplicate names. F32, F16 and BF16 become float32,
 * I64 (num_batches_tracked) int64; other dtypes are refused naming the tensor.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kao/arch.h"
#include "kao/trained_info.h"
#include "kao/util.h"
#include "kao/weights.h"
#include "kao/weights_source.h"

#define MAX_HEADER_BYTES ((uint64_t)100 << 20) /* the limit of the safetensors library itself */
#define MAX_TENSOR_ELEMENTS ((int64_t)1 << 28) /* far above any EfficientNetV2 tensor */

typedef struct {
    const char *name;
    int bytes;
    bool is_float;
} dtype_def;

static const dtype_def dtype_defs[] = {{"F32", 4, true}, {"F16", 2, true}, {"BF16", 2, true}, {"I64", 8, false}};
enum { DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_I64, NUM_DTYPES };

typedef struct {
    const char *name; /* points into the cJSON tree */
    int dtype, ndim;
    int64_t shape[KAO_H5_MAX_DIMS], numel;
    uint64_t begin, end; /* in the data section */
} entry;

typedef struct {
    const char *path;
    FILE *file;
    uint64_t data_start, data_size;
} source;

/* ---- the header ---------------------------------------------------------------------------- */

static uint64_t le_u64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

/* Reads the JSON header (NUL-terminated, freed by the caller) and where the data lies. */
static int read_header(source *s, char **json, size_t *json_len) {
    struct stat st;
    if (fstat(fileno(s->file), &st) != 0) return kao_fail("%s: %s", s->path, strerror(errno));
    uint64_t size = (uint64_t)st.st_size;
    unsigned char len_bytes[8];
    if (size < 8 || fread(len_bytes, 1, 8, s->file) != 8)
        return kao_fail("%s: %llu bytes, too short for a safetensors file", s->path, (unsigned long long)size);
    uint64_t n = le_u64(len_bytes);
    if (n < 2 || n > size - 8)
        return kao_fail("%s: safetensors header length %llu does not fit the file's %llu bytes (damaged?)", s->path,
                        (unsigned long long)n, (unsigned long long)size);
    if (n > MAX_HEADER_BYTES)
        return kao_fail("%s: safetensors header of %llu bytes, more than the format's %llu", s->path,
                        (unsigned long long)n, (unsigned long long)MAX_HEADER_BYTES);
    char *text = kao_malloc((size_t)n + 1, "safetensors header");
    if (fread(text, 1, (size_t)n, s->file) != (size_t)n) {
        free(text);
        return kao_fail("%s: cannot read the safetensors header (truncated?)", s->path);
    }
    text[n] = '\0';
    *json = text;
    *json_len = (size_t)n;
    s->data_start = 8 + n;
    s->data_size = size - 8 - n;
    return KAO_OK;
}

/* The header as JSON; only spaces may follow the object (the format pads with them). */
static int parse_json(const source *s, const char *text, size_t len, cJSON **out) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long where = at && at >= text && at <= text + len ? (long)(at - text) : 0;
        return kao_fail("%s: the safetensors header is not valid JSON (at byte %ld of %zu; damaged?)", s->path,
                        8 + where, len + 8);
    }
    bool trailing = false;
    for (const char *p = end; p && p < text + len; p++) trailing = trailing || *p != ' ';
    if (!cJSON_IsObject(root) || trailing) {
        cJSON_Delete(root);
        return kao_fail("%s: the safetensors header is not one JSON object (damaged?)", s->path);
    }
    *out = root;
    return KAO_OK;
}

/* A JSON number that is a whole number in 0..max (exact in a double up to 2^53). */
static bool whole_number(const cJSON *item, uint64_t max, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!(v >= 0) || v > 9007199254740992.0 || v != floor(v) || v > (double)max) return false;
    *out = (uint64_t)v;
    return true;
}

static bool usable_name(const char *name) {
    size_t n = strlen(name);
    return n > 0 && n < 256 && !strchr(name, '/') && strcmp(name, ".") != 0 && kao_valid_utf8(name);
}

static int parse_dtype(const source *s, entry *e, const cJSON *item) {
    const char *dtype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "dtype"));
    if (!dtype) return kao_fail("%s: tensor '%s' has no dtype string", s->path, e->name);
    for (int d = 0; d < NUM_DTYPES; d++)
        if (!strcmp(dtype, dtype_defs[d].name)) {
            e->dtype = d;
            return KAO_OK;
        }
    char shown[24];
    snprintf(shown, sizeof shown, "%s", kao_valid_utf8(dtype) ? dtype : "(not text)");
    kao_utf8_trim(shown);
    return kao_fail("%s: tensor '%s' has dtype %s; kao reads F32, F16 and BF16 (and I64 counters)", s->path,
                    e->name, shown);
}

static int parse_shape(const source *s, entry *e, const cJSON *item) {
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    int ndim = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
    if (ndim < 0 || ndim > KAO_H5_MAX_DIMS)
        return kao_fail("%s: tensor '%s' has no shape of at most %d dimensions", s->path, e->name, KAO_H5_MAX_DIMS);
    e->ndim = ndim;
    e->numel = 1;
    for (int i = 0; i < ndim; i++) {
        uint64_t d;
        if (!whole_number(cJSON_GetArrayItem(shape, i), (uint64_t)INT64_MAX, &d))
            return kao_fail("%s: tensor '%s': shape entry %d is not a size", s->path, e->name, i);
        if (d > 0 && e->numel > MAX_TENSOR_ELEMENTS / (int64_t)d)
            return kao_fail("%s: tensor '%s' has more than %lld elements, more than any EfficientNetV2 tensor",
                            s->path, e->name, (long long)MAX_TENSOR_ELEMENTS);
        e->shape[i] = (int64_t)d;
        e->numel *= (int64_t)d;
    }
    return KAO_OK;
}

static int parse_offsets(const source *s, entry *e, const cJSON *item) {
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        !whole_number(cJSON_GetArrayItem(off, 0), s->data_size, &e->begin) ||
        !whole_number(cJSON_GetArrayItem(off, 1), s->data_size, &e->end) || e->end < e->begin)
        return kao_fail("%s: tensor '%s': data_offsets are not [begin, end] within the %llu bytes of data "
                        "(damaged or truncated?)", s->path, e->name, (unsigned long long)s->data_size);
    /* numel is at most 2^28, so this product cannot overflow. */
    uint64_t bytes = (uint64_t)e->numel * (uint64_t)dtype_defs[e->dtype].bytes;
    if (bytes != e->end - e->begin) {
        char shape[160];
        kao_h5_shape_string(shape, sizeof shape, e->ndim, e->shape);
        return kao_fail("%s: tensor '%s': %s %s is %llu bytes, its data_offsets span %llu", s->path, e->name,
                        dtype_defs[e->dtype].name, shape, (unsigned long long)bytes,
                        (unsigned long long)(e->end - e->begin));
    }
    return KAO_OK;
}

static int parse_entry(const source *s, const cJSON *item, entry *e) {
    memset(e, 0, sizeof *e);
    e->name = item->string;
    if (!e->name || !usable_name(e->name))
        return kao_fail("%s: a tensor name in the safetensors header is not a state_dict key (damaged?)", s->path);
    if (!cJSON_IsObject(item)) return kao_fail("%s: tensor '%s' is not described by a JSON object", s->path, e->name);
    if (parse_dtype(s, e, item) || parse_shape(s, e, item) || parse_offsets(s, e, item)) return KAO_ERR;
    return KAO_OK;
}

/* ---- the entries together ------------------------------------------------------------------ */

static int by_name(const void *a, const void *b) {
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static int by_offset(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* No name twice, no two tensors sharing bytes. Sorts a copy, so the caller keeps the file's order. */
static int check_layout(const source *s, const entry *entries, int n) {
    if (n == 0) return kao_fail("%s: the safetensors header lists no tensors", s->path);
    entry *sorted = kao_malloc((size_t)n * sizeof *sorted, "safetensors entries");
    memcpy(sorted, entries, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, by_name);
    int rc = KAO_OK;
    for (int i = 1; i < n && rc == KAO_OK; i++)
        if (!strcmp(sorted[i - 1].name, sorted[i].name))
            rc = kao_fail("%s: tensor '%s' appears twice in the safetensors header", s->path, sorted[i].name);
    qsort(sorted, (size_t)n, sizeof *sorted, by_offset);
    int widest = 0; /* the entry that reaches furthest so far */
    for (int i = 1; i < n && rc == KAO_OK; i++) {
        if (sorted[i].begin < sorted[widest].end)
            rc = kao_fail("%s: tensors '%s' and '%s' share bytes of the data (damaged?)", s->path,
                          sorted[widest].name, sorted[i].name);
        if (sorted[i].end > sorted[widest].end) widest = i;
    }
    free(sorted);
    return rc;
}

static int parse_entries(const source *s, const cJSON *root, entry **out, int *count) {
    int n = 0;
    for (const cJSON *item = root->child; item; item = item->next) n++;
    entry *entries = kao_calloc((size_t)(n ? n : 1), sizeof *entries, "safetensors entries");
    int k = 0, rc = KAO_OK;
    for (const cJSON *item = root->child; item && rc == KAO_OK; item = item->next) {
        if (item->string && !strcmp(item->string, "__metadata__")) {
            if (!cJSON_IsObject(item)) rc = kao_fail("%s: __metadata__ is not a JSON object", s->path);
            continue;
        }
        rc = parse_entry(s, item, &entries[k++]);
    }
    if (rc == KAO_OK) rc = check_layout(s, entries, k);
    if (rc != KAO_OK) {
        free(entries);
        return KAO_ERR;
    }
    *out = entries;
    *count = k;
    return KAO_OK;
}

/* ---- the data ------------------------------------------------------------------------------ */

static float half_to_float(unsigned h) {
    unsigned sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | mant << 13; /* inf, NaN */
    } else if (exp) {
        bits = sign | (exp + 112) << 23 | mant << 13;
    } else { /* zero, subnormal: mant · 2^-24, exact in float */
        float v = (float)mant * 0x1p-24f;
        memcpy(&bits, &v, sizeof bits);
        bits |= sign;
    }
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

static float decode_float(const unsigned char *b, int dtype) {
    uint32_t bits;
    switch (dtype) {
    case DTYPE_F16: return half_to_float((unsigned)b[0] | (unsigned)b[1] << 8);
    case DTYPE_BF16: bits = ((uint32_t)b[0] | (uint32_t)b[1] << 8) << 16; break;
    default: bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; break;
    }
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

static int write_entry(kao_h5_file *mem, const source *s, const entry *e) {
    size_t bytes = (size_t)(e->end - e->begin), n = (size_t)e->numel;
    unsigned char *raw = kao_malloc(bytes ? bytes : 1, "safetensors tensor");
    if (fseeko(s->file, (off_t)(s->data_start + e->begin), SEEK_SET) != 0 || fread(raw, 1, bytes, s->file) != bytes) {
        free(raw);
        return kao_fail("%s: cannot read tensor '%s' (truncated?)", s->path, e->name);
    }
    int rc;
    if (e->dtype == DTYPE_I64) {
        int64_t *v = kao_malloc((n ? n : 1) * sizeof *v, "safetensors tensor");
        for (size_t i = 0; i < n; i++) v[i] = (int64_t)le_u64(raw + 8 * i);
        rc = kao_h5_write_i64(mem, e->name, v, e->ndim, e->shape);
        free(v);
    } else {
        float *v = kao_malloc((n ? n : 1) * sizeof *v, "safetensors tensor");
        int size = dtype_defs[e->dtype].bytes;
        for (size_t i = 0; i < n; i++) v[i] = decode_float(raw + (size_t)size * i, e->dtype);
        rc = kao_h5_write_f32(mem, e->name, v, e->ndim, e->shape);
        free(v);
    }
    free(raw);
    return rc;
}

/* "F32", "F16+BF16": the float dtypes present. */
static void describe_dtypes(char *out, size_t size, const entry *entries, int n) {
    bool present[NUM_DTYPES] = {false};
    for (int i = 0; i < n; i++) present[entries[i].dtype] = true;
    size_t len = 0;
    out[0] = '\0';
    for (int d = 0; d < NUM_DTYPES; d++)
        if (present[d] && dtype_defs[d].is_float && len < size)
            len += (size_t)snprintf(out + len, size - len, "%s%s", len ? "+" : "", dtype_defs[d].name);
    if (!out[0]) snprintf(out, size, "no floats");
}

/* safetensors carry no preprocessing: timm's pretrained_cfg of the variant, when the shapes tell it. */
static int record_pretrained_cfg(kao_h5_file *mem) {
    kao_arch arch;
    bool has_head;
    if (kao_weights_probe_backbone_file(mem, NULL, &arch, &has_head)) {
        kao_clear_error(); /* other multipliers: nothing to record, the commands' defaults apply */
        return KAO_OK;
    }
    kao_pretrained_cfg cfg;
    if (kao_arch_pretrained_cfg(arch.variant, &cfg)) return KAO_ERR;
    kao_trained_info info = {.input_height = cfg.input_size, .input_width = cfg.input_size, .has_normalisation = true};
    memcpy(info.mean, cfg.mean, sizeof info.mean);
    memcpy(info.std, cfg.std, sizeof info.std);
    return kao_trained_info_write(mem, &info);
}

int kao_safetensors_import(kao_h5_file *mem, const char *path, char *dtypes, size_t dtypes_size) {
    source s = {.path = path, .file = fopen(path, "rb")};
    if (!s.file) return kao_fail("%s: %s", path, strerror(errno));
    char *json = NULL;
    size_t json_len = 0;
    cJSON *root = NULL;
    entry *entries = NULL;
    int n = 0;
    int rc = read_header(&s, &json, &json_len);
    if (rc == KAO_OK) rc = parse_json(&s, json, json_len, &root);
    if (rc == KAO_OK) rc = parse_entries(&s, root, &entries, &n);
    for (int i = 0; i < n && rc == KAO_OK; i++) rc = write_entry(mem, &s, &entries[i]);
    if (rc == KAO_OK) describe_dtypes(dtypes, dtypes_size, entries, n);
    if (rc == KAO_OK) rc = record_pretrained_cfg(mem);
    free(entries);
    cJSON_Delete(root);
    free(json);
    fclose(s.file);
    return rc;
}
