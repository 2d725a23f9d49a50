#include "kao/train_step.h"

#include <stdlib.h>
#include <string.h>

#include "kao/util.h"

static void assign_groups(int *group, const kao_model *m, const kao_trainer_cfg *cfg, int frozen_units) {
    kao_train_options o = cfg->options;
    o.frozen_units = frozen_units;
    for (int i = 0; i < m->num_tensors; i++) {
        const kao_tensor *t = &m->tensors[i];
        if (t->role != KAO_ROLE_PARAM || kao_tensor_frozen(t, &o)) group[i] = -1;
        else group[i] = t->is_head && cfg->model_optim.num_groups > 1 ? KAO_GROUP_HEAD : KAO_GROUP_BACKBONE;
    }
}

static void plan_batch(kao_trainer *t, int B) {
    if (t->batch == B) return;
    if (t->batch) {
        kao_acts_free(&t->acts);
        free(t->d_embedding);
    }
    kao_acts_create(&t->acts, t->model, B, t->height, t->width, true);
    t->d_embedding = kao_aligned_alloc((size_t)B * t->model->arch.embedding_dim * sizeof(float), "d_embedding");
    t->batch = B;
}

int kao_trainer_create(kao_trainer *t, kao_model *m, int num_classes, const kao_trainer_cfg *cfg,
                       int batch, int height, int width) {
    memset(t, 0, sizeof *t);
    if (kao_optim_cfg_check(&cfg->model_optim) || kao_optim_cfg_check(&cfg->arcface_optim) ||
        kao_schedule_check(&cfg->schedule))
        return KAO_ERR;
    if (cfg->arcface_optim.num_groups != 1) return kao_fail("the ArcFace optimizer has one group, got %d", cfg->arcface_optim.num_groups);
    t->cfg = *cfg;
    t->model = m;
    t->num_classes = num_classes;
    int E = m->arch.embedding_dim;
    t->grads = kao_aligned_alloc(m->num_params * sizeof(float), "gradients");
    t->arcface_W = kao_aligned_alloc((size_t)E * num_classes * sizeof(float), "ArcFace W");
    t->arcface_dW = kao_aligned_alloc((size_t)E * num_classes * sizeof(float), "ArcFace dW");
    kao_rng init_rng;
    kao_rng_seed(&init_rng, cfg->seed, 0xA5CF);
    kao_arcface_init_weight(t->arcface_W, E, num_classes, &init_rng);
    kao_arcface_weight_tensor(&t->arcface_tensor, E, num_classes);

    int *group = kao_malloc((size_t)m->num_tensors * sizeof(int), "optimizer groups");
    assign_groups(group, m, cfg, cfg->options.frozen_units);
    int rc = kao_optim_create(&t->optim, &cfg->model_optim, m->tensors, m->num_tensors, m->num_params, group);
    free(group);
    int arcface_group = 0;
    if (rc == KAO_OK)
        rc = kao_optim_create(&t->arcface_optim, &cfg->arcface_optim, &t->arcface_tensor, 1,
                              (size_t)E * num_classes, &arcface_group);
    if (rc) {
        kao_trainer_free(t);
        return KAO_ERR;
    }
    kao_rng_seed(&t->rng, cfg->seed, 0xD509);
    t->height = height;
    t->width = width;
    plan_batch(t, batch);
    kao_arcface_acts_create(&t->arcface_acts, batch, E, num_classes);
    return KAO_OK;
}

void kao_trainer_free(kao_trainer *t) {
    free(t->grads);
    free(t->arcface_W);
    free(t->arcface_dW);
    kao_optim_free(&t->optim);
    kao_optim_free(&t->arcface_optim);
    if (t->batch) {
        kao_acts_free(&t->acts);
        free(t->d_embedding);
        kao_arcface_acts_free(&t->arcface_acts);
    }
    kao_grad_scratch_free(&t->scratch);
    kao_workspace_free(&t->ws);
    memset(t, 0, sizeof *t);
}

void kao_trainer_set_frozen(kao_trainer *t, int frozen_units) {
    t->cfg.options.frozen_units = frozen_units;
    assign_groups(t->optim.group, t->model, &t->cfg, frozen_units);
}

float kao_trainer_gradients(kao_trainer *t, float *d_input, const float *input, const int *labels, int B,
                            kao_step_stats *stats) {
    KAO_ASSERT(B >= 1 && B <= t->arcface_acts.max_batch, "batch %d exceeds the planned %d", B, t->arcface_acts.max_batch);
    kao_model *m = t->model;
    int E = m->arch.embedding_dim, C = t->num_classes;
    plan_batch(t, B);
    memset(t->grads, 0, m->num_params * sizeof(float));
    memset(t->arcface_dW, 0, (size_t)E * C * sizeof(float));

    double t0 = kao_now_seconds();
    kao_forward_train(m, &t->acts, input, &t->cfg.options, &t->rng, &t->ws);
    double t1 = kao_now_seconds();
    float loss = kao_arcface_forward(&t->arcface_acts, t->acts.embedding, t->arcface_W, labels, B, E, C, &t->cfg.arcface);
    kao_arcface_backward(t->d_embedding, t->arcface_dW, &t->arcface_acts, labels, B, E, C, &t->cfg.arcface);
    double t2 = kao_now_seconds();
    kao_backward(m, t->grads, d_input, &t->acts, t->d_embedding, &t->cfg.options, &t->scratch, &t->ws);
    double t3 = kao_now_seconds();
    if (stats) {
        stats->loss = loss;
        stats->correct = kao_arcface_correct(t->arcface_acts.cosine, labels, B, C);
        stats->seconds_forward = t1 - t0;
        stats->seconds_loss = t2 - t1;
        stats->seconds_backward = t3 - t2;
    }
    return loss;
}

void kao_trainer_step(kao_trainer *t, kao_step_stats *stats, const float *input, const int *labels, int B) {
    kao_step_stats local;
    if (!stats) stats = &local;
    kao_trainer_gradients(t, NULL, input, labels, B, stats);
    double t0 = kao_now_seconds();
    stats->grad_norm = 0;
    if (t->cfg.grad_clip > 0) {
        kao_span *spans = kao_malloc((size_t)t->optim.num_tensors * sizeof *spans, "gradient spans");
        int n = kao_optim_grad_spans(spans, &t->optim, t->grads);
        stats->grad_norm = kao_clip_grad_norm(spans, n, (float)t->cfg.grad_clip);
        free(spans);
    }
    stats->lr_factor = kao_schedule_factor(&t->cfg.schedule, t->step);
    kao_optim_step(&t->optim, t->model->params, t->grads, stats->lr_factor);
    kao_optim_step(&t->arcface_optim, t->arcface_W, t->arcface_dW, stats->lr_factor);
    t->step++;
    stats->seconds_update = kao_now_seconds() - t0;
}
