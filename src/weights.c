#include "kao/weights.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kao/util.h"
#include "kao/weights_source.h"

/* ---- the model's BatchNorm layers and their counters --------------------------------------- */

/* Every BN of m, indexed by its kao_bn_ref.index. */
static kao_bn_ref *collect_bns(const kao_model *m) {
    kao_bn_ref *bns = kao_calloc((size_t)m->num_bn, sizeof *bns, "BN list");
    for (int i = 0; i < m->num_bn; i++) bns[i].index = -1;
    const kao_bn_ref *refs[3 * KAO_MAX_BLOCKS + 2];
    int n = 0;
    refs[n++] = &m->bn_stem;
    for (int b = 0; b < m->arch.num_blocks; b++) {
        refs[n++] = &m->blocks[b].bn1;
        refs[n++] = &m->blocks[b].bn_dw;
        refs[n++] = &m->blocks[b].bn_pwl;
    }
    refs[n++] = &m->bn_head;
    for (int i = 0; i < n; i++) {
        if (refs[i]->index < 0) continue; /* a block without that BN */
        KAO_ASSERT(refs[i]->index < m->num_bn, "BN index %d of %d", refs[i]->index, m->num_bn);
        bns[refs[i]->index] = *refs[i];
    }
    for (int i = 0; i < m->num_bn; i++) KAO_ASSERT(bns[i].index == i, "BN %d has no reference", i);
    return bns;
}

/* "<bn>.num_batches_tracked", from the BN's running_mean name. */
static void counter_name(char *out, size_t size, const kao_model *m, const kao_bn_ref *bn) {
    const char *mean = m->tensors[bn->mean].name;
    size_t prefix = strlen(mean) - strlen(".running_mean");
    KAO_ASSERT(kao_ends_with(mean, ".running_mean"), "%s", mean);
    snprintf(out, size, "%.*s.num_batches_tracked", (int)prefix, mean);
}

static bool is_counter_of(const kao_model *m, const char *name) {
    if (!kao_ends_with(name, ".num_batches_tracked")) return false;
    char mean[128];
    snprintf(mean, sizeof mean, "%.*s.running_mean", (int)(strlen(name) - strlen(".num_batches_tracked")), name);
    return kao_model_find(m, mean) >= 0;
}

/* name inside group (NULL: the root). */
#define KAO_NAME_MAX 256

static const char *at(char *buf, size_t size, const char *group, const char *name) {
    if (!group) return name;
    snprintf(buf, size, "%s/%s", group, name);
    return buf;
}

static void shape64(int64_t *out, const kao_tensor *t) {
    for (int i = 0; i < t->ndim; i++) out[i] = t->shape[i];
}

/* ---- saving ------------------------------------------------------------------------------ */

/* embedding_dim 0 says the file has no classifier (a backbone), as timm's num_classes=0 does. */
static int write_attributes(kao_h5_file *f, const char *group, const kao_arch *a, bool with_head) {
    if (kao_h5_write_attr_str(f, group, "format", KAO_WEIGHTS_FORMAT) ||
        kao_h5_write_attr_i64(f, group, "format_version", KAO_WEIGHTS_VERSION) ||
        kao_h5_write_attr_str(f, group, "architecture", a->variant) ||
        kao_h5_write_attr_f64(f, group, "width_mult", a->width_mult) ||
        kao_h5_write_attr_f64(f, group, "depth_mult", a->depth_mult) ||
        kao_h5_write_attr_i64(f, group, "embedding_dim", with_head ? a->embedding_dim : 0))
        return KAO_ERR;
    return KAO_OK;
}

static int write_tensors(kao_h5_file *f, const char *group, const kao_model *m, bool with_head) {
    kao_bn_ref *bns = collect_bns(m);
    /* timm's order: a BN's counter follows its running_var. */
    int *counter_after = kao_malloc((size_t)m->num_tensors * sizeof *counter_after, "BN map");
    for (int i = 0; i < m->num_tensors; i++) counter_after[i] = -1;
    for (int k = 0; k < m->num_bn; k++) counter_after[bns[k].var] = k;
    int rc = KAO_OK;
    for (int i = 0; i < m->num_tensors && rc == KAO_OK; i++) {
        const kao_tensor *t = &m->tensors[i];
        if (t->is_head && !with_head) continue;
        int64_t shape[4];
        shape64(shape, t);
        char buf[KAO_NAME_MAX];
        rc = kao_h5_write_f32(f, at(buf, sizeof buf, group, t->name), kao_tensor_data(m, i), t->ndim, shape);
        int k = counter_after[i];
        if (rc == KAO_OK && k >= 0) {
            char name[160];
            counter_name(name, sizeof name, m, &bns[k]);
            rc = kao_h5_write_i64(f, at(buf, sizeof buf, group, name), &m->bn_batches_tracked[k], 0, NULL);
        }
    }
    free(counter_after);
    free(bns);
    /* After the datasets, which create the group. */
    if (rc == KAO_OK) rc = write_attributes(f, group, &m->arch, with_head);
    return rc;
}

int kao_weights_write(kao_h5_file *f, const char *group, const kao_model *m) {
    return write_tensors(f, group, m, true);
}

int kao_weights_write_backbone(kao_h5_file *f, const char *group, const kao_model *m) {
    return write_tensors(f, group, m, false);
}

int kao_weights_save(const kao_model *m, const char *path) {
    kao_h5_file f;
    if (kao_h5_create(&f, path)) return KAO_ERR;
    int rc = kao_weights_write(&f, NULL, m);
    if (rc == KAO_OK) rc = kao_h5_commit(&f);
    kao_h5_close(&f); /* after a failure: deletes the temporary file */
    return rc;
}

/* ---- telling the architecture of a file -------------------------------------------------- */

static bool same_mult(double a, double b) { return fabs(a - b) < 1e-9; }

/* "tf_efficientnetv2_b0", plus " (width 0.25, depth 0.5)" when not the variant's own multipliers. */
static void describe_arch(char *out, size_t size, const kao_arch *a) {
    kao_arch own;
    int rc = kao_arch_build(&own, a->variant, 0, 0, a->embedding_dim, 0);
    KAO_ASSERT(rc == KAO_OK, "%s was built before", a->variant);
    if (same_mult(own.width_mult, a->width_mult) && same_mult(own.depth_mult, a->depth_mult))
        snprintf(out, size, "%s", a->variant);
    else
        snprintf(out, size, "%s (width %g, depth %g)", a->variant, a->width_mult, a->depth_mult);
}

/* A backbone (no classifier) is built with a 1-d head that the file does not have: commands that
 * take backbones never write or count it. */
static int probe_attributes(const kao_h5_file *f, const char *group, kao_arch *out, bool *has_head) {
    char variant[64];
    double width, depth;
    int64_t emb;
    if (kao_h5_read_attr_str(f, group, "architecture", variant, sizeof variant) ||
        kao_h5_read_attr_f64(f, group, "width_mult", &width) ||
        kao_h5_read_attr_f64(f, group, "depth_mult", &depth) ||
        kao_h5_read_attr_i64(f, group, "embedding_dim", &emb))
        return KAO_ERR;
    if (emb < 0 || emb > 1000000)
        return kao_fail("%s: attribute embedding_dim is %lld", f->path, (long long)emb);
    *has_head = emb > 0;
    if (!(width > 0) || !(depth > 0))
        return kao_fail("%s: attributes width_mult %g, depth_mult %g: multipliers must be > 0",
                        f->path, width, depth);
    if (kao_arch_build(out, variant, width, depth, *has_head ? (int)emb : 1, 0))
        return kao_fail_context("%s: attribute architecture: ", f->path);
    return KAO_OK;
}

/* Parses "blocks.<stage>.<index>.<rest>". */
static bool parse_block_name(const char *name, int *stage, int *index) {
    if (strncmp(name, "blocks.", 7) != 0) return false;
    char *end;
    long s = strtol(name + 7, &end, 10);
    if (end == name + 7 || *end != '.') return false;
    const char *p = end + 1;
    long j = strtol(p, &end, 10);
    if (end == p || *end != '.' || s < 0 || s >= KAO_MAX_STAGES || j < 0 || j >= KAO_MAX_BLOCKS)
        return false;
    *stage = (int)s;
    *index = (int)j;
    return true;
}

/* The shapes that tell the variants apart. */
typedef struct {
    int stem_ch, last_ch, num_features, embedding_dim; /* embedding_dim 0: no classifier */
    int num_stages, blocks_per_stage[KAO_MAX_STAGES];
} arch_signature;

static bool matches(const arch_signature *s, const kao_arch *a) {
    if (a->stem_ch != s->stem_ch || a->num_features != s->num_features ||
        a->blocks[a->num_blocks - 1].out_ch != s->last_ch || a->num_stages != s->num_stages)
        return false;
    int per_stage[KAO_MAX_STAGES] = {0};
    for (int b = 0; b < a->num_blocks; b++) per_stage[a->blocks[b].stage]++;
    for (int st = 0; st < a->num_stages; st++)
        if (per_stage[st] != s->blocks_per_stage[st]) return false;
    return true;
}

/* "1+2+2+3" (blocks per stage), or "none". */
static void stages_string(char *out, size_t size, const arch_signature *s) {
    snprintf(out, size, "%s", s->num_stages ? "" : "none");
    for (int st = 0; st < s->num_stages; st++) {
        size_t n = strlen(out);
        snprintf(out + n, size - n, "%s%d", st ? "+" : "", s->blocks_per_stage[st]);
    }
}

static int read_signature(const kao_h5_file *f, const char *group, arch_signature *s) {
    memset(s, 0, sizeof *s);
    kao_h5_info stem, head, cls = {.ndim = 2};
    char b1[KAO_NAME_MAX], b2[KAO_NAME_MAX], b3[KAO_NAME_MAX];
    const char *classifier = at(b3, sizeof b3, group, "classifier.weight");
    bool has_head = kao_h5_exists(f, classifier);
    if (kao_h5_dataset_info(f, at(b1, sizeof b1, group, "conv_stem.weight"), &stem) ||
        kao_h5_dataset_info(f, at(b2, sizeof b2, group, "conv_head.weight"), &head) ||
        (has_head && kao_h5_dataset_info(f, classifier, &cls)))
        return kao_fail_context("telling the architecture: ");
    if (stem.ndim != 4 || head.ndim != 4 || cls.ndim != 2)
        return kao_fail("%s: conv_stem.weight, conv_head.weight or classifier.weight has an "
                        "unexpected number of dimensions", f->path);
    s->stem_ch = (int)stem.shape[0];
    s->num_features = (int)head.shape[0];
    s->last_ch = (int)head.shape[1];
    s->embedding_dim = (int)cls.shape[0];
    if (has_head && (cls.shape[0] < 1 || cls.shape[0] > 1000000))
        return kao_fail("%s: classifier.weight has %lld rows", f->path, (long long)cls.shape[0]);
    char **names;
    int count;
    if (kao_h5_list(f, group, &names, &count)) return KAO_ERR;
    for (int i = 0; i < count; i++) {
        int st, j;
        if (!parse_block_name(names[i], &st, &j)) continue;
        if (st + 1 > s->num_stages) s->num_stages = st + 1;
        if (j + 1 > s->blocks_per_stage[st]) s->blocks_per_stage[st] = j + 1;
    }
    kao_h5_free_names(names, count);
    return KAO_OK;
}

static int probe_shapes(const kao_h5_file *f, const char *group, kao_arch *out, bool *has_head) {
    arch_signature s;
    if (read_signature(f, group, &s)) return KAO_ERR;
    *has_head = s.embedding_dim > 0;
    for (int v = 0; kao_variant_names[v]; v++) {
        kao_arch a;
        int rc = kao_arch_build(&a, kao_variant_names[v], 0, 0, *has_head ? s.embedding_dim : 1, 0);
        KAO_ASSERT(rc == KAO_OK, "%s", kao_variant_names[v]);
        if (matches(&s, &a)) {
            *out = a;
            return KAO_OK;
        }
    }
    char stages[128];
    stages_string(stages, sizeof stages, &s);
    return kao_fail("%s: no architecture attributes, and its shapes (stem %d channels, blocks %s, "
                    "%d features) match no variant at its default multipliers; name the model and "
                    "its multipliers", f->path, s.stem_ch, stages, s.num_features);
}

/* The tensors must bear out what the attributes say before anything is allocated for it: a few-KB
 * file claiming tf_efficientnetv2_l at width 8 would otherwise cost tens of GB (or kao_malloc's
 * abort) before its first tensor is compared. Stem, head, block counts and classifier rows pin the
 * model's size to the shapes the file declares. */
static int check_attributes(const kao_h5_file *f, const char *group, const kao_arch *a, bool has_head) {
    arch_signature s;
    if (read_signature(f, group, &s)) return KAO_ERR;
    if (matches(&s, a) && s.embedding_dim == (has_head ? a->embedding_dim : 0)) return KAO_OK;
    char name[128], stages[128];
    describe_arch(name, sizeof name, a);
    stages_string(stages, sizeof stages, &s);
    return kao_fail("%s: its attributes say %s with embedding_dim %d, but its tensors do not fit that (stem %d "
                    "channels, blocks %s, %d features, classifier %d rows)", f->path, name,
                    has_head ? a->embedding_dim : 0, s.stem_ch, stages, s.num_features, s.embedding_dim);
}

int kao_weights_probe_backbone_file(const kao_h5_file *f, const char *group, kao_arch *out, bool *has_head) {
    if (!kao_h5_has_attr(f, group, "architecture")) return probe_shapes(f, group, out, has_head);
    if (probe_attributes(f, group, out, has_head)) return KAO_ERR;
    return check_attributes(f, group, out, *has_head);
}

int kao_weights_probe_file(const kao_h5_file *f, const char *group, kao_arch *out) {
    bool has_head;
    if (kao_weights_probe_backbone_file(f, group, out, &has_head)) return KAO_ERR;
    if (!has_head)
        return kao_fail("%s: no classifier: a backbone without an embedding head (such as Keras's _notop "
                        "weights), a start for kao train --init; embed, verify and export need a head", f->path);
    return KAO_OK;
}

/* Files that say what they are must be weights of a version this kao reads. */
static int check_format(const kao_h5_file *f) {
    if (!kao_h5_has_attr(f, NULL, "format")) return KAO_OK;
    char format[64];
    if (kao_h5_read_attr_str(f, NULL, "format", format, sizeof format)) return KAO_ERR;
    if (strcmp(format, KAO_WEIGHTS_FORMAT) != 0)
        return kao_fail("%s: a '%s' file, not a weights file ('%s')", f->path, format, KAO_WEIGHTS_FORMAT);
    if (kao_h5_has_attr(f, NULL, "format_version")) {
        int64_t version;
        if (kao_h5_read_attr_i64(f, NULL, "format_version", &version)) return KAO_ERR;
        if (version < 1 || version > KAO_WEIGHTS_VERSION)
            return kao_fail("%s: format_version %lld; this kao reads version %d", f->path,
                            (long long)version, KAO_WEIGHTS_VERSION);
    }
    return KAO_OK;
}

int kao_weights_probe_backbone(const char *path, kao_arch *out, bool *has_head) {
    kao_h5_file f;
    if (kao_weights_open(&f, path, NULL)) return KAO_ERR;
    int rc = check_format(&f);
    if (rc == KAO_OK) rc = kao_weights_probe_backbone_file(&f, NULL, out, has_head);
    kao_h5_close(&f);
    return rc;
}

int kao_weights_probe(const char *path, kao_arch *out) {
    kao_h5_file f;
    if (kao_weights_open(&f, path, NULL)) return KAO_ERR;
    int rc = check_format(&f);
    if (rc == KAO_OK) rc = kao_weights_probe_file(&f, NULL, out);
    kao_h5_close(&f);
    return rc;
}

/* ---- loading ----------------------------------------------------------------------------- */

/* " — is this a weight file for tf_efficientnetv2_b1?" when the file's architecture can be told
 * and differs from the model's. */
static void mismatch_hint(char *out, size_t size, const kao_h5_file *f, const char *group,
                          const kao_model *m) {
    out[0] = '\0';
    kao_arch file;
    bool has_head;
    if (kao_weights_probe_backbone_file(f, group, &file, &has_head) != KAO_OK) {
        kao_clear_error(); /* the hint is optional; the caller reports the mismatch itself */
        return;
    }
    const kao_arch *a = &m->arch;
    if (strcmp(file.variant, a->variant) == 0 && same_mult(file.width_mult, a->width_mult) &&
        same_mult(file.depth_mult, a->depth_mult)) {
        if (has_head && file.embedding_dim != a->embedding_dim)
            snprintf(out, size, " — the file's classifier has %d outputs, the model's %d",
                     file.embedding_dim, a->embedding_dim);
        return;
    }
    char name[128];
    describe_arch(name, sizeof name, &file);
    snprintf(out, size, " — is this a weight file for %s?", name);
}

static bool same_shape(const kao_h5_info *info, const kao_tensor *t) {
    if (info->ndim != t->ndim) return false;
    for (int i = 0; i < t->ndim; i++)
        if (info->shape[i] != t->shape[i]) return false;
    return true;
}

/* Where check_tensors reports the mismatches it finds: the first one's text (without the path),
 * how many there are, and optionally every one as a line on list. */
typedef struct {
    char first[1024];
    int count;
    FILE *list;
} problems;

static void report_problem(problems *p, const char *fmt, ...) KAO_PRINTF(2, 3);
static void report_problem(problems *p, const char *fmt, ...) {
    char text[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    if (p->count++ == 0) snprintf(p->first, sizeof p->first, "%s", text);
    if (p->list) fprintf(p->list, "  %s\n", text);
}

/* Checks every name, type and shape, reporting each mismatch to p. */
static int check_tensors(problems *p, bool *skip_head, const kao_model *m, const kao_h5_file *f,
                         const char *group, const kao_weights_options *opt, kao_weights_report *report) {
    *skip_head = false;
    for (int i = 0; i < m->num_tensors; i++) {
        const kao_tensor *t = &m->tensors[i];
        bool head = i == m->classifier_weight || i == m->classifier_bias;
        char buf[KAO_NAME_MAX];
        const char *name = at(buf, sizeof buf, group, t->name);
        if (!kao_h5_exists(f, name)) {
            if (head && opt->allow_head_mismatch) *skip_head = true;
            else report_problem(p, "missing tensor '%s'", name);
            continue;
        }
        kao_h5_info info;
        if (kao_h5_dataset_info(f, name, &info)) return KAO_ERR;
        if (i == m->classifier_weight && info.ndim == 2) {
            report->skipped_head_shape[0] = (int)info.shape[0];
            report->skipped_head_shape[1] = (int)info.shape[1];
        }
        char want[64], found[64];
        kao_shape_string(want, sizeof want, t->ndim, t->shape);
        kao_h5_shape_string(found, sizeof found, info.ndim, info.shape);
        if (info.cls != KAO_H5_FLOAT) {
            report_problem(p, "tensor '%s' is %s, expected float32", name, kao_h5_type_name(&info));
        } else if (!same_shape(&info, t)) {
            if (head && opt->allow_head_mismatch) *skip_head = true;
            else report_problem(p, "tensor '%s' has shape %s, expected %s", name, found, want);
        }
    }
    kao_bn_ref *bns = collect_bns(m);
    for (int k = 0; k < m->num_bn; k++) {
        char counter[160], buf[KAO_NAME_MAX];
        counter_name(counter, sizeof counter, m, &bns[k]);
        const char *name = at(buf, sizeof buf, group, counter);
        if (!kao_h5_exists(f, name)) continue; /* optional: counters only matter to PyTorch */
        kao_h5_info info;
        if (kao_h5_dataset_info(f, name, &info)) {
            free(bns);
            return KAO_ERR;
        }
        if (info.cls != KAO_H5_INT || info.ndim != 0) {
            char found[64];
            kao_h5_shape_string(found, sizeof found, info.ndim, info.shape);
            report_problem(p, "tensor '%s' is %s %s, expected an int64 scalar", name, kao_h5_type_name(&info), found);
        }
    }
    free(bns);
    char **names;
    int count;
    if (kao_h5_list(f, group, &names, &count)) return KAO_ERR;
    for (int i = 0; i < count; i++) {
        if (kao_model_find(m, names[i]) >= 0 || is_counter_of(m, names[i])) continue;
        char buf[KAO_NAME_MAX];
        report_problem(p, "unexpected tensor '%s'", at(buf, sizeof buf, group, names[i]));
    }
    kao_h5_free_names(names, count);
    return KAO_OK;
}

/* A NaN or an infinity in the weights makes every embedding NaN: such a file is refused by name. */
static int check_finite(const kao_h5_file *f, const char *name, const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return kao_fail("%s: tensor '%s' holds %s at element %zu: the weights are damaged or come from a "
                            "diverged run", f->path, name, isnan(v[i]) ? "NaN" : "an infinity", i);
    return KAO_OK;
}

static void head_note(kao_weights_report *r, const kao_model *m) {
    int emb = m->arch.embedding_dim;
    const int *s = r->skipped_head_shape;
    if (s[0] == 0)
        snprintf(r->note, sizeof r->note, "no classifier in the file: a fresh %d-d embedding head is initialised", emb);
    else if (s[0] == 1000)
        snprintf(r->note, sizeof r->note, "classifier [%d, %d] skipped: ImageNet head, a fresh %d-d embedding head is initialised",
                 s[0], s[1], emb);
    else
        snprintf(r->note, sizeof r->note, "classifier [%d, %d] skipped: not the model's %d-d embedding head, a fresh one is initialised",
                 s[0], s[1], emb);
}

int kao_weights_read(kao_model *m, const kao_h5_file *f, const char *group, const kao_weights_options *options,
                     kao_weights_report *report) {
    static const kao_weights_options strict = {0};
    const kao_weights_options *opt = options ? options : &strict;
    kao_weights_report local;
    kao_weights_report *r = report ? report : &local;
    memset(r, 0, sizeof *r);

    problems p = {.count = 0, .list = NULL};
    bool skip_head;
    if (check_tensors(&p, &skip_head, m, f, group, opt, r)) return KAO_ERR;
    if (p.count) {
        char hint[256], more[96] = "";
        mismatch_hint(hint, sizeof hint, f, group, m);
        if (p.count > 1)
            snprintf(more, sizeof more, " (%d more mismatch%s: kao info lists them all)", p.count - 1,
                     p.count == 2 ? "" : "es");
        return kao_fail("%s: %s%s%s", f->path, p.first, hint, more);
    }
    if (!skip_head) r->skipped_head_shape[0] = r->skipped_head_shape[1] = 0;

    for (int i = 0; i < m->num_tensors; i++) {
        const kao_tensor *t = &m->tensors[i];
        if (skip_head && t->is_head) continue;
        int64_t shape[4];
        shape64(shape, t);
        char buf[KAO_NAME_MAX];
        if (kao_h5_read_f32(f, at(buf, sizeof buf, group, t->name), kao_tensor_data(m, i), t->ndim, shape) ||
            check_finite(f, t->name, kao_tensor_data(m, i), t->numel))
            return KAO_ERR;
        r->tensors_loaded++;
    }
    kao_bn_ref *bns = collect_bns(m);
    int rc = KAO_OK;
    for (int k = 0; k < m->num_bn && rc == KAO_OK; k++) {
        char counter[160], buf[KAO_NAME_MAX];
        counter_name(counter, sizeof counter, m, &bns[k]);
        const char *name = at(buf, sizeof buf, group, counter);
        m->bn_batches_tracked[k] = 0;
        if (!kao_h5_exists(f, name)) continue;
        rc = kao_h5_read_i64(f, name, &m->bn_batches_tracked[k], 0, NULL);
        r->counters_loaded++;
    }
    free(bns);
    if (rc != KAO_OK) return rc;
    if (skip_head) {
        kao_model_init_head(m, opt->head_seed);
        r->head_skipped = true;
        head_note(r, m);
    }
    return KAO_OK;
}

int kao_weights_load(kao_model *m, const char *path, const kao_weights_options *options,
                     kao_weights_report *report) {
    kao_h5_file f;
    if (kao_weights_open(&f, path, NULL)) return KAO_ERR;
    int rc = check_format(&f);
    if (rc == KAO_OK) rc = kao_weights_read(m, &f, NULL, options, report);
    kao_h5_close(&f);
    return rc;
}

int kao_weights_list_mismatches(const kao_model *m, const char *path, const kao_weights_options *options,
                                FILE *out) {
    kao_h5_file f;
    if (kao_weights_open(&f, path, NULL)) return KAO_ERR;
    static const kao_weights_options strict = {0};
    kao_weights_report unused;
    memset(&unused, 0, sizeof unused);
    problems p = {.count = 0, .list = out};
    bool skip_head;
    int rc = check_tensors(&p, &skip_head, m, &f, NULL, options ? options : &strict, &unused);
    kao_h5_close(&f);
    return rc ? KAO_ERR : p.count;
}
