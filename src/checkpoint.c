/* checkpoint.c — saving and restoring a training run (layout: checkpoint.h). */
#include "kao/checkpoint.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kao/util.h"
#include "kao/weights.h"

#define NAME_MAX_LEN 256

static void hex64(char out[17], uint64_t v) { snprintf(out, 17, "%016" PRIx64, v); }

static int parse_hex64(uint64_t *out, const char *text, const char *path, const char *what) {
    char *end;
    unsigned long long v = strtoull(text, &end, 16);
    if (end == text || *end || strlen(text) != 16)
        return kao_fail("%s: attribute %s is '%s', expected 16 hex digits", path, what, text);
    *out = (uint64_t)v;
    return KAO_OK;
}

/* The optimizer's state blocks as datasets "<prefix>/<tensor>.<state>" plus "<prefix>/steps". */
static int write_optim(kao_h5_file *f, const char *prefix, const kao_optim *o) {
    char name[NAME_MAX_LEN];
    int rc = KAO_OK;
    for (int k = 0; k < kao_optim_num_states(o) && rc == KAO_OK; k++) {
        const float *state = kao_optim_state(o, k);
        for (int i = 0; i < o->num_tensors && rc == KAO_OK; i++) {
            const kao_tensor *t = &o->tensors[i];
            if (t->role != KAO_ROLE_PARAM) continue;
            int64_t shape[4];
            for (int d = 0; d < t->ndim; d++) shape[d] = t->shape[d];
            snprintf(name, sizeof name, "%s/%s.%s", prefix, t->name, kao_optim_state_name(o, k));
            rc = kao_h5_write_f32(f, name, state + t->offset, t->ndim, shape);
        }
    }
    snprintf(name, sizeof name, "%s/steps", prefix);
    if (rc == KAO_OK) rc = kao_h5_write_i64(f, name, o->steps, 1, (int64_t[]){o->num_tensors});
    if (rc == KAO_OK) rc = kao_h5_write_attr_str(f, prefix, "type", kao_optim_type_name(o->cfg.type));
    return rc;
}

static int read_optim(kao_optim *o, const kao_h5_file *f, const char *prefix) {
    char name[NAME_MAX_LEN], type[32];
    if (kao_h5_read_attr_str(f, prefix, "type", type, sizeof type)) return KAO_ERR;
    if (strcmp(type, kao_optim_type_name(o->cfg.type)) != 0)
        return kao_fail("%s: %s was saved by the %s optimizer, but this run uses %s", f->path, prefix, type,
                        kao_optim_type_name(o->cfg.type));
    for (int k = 0; k < kao_optim_num_states(o); k++) {
        float *state = kao_optim_state(o, k);
        for (int i = 0; i < o->num_tensors; i++) {
            const kao_tensor *t = &o->tensors[i];
            if (t->role != KAO_ROLE_PARAM) continue;
            int64_t shape[4];
            for (int d = 0; d < t->ndim; d++) shape[d] = t->shape[d];
            snprintf(name, sizeof name, "%s/%s.%s", prefix, t->name, kao_optim_state_name(o, k));
            if (kao_h5_read_f32(f, name, state + t->offset, t->ndim, shape)) return KAO_ERR;
        }
    }
    snprintf(name, sizeof name, "%s/steps", prefix);
    return kao_h5_read_i64(f, name, o->steps, 1, (int64_t[]){o->num_tensors});
}

int kao_checkpoint_write_arcface(kao_h5_file *f, const float *W, int E, char *const *classes, int C) {
    if (kao_h5_write_f32(f, "arcface/W", W, 2, (int64_t[]){E, C})) return KAO_ERR;
    return kao_h5_write_strings(f, "arcface/classes", (const char *const *)classes, C);
}

int kao_checkpoint_read_arcface(const kao_h5_file *f, float **W, int *E, char ***classes, int *C) {
    *W = NULL;
    *classes = NULL;
    if (!kao_h5_exists(f, "arcface/W") || !kao_h5_exists(f, "arcface/classes"))
        return kao_fail("%s: holds no ArcFace class centres (arcface/W and arcface/classes)", f->path);
    kao_h5_info info;
    if (kao_h5_dataset_info_backed(f, "arcface/W", &info)) return KAO_ERR;
    if (info.ndim != 2 || info.cls != KAO_H5_FLOAT)
        return kao_fail("%s: arcface/W should be a 2-D float array, found %s with %d dimensions", f->path,
                        kao_h5_type_name(&info), info.ndim);
    if (kao_h5_read_strings(f, "arcface/classes", classes, C)) return KAO_ERR;
    if (*C != info.shape[1]) {
        int rc = kao_fail("%s: arcface/W has %" PRId64 " columns but arcface/classes lists %d names", f->path,
                          info.shape[1], *C);
        kao_h5_free_names(*classes, *C);
        *classes = NULL;
        return rc;
    }
    *E = (int)info.shape[0];
    *W = kao_malloc((size_t)info.numel * sizeof(float), "ArcFace W");
    if (kao_h5_read_f32(f, "arcface/W", *W, 2, info.shape)) {
        free(*W);
        *W = NULL;
        kao_h5_free_names(*classes, *C);
        *classes = NULL;
        return KAO_ERR;
    }
    return KAO_OK;
}

/* The test hook of checkpoint.h. */
static void maybe_signal_for_test(void) {
    static int saves;
    saves++;
    const char *die = getenv("KAO_TEST_KILL_DURING_CHECKPOINT"), *ctrl_c = getenv("KAO_TEST_SIGINT_DURING_CHECKPOINT");
    if (die && atoi(die) == saves) raise(SIGKILL);
    if (ctrl_c && atoi(ctrl_c) == saves) raise(SIGINT);
}

static int write_all(kao_h5_file *f, const kao_trainer *t, const kao_checkpoint_info *info) {
    char config_hash[17], split_hash[17];
    hex64(config_hash, info->config_hash);
    hex64(split_hash, info->split_hash);
    const kao_early_stop *es = &info->early_stop;
    int64_t rng[4];
    memcpy(rng, t->rng.s, sizeof rng);
    const char *config[1] = {info->config_text};
    int E = t->model->arch.embedding_dim;
    if (kao_weights_write(f, "model", t->model)) return KAO_ERR;
    maybe_signal_for_test();
    if (kao_h5_write_strings(f, "config", config, 1) ||
        kao_checkpoint_write_arcface(f, t->arcface_W, E, info->classes, info->num_classes) ||
        write_optim(f, "optimizer/model", &t->optim) || write_optim(f, "optimizer/arcface", &t->arcface_optim) ||
        kao_h5_write_i64(f, "rng/drop_path", rng, 1, (int64_t[]){4}) ||
        (info->trained && kao_trained_info_write(f, info->trained)))
        return KAO_ERR;
    /* Attributes last: a file that has them is complete (kao_h5_commit makes it so anyway). */
    if (kao_h5_write_attr_str(f, NULL, "format", KAO_CHECKPOINT_FORMAT) ||
        kao_h5_write_attr_i64(f, NULL, "format_version", KAO_CHECKPOINT_VERSION) ||
        kao_h5_write_attr_str(f, NULL, "kao_version", KAO_VERSION) ||
        kao_h5_write_attr_i64(f, NULL, "step", t->step) || kao_h5_write_attr_i64(f, NULL, "epoch", info->epoch) ||
        kao_h5_write_attr_i64(f, NULL, "batch_in_epoch", info->batch_in_epoch) ||
        kao_h5_write_attr_str(f, NULL, "config_hash", config_hash) ||
        kao_h5_write_attr_str(f, NULL, "split_hash", split_hash) ||
        kao_h5_write_attr_str(f, NULL, "early_stop_metric", kao_watch_name(es->metric)) ||
        kao_h5_write_attr_f64(f, NULL, "early_stop_best", es->best) ||
        kao_h5_write_attr_i64(f, NULL, "early_stop_best_epoch", es->best_epoch) ||
        kao_h5_write_attr_i64(f, NULL, "early_stop_bad_epochs", es->bad_epochs) ||
        kao_h5_write_attr_f64(f, NULL, "epoch_loss_sum", info->epoch_loss_sum) ||
        kao_h5_write_attr_i64(f, NULL, "epoch_correct", info->epoch_correct) ||
        kao_h5_write_attr_i64(f, NULL, "epoch_images", info->epoch_images))
        return KAO_ERR;
    return KAO_OK;
}

int kao_checkpoint_save(const char *path, kao_trainer *t, const kao_checkpoint_info *info) {
    kao_trainer_to_host(t);
    KAO_ASSERT(t->step == info->step, "trainer at step %" PRId64 ", info at %" PRId64, t->step, info->step);
    KAO_ASSERT(info->num_classes == t->num_classes, "%d class names for %d classes", info->num_classes,
               t->num_classes);
    kao_h5_file f;
    if (kao_h5_create(&f, path)) return KAO_ERR;
    int rc = write_all(&f, t, info);
    if (rc == KAO_OK) rc = kao_h5_commit(&f);
    kao_h5_close(&f);
    return rc;
}

void kao_checkpoint_info_free(kao_checkpoint_info *info) {
    free(info->config_text);
    if (info->classes) kao_h5_free_names(info->classes, info->num_classes);
    memset(info, 0, sizeof *info);
}

static int read_info(kao_checkpoint_info *info, const kao_h5_file *f) {
    char text[64];
    int64_t v;
    if (kao_h5_read_attr_str(f, NULL, "format", text, sizeof text)) return KAO_ERR;
    if (strcmp(text, KAO_CHECKPOINT_FORMAT) != 0)
        return kao_fail("%s: not a kao checkpoint (format '%s')", f->path, text);
    if (kao_h5_read_attr_i64(f, NULL, "format_version", &v)) return KAO_ERR;
    if (v != KAO_CHECKPOINT_VERSION)
        return kao_fail("%s: checkpoint format version %" PRId64 "; this kao reads version %d", f->path, v,
                        KAO_CHECKPOINT_VERSION);
    if (kao_h5_read_attr_i64(f, NULL, "step", &info->step)) return KAO_ERR;
    if (kao_h5_read_attr_i64(f, NULL, "epoch", &v)) return KAO_ERR;
    info->epoch = (int)v;
    if (kao_h5_read_attr_i64(f, NULL, "batch_in_epoch", &v)) return KAO_ERR;
    info->batch_in_epoch = (int)v;
    if (kao_h5_read_attr_str(f, NULL, "config_hash", text, sizeof text) ||
        parse_hex64(&info->config_hash, text, f->path, "config_hash"))
        return KAO_ERR;
    if (kao_h5_read_attr_str(f, NULL, "split_hash", text, sizeof text) ||
        parse_hex64(&info->split_hash, text, f->path, "split_hash"))
        return KAO_ERR;
    kao_early_stop *es = &info->early_stop;
    if (kao_h5_read_attr_str(f, NULL, "early_stop_metric", text, sizeof text)) return KAO_ERR;
    es->metric = !strcmp(text, "eer") ? KAO_WATCH_EER : !strcmp(text, "auc") ? KAO_WATCH_AUC : KAO_WATCH_VAL_LOSS;
    if (kao_h5_read_attr_f64(f, NULL, "early_stop_best", &es->best)) return KAO_ERR;
    if (kao_h5_read_attr_i64(f, NULL, "early_stop_best_epoch", &v)) return KAO_ERR;
    es->best_epoch = (int)v;
    if (kao_h5_read_attr_i64(f, NULL, "early_stop_bad_epochs", &v)) return KAO_ERR;
    es->bad_epochs = (int)v;
    if (kao_h5_read_attr_f64(f, NULL, "epoch_loss_sum", &info->epoch_loss_sum) ||
        kao_h5_read_attr_i64(f, NULL, "epoch_correct", &info->epoch_correct) ||
        kao_h5_read_attr_i64(f, NULL, "epoch_images", &info->epoch_images))
        return KAO_ERR;
    char **config;
    int n;
    if (kao_h5_read_strings(f, "config", &config, &n)) return KAO_ERR;
    if (n != 1) {
        kao_h5_free_names(config, n);
        return kao_fail("%s: 'config' holds %d strings, expected 1", f->path, n);
    }
    info->config_text = kao_strdup(config[0]);
    kao_h5_free_names(config, n);
    return kao_h5_read_strings(f, "arcface/classes", &info->classes, &info->num_classes);
}

int kao_checkpoint_read_info(kao_checkpoint_info *info, const char *path) {
    memset(info, 0, sizeof *info);
    kao_h5_file f;
    if (kao_h5_open(&f, path)) return KAO_ERR;
    int rc = read_info(info, &f);
    kao_h5_close(&f);
    if (rc) kao_checkpoint_info_free(info);
    return rc;
}

int kao_checkpoint_restore(kao_trainer *t, const char *path) {
    kao_h5_file f;
    if (kao_h5_open(&f, path)) return KAO_ERR;
    int E = t->model->arch.embedding_dim, C = t->num_classes;
    int64_t rng[4], step;
    int rc = kao_weights_read(t->model, &f, "model", NULL, NULL);
    if (rc == KAO_OK) rc = kao_h5_read_f32(&f, "arcface/W", t->arcface_W, 2, (int64_t[]){E, C});
    if (rc == KAO_OK) rc = read_optim(&t->optim, &f, "optimizer/model");
    if (rc == KAO_OK) rc = read_optim(&t->arcface_optim, &f, "optimizer/arcface");
    if (rc == KAO_OK) rc = kao_h5_read_i64(&f, "rng/drop_path", rng, 1, (int64_t[]){4});
    if (rc == KAO_OK) rc = kao_h5_read_attr_i64(&f, NULL, "step", &step);
    if (rc == KAO_OK) {
        memcpy(t->rng.s, rng, sizeof rng);
        t->step = step;
        kao_trainer_to_backend(t);
    }
    kao_h5_close(&f);
    return rc;
}
