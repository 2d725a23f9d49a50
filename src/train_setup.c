/* train_setup.c — a kao train run before its first step: the data and split, the model and
 * trainer, starting weights and carried-over identities, and resuming (train_loop.h); the run
 * folder itself is train_folder.c's. */
#include "train_internal.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kao/h5io.h"
#include "kao/trained_info.h"
#include "kao/weights.h"
#include "kao/weights_source.h"

char *kao_run_path(const kao_run *r, const char *name) {
    size_t n = strlen(r->dir) + strlen(name) + 2;
    char *p = kao_malloc(n, "path");
    snprintf(p, n, "%s/%s", r->dir, name);
    return p;
}

/* A relative path as an absolute one, so that the run folder's config.ini works from anywhere. */
static void make_absolute(char *path, size_t size) {
    if (!path[0] || path[0] == '/') return;
    char resolved[PATH_MAX];
    if (realpath(path, resolved) && strlen(resolved) < size && kao_valid_utf8(resolved))
        snprintf(path, size, "%s", resolved); /* else config.ini keeps the path as given (UTF-8) */
}

/* ---- checkpoints on disk ----------------------------------------------------------------------- */

typedef struct {
    int64_t step;
    char *path;
} ckpt_file;

static int by_step_desc(const void *a, const void *b) {
    int64_t x = ((const ckpt_file *)a)->step, y = ((const ckpt_file *)b)->step;
    return (x < y) - (x > y);
}

/* The checkpoints in <dir>/checkpoints, newest first. Stale temporary files of interrupted saves
 * are deleted when remove_temps. */
static int list_checkpoints(const kao_run *r, ckpt_file **out, int *count, bool remove_temps) {
    char *dir = kao_run_path(r, "checkpoints");
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) {
        int rc = kao_fail("%s: cannot read checkpoint folder: %s", dir, strerror(errno));
        free(dir);
        return rc;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        long long step;
        int len = 0;
        if (sscanf(e->d_name, "ckpt-%lld.h5%n", &step, &len) != 1 || len == 0) continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *path = kao_malloc(n, "path");
        snprintf(path, n, "%s/%s", dir, e->d_name);
        if (e->d_name[len] != '\0') { /* "ckpt-N.h5.tmp.XXXXXX": a save that never finished */
            char name[64];
            snprintf(name, sizeof name, "%.*s", len, e->d_name);
            if (remove_temps && kao_is_temp_name(e->d_name, name)) {
                fprintf(stderr, "removing %s (left by an interrupted save)\n", path);
                unlink(path);
            }
            free(path);
            continue;
        }
        *out = kao_realloc(*out, (size_t)(*count + 1) * sizeof **out, "checkpoint list");
        (*out)[(*count)++] = (ckpt_file){step, path};
    }
    closedir(d);
    free(dir);
    if (*count) qsort(*out, (size_t)*count, sizeof **out, by_step_desc);
    return KAO_OK;
}

static void free_checkpoints(ckpt_file *files, int count) {
    for (int i = 0; i < count; i++) free(files[i].path);
    free(files);
}

/* What best.h5, last.h5 and the checkpoints record for kao embed, verify, export and --init. */
static void trained_info_of(const kao_run *r, kao_trained_info *info) {
    *info = (kao_trained_info){.input_height = r->cfg.model.input_size, .input_width = r->cfg.model.input_size,
                               .has_normalisation = true};
    memcpy(info->mean, r->norm.mean, sizeof info->mean);
    memcpy(info->std, r->norm.std, sizeof info->std);
    snprintf(info->split_hash, sizeof info->split_hash, "%016" PRIx64, r->split.hash);
    info->has_thresholds = r->has_thresholds;
    info->threshold_eer = r->threshold_eer;
    info->threshold_far1e3 = r->threshold_far1e3;
    info->threshold_diff_pairs = r->threshold_diff_pairs;
}

int kao_run_save_checkpoint(kao_run *r) {
    if (kao_guard_state(r)) return KAO_ERR; /* nothing is saved from a diverged state */
    kao_trained_info trained;
    trained_info_of(r, &trained);
    char name[64];
    snprintf(name, sizeof name, "checkpoints/ckpt-%09" PRId64 ".h5", r->trainer.step);
    char *path = kao_run_path(r, name);
    kao_checkpoint_info info = {
        .step = r->trainer.step,
        .epoch = r->epoch,
        .batch_in_epoch = r->batch_in_epoch,
        .config_hash = r->config_hash,
        .split_hash = r->split.hash,
        .early_stop = r->early_stop,
        .epoch_loss_sum = r->epoch_loss_sum,
        .epoch_correct = r->epoch_correct,
        .epoch_images = r->epoch_images,
        .config_text = r->config_text,
        .classes = r->classes,
        .num_classes = r->ds.num_classes,
        .trained = &trained,
    };
    int rc = kao_checkpoint_save(path, &r->trainer, &info);
    free(path);
    if (rc) return KAO_ERR;
    r->started = true; /* from now on the run is resumable: a later failure leaves the folder */
    /* Keep the newest checkpoint.keep. */
    ckpt_file *files;
    int count;
    if (list_checkpoints(r, &files, &count, false)) return KAO_ERR;
    for (int i = r->cfg.checkpoint.keep; i < count; i++) unlink(files[i].path);
    free_checkpoints(files, count);
    return KAO_OK;
}

int kao_run_save_weights(kao_run *r, const char *name) {
    kao_trainer_to_host(&r->trainer);
    if (kao_guard_state(r)) return KAO_ERR; /* nothing is saved from a diverged state */
    char *path = kao_run_path(r, name);
    kao_h5_file f;
    int rc = kao_h5_create(&f, path);
    free(path);
    if (rc) return KAO_ERR;
    rc = kao_weights_write(&f, NULL, &r->model);
    if (rc == KAO_OK)
        rc = kao_checkpoint_write_arcface(&f, r->trainer.arcface_W, r->model.arch.embedding_dim, r->classes,
                                          r->ds.num_classes);
    kao_trained_info info;
    trained_info_of(r, &info);
    if (rc == KAO_OK) rc = kao_trained_info_write(&f, &info);
    if (rc == KAO_OK) rc = kao_h5_commit(&f);
    kao_h5_close(&f);
    return rc;
}

/* ---- config ------------------------------------------------------------------------------------ */

/* The "section.key = value" lines of a config dump that differ between a and b, for messages. */
static void describe_config_change(char *out, size_t size, const char *old_text, const char *new_text) {
    size_t n = 0;
    out[0] = '\0';
    const char *a = old_text, *b = new_text;
    char section[64] = "";
    int shown = 0;
    while (*a && *b && n + 1 < size) {
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        if (a[0] == '[') snprintf(section, sizeof section, "%.*s", (int)(la > 2 ? la - 2 : 0), a + 1);
        if ((la != lb || strncmp(a, b, la) != 0) && a[0] != '#' && shown < 6) {
            const char *eq = memchr(a, '=', la);
            const char *eqb = memchr(b, '=', lb);
            if (eq && eqb) {
                int key_len = (int)(eq - a) - 1;
                n += (size_t)snprintf(out + n, size - n, "%s%s.%.*s = %.*s (the run has %.*s)", shown ? "; " : "",
                                      section, key_len, a, (int)(lb - (size_t)(eqb - b) - 2), eqb + 2,
                                      (int)(la - (size_t)(eq - a) - 2), eq + 2);
                shown++;
            }
        }
        a += la + (a[la] == '\n');
        b += lb + (b[lb] == '\n');
    }
}

/* ---- data -------------------------------------------------------------------------------------- */

static void print_data_summary(kao_run *r) {
    kao_dataset_print_summary(stderr, &r->ds);
    if (r->out.log) kao_dataset_print_summary(r->out.log, &r->ds);
    kao_split_print_summary(stderr, &r->split, &r->ds);
    if (r->out.log) kao_split_print_summary(r->out.log, &r->split, &r->ds);
    /* A filter that drops most people was made for another data set (min_images = 80, the original's
     * for thousands of identities, on a few dozen). */
    int small = 0;
    for (int i = 0; i < r->ds.num_dropped; i++) small += r->ds.dropped[i].num_images > 0;
    if (2 * small > r->ds.num_classes + small)
        kao_say(r, "warning: data.min_images = %d dropped %d of %d identities (those with fewer images); lower "
                   "data.min_images to train on more of them", r->cfg.data.min_images, small,
                r->ds.num_classes + small);
}

static int load_data(kao_run *r, const kao_checkpoint_info *resume_from) {
    kao_dataset_options o = {.min_images = r->cfg.data.min_images, .max_images = r->cfg.data.max_images,
                             .strict = r->cfg.data.strict, .follow_symlinks = r->cfg.data.follow_symlinks};
    if (kao_dataset_scan(&r->ds, r->cfg.data.root, &o)) return KAO_ERR;
    char *split_path = kao_run_path(r, "split.tsv");
    int rc = KAO_OK;
    if (resume_from) {
        rc = kao_split_read(&r->split, &r->ds, split_path);
        if (rc == KAO_OK && r->split.hash != resume_from->split_hash && !r->args.allow_changed)
            rc = kao_fail("%s: the split changed since the checkpoint was written; refusing to resume "
                          "(--allow-changed continues anyway)", split_path);
        if (rc && r->args.allow_changed) {
            kao_say(r, "warning: %s; --allow-changed: making a new split of the current data", kao_last_error());
            kao_split_free(&r->split);
            rc = KAO_OK;
            goto make_split;
        }
        if (rc) kao_fail_context("the data set changed since the run started (resume refused; --allow-changed "
                                 "continues with a new split): ");
        goto done;
    }
    if (r->args.split_path) {
        rc = kao_split_read(&r->split, &r->ds, r->args.split_path);
        if (rc == KAO_OK) rc = kao_split_write(&r->split, &r->ds, split_path);
        goto done;
    }
make_split:;
    kao_split_options so = {.seed = (uint64_t)r->cfg.data.seed, .val_fraction = r->cfg.data.val_fraction,
                            .val_count = r->cfg.data.val_count};
    rc = kao_split_create(&r->split, &r->ds, &so);
    if (rc == KAO_OK) rc = kao_split_write(&r->split, &r->ds, split_path);
done:
    free(split_path);
    if (rc) return KAO_ERR;
    print_data_summary(r);

    r->labels = kao_malloc((size_t)r->ds.num_images * sizeof *r->labels, "labels");
    for (int i = 0; i < r->ds.num_images; i++) r->labels[i] = r->ds.images[i].label;
    r->classes = kao_malloc((size_t)r->ds.num_classes * sizeof *r->classes, "class names");
    for (int c = 0; c < r->ds.num_classes; c++) r->classes[c] = r->ds.classes[c].name;

    if (resume_from) {
        bool same = resume_from->num_classes == r->ds.num_classes;
        for (int c = 0; same && c < r->ds.num_classes; c++) same = !strcmp(resume_from->classes[c], r->classes[c]);
        if (!same)
            return kao_fail("%s: the identities changed since the run started (%d then, %d now); resume refused. "
                            "To add or remove people start a new run from this one: kao train --init %s/best.h5 ...",
                            r->cfg.data.root, resume_from->num_classes, r->ds.num_classes, r->dir);
        return KAO_OK;
    }
    /* classes.txt */
    char *path = kao_run_path(r, "classes.txt");
    char temp[4200];
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    rc = KAO_ERR;
    if (f) {
        for (int c = 0; c < r->ds.num_classes; c++) fprintf(f, "%s\n", r->classes[c]);
        rc = kao_atomic_fclose(f, temp, path);
    }
    free(path);
    return rc;
}

/* ---- model and trainer ------------------------------------------------------------------------- */

/* One group of rate lr; torch's betas, eps as train.eps; Nesterov only for the network. */
static kao_optim_cfg optim_cfg(const kao_config *c, int optimizer, double lr, double weight_decay,
                               double momentum, bool nesterov) {
    kao_optim_type type = optimizer == KAO_OPTIMIZER_SGD ? KAO_OPTIM_SGD : KAO_OPTIM_ADAMW;
    kao_optim_cfg o = kao_optim_default_cfg(type, lr);
    o.eps = c->train.eps;
    if (type == KAO_OPTIM_SGD) {
        o.momentum = momentum;
        o.nesterov = nesterov;
    }
    o.groups[0].weight_decay = weight_decay;
    return o;
}

static void trainer_cfg(kao_trainer_cfg *t, const kao_config *c, int batches_per_epoch) {
    memset(t, 0, sizeof *t);
    t->model_optim = optim_cfg(c, c->train.optimizer, c->train.lr, c->train.weight_decay, c->train.momentum,
                               c->train.nesterov);
    t->model_optim.groups[0].exclude_no_decay = true; /* timm's create_optimizer: no decay on biases and BN */
    t->model_optim.num_groups = 2;
    t->model_optim.groups[KAO_GROUP_HEAD] = t->model_optim.groups[KAO_GROUP_BACKBONE];
    t->model_optim.groups[KAO_GROUP_HEAD].lr = c->train.head_lr;
    /* W has its own optimizer, as pytorch-metric-learning's losses with weights are trained. */
    t->arcface_optim = optim_cfg(c, c->arcface.optimizer, c->arcface.lr, c->arcface.weight_decay,
                                 c->arcface.momentum, false);
    t->arcface = (kao_arcface_cfg){.margin_deg = c->arcface.margin, .scale = c->arcface.scale};
    int64_t per_epoch = batches_per_epoch;
    kao_schedule *s = &t->schedule;
    s->type = (kao_schedule_type)c->train.schedule;
    if (s->type == KAO_SCHEDULE_STEP) {
        s->step_size = c->train.step_epochs * per_epoch;
        s->gamma = c->train.step_gamma;
    } else if (s->type == KAO_SCHEDULE_COSINE) {
        s->warmup_steps = c->train.warmup_epochs * per_epoch;
        s->warmup_start_factor = s->warmup_steps > 0 ? 1.0 / (double)s->warmup_steps : 1.0;
        s->total_steps = c->train.epochs * per_epoch;
        s->min_factor = 0;
    }
    t->options.freeze_bn = c->train.freeze_bn;
    t->grad_clip = c->train.grad_clip;
    t->seed = (uint64_t)c->train.seed;
}

/* Keeps the ArcFace columns of identities that init's run also had, by name, bit for bit. f has
 * arcface/W: one that does not read is damaged, an error. */
static int carry_identities(kao_run *r, const kao_h5_file *f) {
    float *W;
    char **names;
    int E, C;
    if (kao_checkpoint_read_arcface(f, &W, &E, &names, &C)) return KAO_ERR;
    int E_now = r->model.arch.embedding_dim, C_now = r->ds.num_classes;
    if (E != E_now) {
        kao_say(r, "identities: %s has %d-d ArcFace centres, this run %d-d; all %d initialised afresh", f->path, E,
                E_now, C_now);
    } else {
        bool *old_used = kao_calloc((size_t)C, sizeof *old_used, "identity map");
        char added[600] = "", dropped[600] = "";
        int kept = 0, num_added = 0, num_dropped = 0;
        size_t na = 0, nd = 0;
        for (int c = 0; c < C_now; c++) {
            int old = -1;
            for (int k = 0; k < C && old < 0; k++)
                if (!strcmp(names[k], r->classes[c])) old = k;
            if (old < 0) {
                if (num_added++ < 8 && na < sizeof added)
                    na += (size_t)snprintf(added + na, sizeof added - na, "%s%s", na ? ", " : "", r->classes[c]);
                continue;
            }
            old_used[old] = true;
            kept++;
            for (int e = 0; e < E; e++) r->trainer.arcface_W[(size_t)e * C_now + c] = W[(size_t)e * C + old];
        }
        for (int k = 0; k < C; k++) {
            if (old_used[k]) continue;
            if (num_dropped++ < 8 && nd < sizeof dropped)
                nd += (size_t)snprintf(dropped + nd, sizeof dropped - nd, "%s%s", nd ? ", " : "", names[k]);
        }
        kao_say(r, "identities: kept %d from %s, added %d%s%s%s, dropped %d%s%s%s", kept, f->path, num_added,
                num_added ? " (" : "", added, num_added ? (num_added > 8 ? ", ...)" : ")") : "", num_dropped,
                num_dropped ? " (" : "", dropped, num_dropped ? (num_dropped > 8 ? ", ...)" : ")") : "");
        free(old_used);
    }
    free(W);
    kao_h5_free_names(names, C);
    return KAO_OK;
}

/* Whether the start weights file f is a checkpoint (its weights in the group "model"). */
static int is_checkpoint(const kao_h5_file *f, bool *checkpoint) {
    char format[64] = "";
    if (kao_h5_has_attr(f, NULL, "format") && kao_h5_read_attr_str(f, NULL, "format", format, sizeof format))
        return KAO_ERR;
    *checkpoint = !strcmp(format, KAO_CHECKPOINT_FORMAT);
    return KAO_OK;
}

/* model.name, width_mult and depth_mult that the config leaves at their defaults come from the
 * start weights, as embed, verify and export take them; so does embedding_dim when the file's
 * classifier is an embedding head (a kao run's, or any but ImageNet's 1000 classes). Keys the
 * config gives must agree with the file; embedding_dim may differ (a fresh head is initialised). */
static int resolve_architecture(kao_run *r) {
    kao_config *c = &r->cfg;
    kao_h5_file f;
    if (kao_weights_open(&f, c->model.weights, NULL)) return KAO_ERR;
    kao_arch file, want;
    bool checkpoint = false, has_head = false;
    int rc = is_checkpoint(&f, &checkpoint);
    if (rc == KAO_OK) rc = kao_weights_probe_backbone_file(&f, checkpoint ? "model" : NULL, &file, &has_head);
    bool embedding_head = rc == KAO_OK && has_head && (file.embedding_dim != 1000 || kao_h5_exists(&f, "arcface/W"));
    kao_h5_close(&f);
    bool named = kao_config_given(c, "model.name") && kao_config_given(c, "model.width_mult") &&
                 kao_config_given(c, "model.depth_mult");
    if (rc && named) { /* a file that does not tell (no attributes, odd multipliers): loading checks it */
        kao_clear_error();
        return KAO_OK;
    }
    if (rc) return KAO_ERR;
    if (!kao_config_given(c, "model.name")) snprintf(c->model.name, sizeof c->model.name, "%s", file.variant);
    if (!kao_config_given(c, "model.width_mult")) c->model.width_mult = file.width_mult;
    if (!kao_config_given(c, "model.depth_mult")) c->model.depth_mult = file.depth_mult;
    if (!kao_config_given(c, "model.embedding_dim") && embedding_head) c->model.embedding_dim = file.embedding_dim;
    if (kao_arch_build(&want, c->model.name, c->model.width_mult, c->model.depth_mult, 1, 0)) return KAO_ERR;
    char diff[600] = "";
    size_t n = 0;
    if (strcmp(want.variant, file.variant) != 0)
        n += (size_t)snprintf(diff + n, sizeof diff - n, "model.name: expected %s (config), found %s (file)",
                              want.variant, file.variant);
    if (fabs(want.width_mult - file.width_mult) > 1e-9 && n < sizeof diff)
        n += (size_t)snprintf(diff + n, sizeof diff - n, "%smodel.width_mult: expected %g (config), found %g (file)",
                              n ? "; " : "", want.width_mult, file.width_mult);
    if (fabs(want.depth_mult - file.depth_mult) > 1e-9 && n < sizeof diff)
        snprintf(diff + n, sizeof diff - n, "%smodel.depth_mult: expected %g (config), found %g (file)", n ? "; " : "",
                 want.depth_mult, file.depth_mult);
    if (diff[0])
        return kao_fail("%s: the start weights do not fit the config's architecture: %s; remove these keys from "
                        "the config to take the file's, or start from weights of this architecture",
                        c->model.weights, diff);
    return KAO_OK;
}

/* model.weights: ImageNet weights, or a previous run's best.h5 / last.h5 / checkpoint. */
static int load_start_weights(kao_run *r, const char *path) {
    kao_h5_file f;
    kao_weights_format source; /* a kao file, or timm's safetensors or Keras's .h5 converted */
    if (kao_weights_open(&f, path, &source)) return KAO_ERR;
    bool checkpoint;
    if (is_checkpoint(&f, &checkpoint)) {
        kao_h5_close(&f);
        return KAO_ERR;
    }
    kao_weights_options o = {.allow_head_mismatch = true, .head_seed = (uint64_t)r->cfg.train.seed};
    kao_weights_report report;
    if (kao_weights_read(&r->model, &f, checkpoint ? "model" : NULL, &o, &report)) { /* its messages name f */
        kao_h5_close(&f);
        return KAO_ERR;
    }
    const kao_arch *a = &r->model.arch;
    kao_say(r, "weights: %d tensors from %s (%s): %s, width %g, depth %g, %d-d embedding", report.tensors_loaded, path,
            checkpoint ? "checkpoint" : source.name, a->variant, a->width_mult, a->depth_mult, a->embedding_dim);
    if (report.head_skipped) kao_say(r, "weights: %s", report.note);
    int rc = kao_h5_exists(&f, "arcface/W") ? carry_identities(r, &f) : KAO_OK;
    kao_h5_close(&f);
    return rc;
}

/* Verification needs a same-identity pair and two identities among the validation images. */
static int check_validation(kao_run *r) {
    int *count = kao_calloc((size_t)r->ds.num_classes, sizeof *count, "validation counts");
    int identities = 0, pairs = 0;
    for (int i = 0; i < r->split.num_val; i++) {
        int c = r->labels[r->split.val[i]];
        identities += count[c] == 0;
        pairs += count[c]++ == 1;
    }
    free(count);
    r->can_verify = identities >= 2 && pairs > 0;
    if (r->can_verify) return KAO_OK;
    const char *why = identities < 2 ? "fewer than two identities" : "no identity with two images";
    if (r->cfg.early_stop.metric != KAO_METRIC_VAL_LOSS)
        return kao_fail("early_stop.metric = %s needs verification pairs, but the validation set has %s; raise "
                        "data.val_fraction or data.val_count", kao_watch_name((kao_watch)r->cfg.early_stop.metric), why);
    kao_say(r, "warning: the validation set has %s: verification metrics (AUC, EER, ...) are not computed; raise "
               "data.val_fraction or data.val_count for them", why);
    return KAO_OK;
}

static int create_model(kao_run *r) {
    const kao_config *c = &r->cfg;
    kao_arch arch;
    if (kao_arch_build(&arch, c->model.name, c->model.width_mult, c->model.depth_mult, c->model.embedding_dim,
                       (float)c->train.drop_path_rate))
        return KAO_ERR;
    kao_model_create(&r->model, &arch);
    r->has_model = true;
    kao_model_init(&r->model, (uint64_t)c->train.seed);

    int kind = c->train.sampler == KAO_SAMPLER_M_PER_CLASS ? KAO_SAMPLE_M_PER_CLASS : KAO_SAMPLE_SHUFFLE;
    if (kao_sampler_create(&r->sampler, (kao_sampler_type)kind, r->split.train, r->split.num_train, r->labels,
                           c->train.batch_size, c->train.m_per_class, (uint64_t)c->train.seed))
        return KAO_ERR;
    kao_trainer_cfg tc;
    trainer_cfg(&tc, c, r->sampler.num_batches);
    if (c->train.schedule != KAO_SCHEDULE_COSINE && c->train.warmup_epochs > 0)
        kao_say(r, "note: train.warmup_epochs applies to the cosine schedule only; the %s schedule starts at full rate",
                c->train.schedule == KAO_SCHEDULE_STEP ? "step" : "constant");
    int size = c->model.input_size;
    if (kao_acts_check_memory(&r->model, r->backend, c->train.batch_size, size, size, true,
                              "lower train.batch_size or model.input_size"))
        return KAO_ERR;
    if (kao_trainer_create(&r->trainer, &r->model, r->backend, r->ds.num_classes, &tc, c->train.batch_size, size, size))
        return KAO_ERR;
    r->has_trainer = true;
    kao_say(r, "device: %s, precision: %s", r->backend->description,
            kao_precision_name((kao_precision)c->train.precision));
    kao_say(r, "input: %dx%d, normalisation mean %s, std %s", size, size, c->model.input_mean, c->model.input_std);
    /* auto: on the CPU the cores compute and two workers keep up (about 700 images/s each at
     * 224x224); a GPU consumes far more, and its host only decodes and launches kernels. */
    r->workers = c->train.workers != KAO_CONFIG_AUTO ? c->train.workers
                 : r->backend->host_memory          ? 2
                                                    : kao_loader_device_workers();
    kao_image_options image = {.max_pixels = c->data.max_image_pixels, .exif_transpose = c->data.exif_transpose};
    r->loader = kao_loader_create(&r->ds, r->workers, r->workers + 2, c->train.batch_size, size, size, &r->norm,
                                  &image, r->backend);
    kao_early_stop_init(&r->early_stop, (kao_watch)c->early_stop.metric, c->early_stop.patience,
                        c->early_stop.min_delta);
    return check_validation(r);
}

/* model.input_mean / input_std = auto: what the start weights record (a foreign file's importer
 * records its source's own normalisation), else ImageNet's; the numbers go into the run's config. */
static int resolve_normalisation(kao_run *r) {
    kao_config *c = &r->cfg;
    if (strcmp(c->model.input_mean, "auto") != 0 && strcmp(c->model.input_std, "auto") != 0)
        return kao_config_normalisation(c, r->norm.mean, r->norm.std);
    kao_trained_info info = {0};
    if (c->model.weights[0] && kao_trained_info_read(c->model.weights, &info)) return KAO_ERR;
    float mean[3], std[3];
    kao_trained_info_normalisation(&info, mean, std);
    kao_config_resolve_normalisation(c, mean, std);
    return kao_config_normalisation(c, r->norm.mean, r->norm.std);
}

/* ---- the whole setup --------------------------------------------------------------------------- */

static int setup_new(kao_run *r) {
    if (r->cfg.model.weights[0] && !kao_file_exists(r->cfg.model.weights))
        return kao_fail("%s: No such file (model.weights / --init)", r->cfg.model.weights);
    if (r->cfg.model.weights[0] && kao_guard_start_file(r->cfg.model.weights)) return KAO_ERR;
    if (kao_run_folder_new(r)) return KAO_ERR;
    /* A folder whose run saved a checkpoint is taken; one left by a run that failed before its
     * first checkpoint (bad data, say) is reused. */
    ckpt_file *files;
    int count;
    if (list_checkpoints(r, &files, &count, false)) return KAO_ERR;
    free_checkpoints(files, count);
    if (count)
        return kao_fail("%s: already holds a run; continue it with --resume %s, or choose another --out", r->dir,
                        r->dir);
    char *stale = kao_run_path(r, "metrics.csv");
    unlink(stale);
    free(stale);
    make_absolute(r->cfg.data.root, sizeof r->cfg.data.root);
    make_absolute(r->cfg.model.weights, sizeof r->cfg.model.weights);
    if ((r->cfg.model.weights[0] && resolve_architecture(r)) || resolve_normalisation(r)) return KAO_ERR;
    r->config_text = kao_config_dump(&r->cfg);
    r->config_hash = kao_config_hash(&r->cfg);
    if (kao_output_open(r, false, 0, 0)) return KAO_ERR;
    kao_say(r, "run folder: %s", r->dir);
    char *path = kao_run_path(r, "config.ini");
    int rc = kao_config_write(&r->cfg, path);
    free(path);
    if (rc || load_data(r, NULL) || create_model(r)) return KAO_ERR;
    if (r->cfg.model.weights[0]) return load_start_weights(r, r->cfg.model.weights);
    kao_say(r, "weights: random initialisation (seed %d)", r->cfg.train.seed);
    return KAO_OK;
}

/* The newest checkpoint that reads back. */
static int pick_checkpoint(kao_run *r, kao_checkpoint_info *info, char **path) {
    ckpt_file *files;
    int count;
    if (list_checkpoints(r, &files, &count, true)) return KAO_ERR;
    int rc = KAO_ERR;
    for (int i = 0; i < count && rc; i++) {
        if (kao_checkpoint_read_info(info, files[i].path) == KAO_OK) {
            *path = kao_strdup(files[i].path);
            rc = KAO_OK;
        } else {
            fprintf(stderr, "warning: skipping %s: %s\n", files[i].path, kao_last_error());
        }
    }
    if (rc) kao_fail("%s/checkpoints: no usable checkpoint to resume from%s", r->dir,
                     count ? " (all failed to read)" : " (the run saved none yet: start it again without --resume)");
    free_checkpoints(files, count);
    return rc;
}

static int setup_resume(kao_run *r) {
    if (kao_run_folder_resume(r)) return KAO_ERR;
    kao_checkpoint_info info;
    char *path = NULL;
    if (pick_checkpoint(r, &info, &path)) return KAO_ERR;
    int rc = resolve_normalisation(r);
    if (rc) goto done;
    r->config_text = kao_config_dump(&r->cfg);
    r->config_hash = kao_config_hash(&r->cfg);
    if (r->config_hash != info.config_hash) {
        char change[1500];
        describe_config_change(change, sizeof change, info.config_text, r->config_text);
        if (!r->args.allow_changed) {
            rc = kao_fail("%s: the config differs from the run's (%s); resume refused (resume with the run's own "
                          "config, or add --allow-changed)", r->dir, change[0] ? change : "hashed keys differ");
            goto done;
        }
        fprintf(stderr, "warning: --allow-changed: resuming with a changed config: %s\n", change);
    }
    if ((rc = kao_output_open(r, true, info.step, info.epoch)) != KAO_OK) goto done;
    kao_say(r, "resuming %s from %s (epoch %d, batch %d, step %" PRId64 ")", r->dir, path, info.epoch + 1,
            info.batch_in_epoch, info.step);
    if ((rc = load_data(r, &info)) != KAO_OK || (rc = create_model(r)) != KAO_OK) goto done;
    if (info.batch_in_epoch > r->sampler.num_batches) {
        rc = kao_fail("%s: the checkpoint is at batch %d of an epoch of %d batches", path, info.batch_in_epoch,
                      r->sampler.num_batches);
        goto done;
    }
    if ((rc = kao_checkpoint_restore(&r->trainer, path)) != KAO_OK || (rc = kao_guard_resumed(r, path)) != KAO_OK)
        goto done;
    if (r->config_hash != info.config_hash || r->split.hash != info.split_hash) {
        /* From now on the run is the changed one. */
        char *config_path = kao_run_path(r, "config.ini");
        rc = kao_config_write(&r->cfg, config_path);
        free(config_path);
    }
    r->epoch = info.epoch;
    r->batch_in_epoch = info.batch_in_epoch;
    r->early_stop = info.early_stop;
    r->early_stop.patience = r->cfg.early_stop.patience;
    r->early_stop.min_delta = r->cfg.early_stop.min_delta;
    r->epoch_loss_sum = info.epoch_loss_sum;
    r->epoch_correct = info.epoch_correct;
    r->epoch_images = info.epoch_images;
done:
    free(path);
    kao_checkpoint_info_free(&info);
    return rc;
}

int kao_run_setup(kao_run *r, const kao_train_args *args) {
    memset(r, 0, sizeof *r);
    r->args = *args;
    r->cfg = args->config;
    r->dir = kao_strdup(args->run_dir);
    for (size_t n = strlen(r->dir); n > 1 && r->dir[n - 1] == '/'; n--) r->dir[n - 1] = '\0';
    if (kao_config_validate(&r->cfg)) return KAO_ERR;
    if (r->cfg.train.schedule == KAO_SCHEDULE_COSINE && r->cfg.train.warmup_epochs >= r->cfg.train.epochs)
        return kao_fail("config: train.warmup_epochs (%d) must be smaller than train.epochs (%d) with the cosine "
                        "schedule", r->cfg.train.warmup_epochs, r->cfg.train.epochs);
    /* train.device and train.precision are not hashed: a run may resume on another device
     * (its results then differ by rounding). */
    if (kao_backend_open(&r->backend, r->cfg.train.device) ||
        r->backend->set_precision(r->backend, (kao_precision)r->cfg.train.precision))
        return kao_fail_context("config: train.device = %s, train.precision = %s: ", r->cfg.train.device,
                                kao_precision_name((kao_precision)r->cfg.train.precision));
    int rc = args->resume ? setup_resume(r) : setup_new(r);
    /* Resumed state, start weights and carried-over identities are in the host copies. */
    if (rc == KAO_OK) kao_trainer_to_backend(&r->trainer);
    return rc;
}

void kao_run_free(kao_run *r) {
    if (r->owns_dir && !r->started) kao_run_folder_remove_failed_start(r);
    free(r->made_dir);
    kao_loader_free(r->loader);
    if (r->has_trainer) kao_trainer_free(&r->trainer);
    if (r->has_model) kao_model_free(&r->model);
    kao_backend_free(r->backend);
    kao_sampler_free(&r->sampler);
    kao_split_free(&r->split);
    kao_dataset_free(&r->ds);
    free(r->labels);
    free(r->classes);
    free(r->config_text);
    free(r->dir);
    kao_output_close(&r->out);
    memset(r, 0, sizeof *r);
}
