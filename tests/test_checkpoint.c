/* Checkpoints (checkpoint.h): after two training steps a checkpoint is saved and restored into a
 * freshly created trainer; every array must come back bit for bit, and one more step on both
 * trainers must give bit-identical parameters (so nothing a step reads is missing). Also the info
 * round trip, the optimizer-type check, the ArcFace helpers, and a truncated file. Single-threaded
 * (bitwise comparisons of two computations). */
#include "check.h"
#include "kao/checkpoint.h"
#include "kao/util.h"
#include "kao/weights.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { E = 16, C = 5, B = 6, S = 32 };

static kao_backend *cpu;

static void make_trainer(kao_trainer *t, kao_model *m, kao_optim_type type) {
    kao_arch a;
    KAO_ASSERT(kao_arch_build(&a, "tf_efficientnetv2_b0", 0.25, 0.25, E, 0.2f) == KAO_OK, "arch");
    kao_model_create(m, &a);
    kao_model_init(m, 3);
    kao_trainer_cfg c = {0};
    c.model_optim = kao_optim_default_cfg(type, 1e-3);
    if (type == KAO_OPTIM_SGD) c.model_optim.momentum = 0.9;
    c.model_optim.num_groups = 2;
    c.model_optim.groups[1] = c.model_optim.groups[0];
    c.model_optim.groups[1].lr = 1e-2;
    c.arcface_optim = kao_optim_default_cfg(type, 1e-2);
    if (type == KAO_OPTIM_SGD) c.arcface_optim.momentum = 0.9;
    c.arcface = kao_arcface_default_cfg();
    c.schedule = (kao_schedule){.type = KAO_SCHEDULE_COSINE, .warmup_steps = 2, .warmup_start_factor = 0.5,
                                .total_steps = 10, .min_factor = 0};
    c.grad_clip = 5.0;
    c.seed = 11;
    KAO_ASSERT(kao_trainer_create(t, m, cpu, C, &c, B, S, S) == KAO_OK, "%s", kao_last_error());
}

static void free_trainer(kao_trainer *t, kao_model *m) {
    kao_trainer_free(t);
    kao_model_free(m);
}

static bool same(const void *a, const void *b, size_t bytes) { return memcmp(a, b, bytes) == 0; }

static void compare_trainers(const kao_trainer *a, const kao_trainer *b, const char *when) {
    const kao_model *ma = a->model, *mb = b->model;
    CHECK(same(ma->params, mb->params, ma->num_params * sizeof(float)), "%s: parameters differ", when);
    CHECK(same(ma->buffers, mb->buffers, ma->num_buffers * sizeof(float)), "%s: BN statistics differ", when);
    CHECK(same(ma->bn_batches_tracked, mb->bn_batches_tracked, (size_t)ma->num_bn * sizeof(int64_t)), "%s: BN counters", when);
    CHECK(same(a->arcface_W, b->arcface_W, (size_t)E * C * sizeof(float)), "%s: ArcFace W differs", when);
    CHECK(a->step == b->step, "%s: step %lld vs %lld", when, (long long)a->step, (long long)b->step);
    CHECK(same(&a->rng, &b->rng, sizeof a->rng), "%s: generator state differs", when);
    const kao_optim *oa[2] = {&a->optim, &a->arcface_optim}, *ob[2] = {&b->optim, &b->arcface_optim};
    for (int i = 0; i < 2; i++) {
        CHECK(kao_optim_num_states(oa[i]) == kao_optim_num_states(ob[i]), "%s: state count", when);
        for (int k = 0; k < kao_optim_num_states(oa[i]); k++)
            CHECK(same(kao_optim_state(oa[i], k), kao_optim_state(ob[i], k), oa[i]->numel * sizeof(float)),
                  "%s: optimizer %d state %s differs", when, i, kao_optim_state_name(oa[i], k));
        CHECK(same(oa[i]->steps, ob[i]->steps, (size_t)oa[i]->num_tensors * sizeof(int64_t)), "%s: optimizer %d steps",
              when, i);
    }
}

static char *class_names[C] = {"s1", "山田太郎", "s3", "佐藤花子", "s5"};

static void round_trip(kao_optim_type type, const char *path) {
    kao_model m1, m2;
    kao_trainer t1, t2;
    make_trainer(&t1, &m1, type);
    size_t n = (size_t)B * S * S * 3;
    float *x = malloc(n * sizeof(float));
    int labels[B] = {0, 1, 2, 3, 4, 0};
    kao_rng rng;
    kao_rng_seed(&rng, 5, 0);
    for (int step = 0; step < 2; step++) {
        for (size_t i = 0; i < n; i++) x[i] = kao_rng_normal(&rng);
        kao_trainer_step(&t1, NULL, x, labels, B);
    }
    kao_checkpoint_info info = {.step = t1.step, .epoch = 3, .batch_in_epoch = 7, .config_hash = 0xfedcba9876543210ull,
                                .split_hash = 0x0123456789abcdefull, .epoch_loss_sum = 12.5, .epoch_correct = 4,
                                .epoch_images = 14, .config_text = "[train]\nlr = 0.001\n", .classes = class_names,
                                .num_classes = C};
    kao_early_stop_init(&info.early_stop, KAO_WATCH_EER, 3, 0.01);
    info.early_stop.best = 0.125;
    info.early_stop.best_epoch = 2;
    info.early_stop.bad_epochs = 1;
    CHECK(kao_checkpoint_save(path, &t1, &info) == KAO_OK, "save: %s", kao_last_error());

    kao_checkpoint_info got;
    CHECK(kao_checkpoint_read_info(&got, path) == KAO_OK, "read info: %s", kao_last_error());
    CHECK(got.step == 2 && got.epoch == 3 && got.batch_in_epoch == 7, "position %lld %d %d", (long long)got.step,
          got.epoch, got.batch_in_epoch);
    CHECK(got.config_hash == info.config_hash && got.split_hash == info.split_hash, "hashes");
    CHECK(got.early_stop.metric == KAO_WATCH_EER && got.early_stop.best == 0.125 && got.early_stop.best_epoch == 2 &&
              got.early_stop.bad_epochs == 1, "early stopping state");
    CHECK(got.epoch_loss_sum == 12.5 && got.epoch_correct == 4 && got.epoch_images == 14, "epoch sums");
    CHECK(got.config_text && !strcmp(got.config_text, info.config_text), "config text");
    CHECK(got.num_classes == C, "%d classes", got.num_classes);
    for (int c = 0; c < C && got.num_classes == C; c++) CHECK(!strcmp(got.classes[c], class_names[c]), "class %d", c);
    kao_checkpoint_info_free(&got);

    make_trainer(&t2, &m2, type);
    CHECK(kao_checkpoint_restore(&t2, path) == KAO_OK, "restore: %s", kao_last_error());
    compare_trainers(&t1, &t2, "restored");
    for (size_t i = 0; i < n; i++) x[i] = kao_rng_normal(&rng);
    kao_trainer_step(&t1, NULL, x, labels, B);
    kao_trainer_step(&t2, NULL, x, labels, B);
    compare_trainers(&t1, &t2, "one step after the restore");

    /* The ArcFace group as read for carrying identities over. */
    kao_h5_file f;
    CHECK(kao_h5_open(&f, path) == KAO_OK, "open");
    float *W;
    char **names;
    int e, c;
    CHECK(kao_checkpoint_read_arcface(&f, &W, &e, &names, &c) == KAO_OK && e == E && c == C, "read arcface");
    kao_h5_close(&f);
    free(W);
    kao_h5_free_names(names, c);

    free(x);
    free_trainer(&t1, &m1);
    free_trainer(&t2, &m2);
}

static bool error_has(const char *part) {
    bool ok = strstr(kao_last_error(), part) != NULL;
    if (!ok) fprintf(stderr, "  error was: %s\n  expected: %s\n", kao_last_error(), part);
    return ok;
}

static void check_errors(const char *adamw_path, const char *dir) {
    /* An SGD run cannot take an AdamW checkpoint. */
    kao_model m;
    kao_trainer t;
    make_trainer(&t, &m, KAO_OPTIM_SGD);
    CHECK(kao_checkpoint_restore(&t, adamw_path) == KAO_ERR && error_has("adamw"), "optimizer type mismatch");
    free_trainer(&t, &m);

    /* A truncated file (a copy cut in half): read_info fails naming it. */
    char cut[512];
    snprintf(cut, sizeof cut, "%s/cut.h5", dir);
    FILE *in = fopen(adamw_path, "rb"), *out = fopen(cut, "wb");
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *buf = malloc((size_t)size);
    CHECK(fread(buf, 1, (size_t)size, in) == (size_t)size, "read copy");
    fwrite(buf, 1, (size_t)size / 2, out);
    fclose(in);
    fclose(out);
    free(buf);
    kao_checkpoint_info info;
    CHECK(kao_checkpoint_read_info(&info, cut) == KAO_ERR && error_has("cut.h5"), "truncated checkpoint accepted");

    /* A weights file is not a checkpoint. */
    kao_arch a;
    kao_arch_build(&a, "tf_efficientnetv2_b0", 0.25, 0.25, E, 0);
    kao_model_create(&m, &a);
    char weights[512];
    snprintf(weights, sizeof weights, "%s/w.h5", dir);
    CHECK(kao_weights_save(&m, weights) == KAO_OK, "save weights");
    CHECK(kao_checkpoint_read_info(&info, weights) == KAO_ERR && error_has("w.h5"), "weights accepted as checkpoint");
    kao_model_free(&m);
    unlink(cut);
    unlink(weights);
}

int main(void) {
    omp_set_num_threads(1);
    cpu = kao_backend_cpu();
    char dir[] = "/tmp/kao_test_checkpoint_XXXXXX";
    KAO_ASSERT(mkdtemp(dir), "mkdtemp");
    char adamw[512], sgd[512];
    snprintf(adamw, sizeof adamw, "%s/adamw.h5", dir);
    snprintf(sgd, sizeof sgd, "%s/sgd.h5", dir);
    round_trip(KAO_OPTIM_ADAMW, adamw);
    round_trip(KAO_OPTIM_SGD, sgd);
    check_errors(adamw, dir);
    unlink(adamw);
    unlink(sgd);
    rmdir(dir);
    kao_backend_free(cpu);
    return check_summary("test_checkpoint");
}
