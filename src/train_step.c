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

static void release_batch(kao_trainer *t) {
    kao_backend *be = t->backend;
    if (!t->batch) return;
    kao_acts_free(&t->acts);
    be->release(be, t->d_embedding);
    if (t->input) be->release(be, t->input);
    t->input = NULL;
    t->batch = 0;
}

static void plan_batch(kao_trainer *t, int B) {
    kao_backend *be = t->backend;
    if (t->batch == B) return;
    kao_profile *profile = t->acts.profile;
    release_batch(t);
    kao_acts_create(&t->acts, t->model, B, t->height, t->width, true, be);
    t->acts.profile = profile;
    t->d_embedding = be->alloc(be, (size_t)B * t->model->arch.embedding_dim * sizeof(float), "d_embedding");
    if (!be->host_memory)
        t->input = be->alloc(be, (size_t)B * t->height * t->width * 3 * sizeof(float), "input batch");
    t->batch = B;
}

int kao_trainer_create(kao_trainer *t, kao_model *m, kao_backend *be, int num_classes, const kao_trainer_cfg *cfg,
                       int batch, int height, int width) {
    memset(t, 0, sizeof *t);
    if (kao_optim_cfg_check(&cfg->model_optim) || kao_optim_cfg_check(&cfg->arcface_optim) ||
        kao_schedule_check(&cfg->schedule))
        return KAO_ERR;
    if (cfg->arcface_optim.num_groups != 1) return kao_fail("the ArcFace optimizer has one group, got %d", cfg->arcface_optim.num_groups);
    t->cfg = *cfg;
    t->model = m;
    t->backend = be;
    t->num_classes = num_classes;
    int E = m->arch.embedding_dim;
    size_t W_bytes = (size_t)E * num_classes * sizeof(float);
    t->arcface_W = kao_aligned_alloc(W_bytes, "ArcFace W");
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
        kao_optim_free(&t->optim);
        free(t->arcface_W);
        memset(t, 0, sizeof *t);
        return KAO_ERR;
    }
    kao_net_weights_create(&t->weights, m, be);
    t->grads = be->alloc(be, m->num_params * sizeof(float), "gradients");
    t->W = be->host_memory ? t->arcface_W : be->alloc(be, W_bytes, "ArcFace W");
    t->dW = be->alloc(be, W_bytes, "ArcFace dW");
    t->optim_state = be->optim_state_create(be, &t->optim);
    t->arcface_optim_state = be->optim_state_create(be, &t->arcface_optim);
    t->spans = kao_malloc((size_t)t->optim.num_tensors * sizeof *t->spans, "gradient spans");
    kao_rng_seed(&t->rng, cfg->seed, 0xD509);
    t->height = height;
    t->width = width;
    t->max_batch = batch;
    plan_batch(t, batch);
    t->labels = be->alloc(be, (size_t)batch * sizeof(int), "labels");
    t->labels_host = be->host_alloc(be, (size_t)batch * sizeof(int), "labels");
    t->arcface_acts = be->arcface_create(be, batch, E, num_classes);
    /* The weights and the optimizer state were copied over as they were made; W remains. */
    if (t->W != t->arcface_W) be->to_backend(be, t->W, t->arcface_W, W_bytes);
    t->host_current = true;
    return KAO_OK;
}

void kao_trainer_free(kao_trainer *t) {
    kao_backend *be = t->backend;
    if (!be) return;
    release_batch(t);
    be->arcface_free(be, t->arcface_acts);
    be->release(be, t->labels);
    be->host_release(be, t->labels_host);
    kao_grad_scratch_free(&t->scratch);
    be->optim_state_free(be, t->optim_state);
    be->optim_state_free(be, t->arcface_optim_state);
    be->release(be, t->dW);
    if (t->W != t->arcface_W) be->release(be, t->W);
    be->release(be, t->grads);
    kao_net_weights_free(&t->weights);
    kao_optim_free(&t->optim);
    kao_optim_free(&t->arcface_optim);
    free(t->arcface_W);
    free(t->spans);
    memset(t, 0, sizeof *t);
}

void kao_trainer_to_host(kao_trainer *t) {
    kao_backend *be = t->backend;
    if (be->host_memory || t->host_current) return;
    kao_net_weights_download(&t->weights, t->model);
    be->to_host(be, t->arcface_W, t->W, t->arcface_optim.numel * sizeof(float));
    be->optim_state_sync(be, &t->optim, t->optim_state, true);
    be->optim_state_sync(be, &t->arcface_optim, t->arcface_optim_state, true);
    t->host_current = true;
}

void kao_trainer_to_backend(kao_trainer *t) {
    kao_backend *be = t->backend;
    if (be->host_memory) return;
    kao_net_weights_upload(&t->weights, t->model);
    be->to_backend(be, t->W, t->arcface_W, t->arcface_optim.numel * sizeof(float));
    be->optim_state_sync(be, &t->optim, t->optim_state, false);
    be->optim_state_sync(be, &t->arcface_optim, t->arcface_optim_state, false);
    t->host_current = true;
}

void kao_trainer_set_frozen(kao_trainer *t, int frozen_units) {
    t->cfg.options.frozen_units = frozen_units;
    assign_groups(t->optim.group, t->model, &t->cfg, frozen_units);
}

float kao_trainer_gradients(kao_trainer *t, float *d_input, const float *input, const int *labels, int B,
                            kao_step_stats *stats) {
    KAO_ASSERT(B >= 1 && B <= t->max_batch, "batch %d exceeds the planned %d", B, t->max_batch);
    kao_backend *be = t->backend;
    kao_model *m = t->model;
    int E = m->arch.embedding_dim, C = t->num_classes;
    plan_batch(t, B);
    t->host_current = false; /* the BN statistics move now, the weights with the step */
    be->zero(be, t->grads, m->num_params * sizeof(float));
    be->zero(be, t->dW, (size_t)E * C * sizeof(float));
    const float *x = input;
    if (t->input) {
        be->to_backend(be, t->input, input, (size_t)B * t->height * t->width * 3 * sizeof(float));
        x = t->input;
    }
    memcpy(t->labels_host, labels, (size_t)B * sizeof(int));
    be->to_backend(be, t->labels, t->labels_host, (size_t)B * sizeof(int));
    float *dx = NULL;
    if (d_input) dx = be->host_memory ? d_input : be->alloc(be, (size_t)B * t->height * t->width * 3 * sizeof(float), "d_input");

    double t0 = kao_now_seconds();
    kao_forward_train(m, &t->weights, &t->acts, x, &t->cfg.options, &t->rng);
    double t1 = kao_now_seconds();
    float loss = be->arcface_forward(be, t->arcface_acts, t->acts.embedding, t->W, t->labels, B, E, C, &t->cfg.arcface);
    be->arcface_backward(be, t->d_embedding, t->dW, t->arcface_acts, t->labels, B, E, C, &t->cfg.arcface);
    double t2 = kao_now_seconds();
    kao_backward(m, &t->weights, t->grads, dx, &t->acts, t->d_embedding, &t->cfg.options, &t->scratch);
    if (dx != d_input) {
        be->to_host(be, d_input, dx, (size_t)B * t->height * t->width * 3 * sizeof(float));
        be->release(be, dx);
    }
    double t3 = kao_now_seconds();
    if (stats) {
        stats->loss = loss;
        stats->correct = be->arcface_correct(be, t->arcface_acts, t->labels, B, C);
        stats->seconds_forward = t1 - t0;
        stats->seconds_loss = t2 - t1;
        stats->seconds_backward = t3 - t2;
    }
    return loss;
}

void kao_trainer_step(kao_trainer *t, kao_step_stats *stats, const float *input, const int *labels, int B) {
    kao_backend *be = t->backend;
    kao_step_stats local;
    if (!stats) stats = &local;
    kao_trainer_gradients(t, NULL, input, labels, B, stats);
    double t0 = kao_now_seconds();
    stats->grad_norm = 0;
    if (t->cfg.grad_clip > 0) {
        int n = kao_optim_grad_spans(t->spans, &t->optim, t->grads);
        stats->grad_norm = be->clip_grad_norm(be, t->spans, n, (float)t->cfg.grad_clip);
    }
    stats->lr_factor = kao_schedule_factor(&t->cfg.schedule, t->step);
    be->optim_step(be, &t->optim, t->optim_state, t->weights.params, t->grads, stats->lr_factor);
    be->optim_step(be, &t->arcface_optim, t->arcface_optim_state, t->W, t->dW, stats->lr_factor);
    t->step++;
    stats->seconds_update = kao_now_seconds() - t0;
}

float kao_trainer_weight_norm(kao_trainer *t) {
    kao_span all = {t->weights.params, t->model->num_params};
    return t->backend->norm(t->backend, &all, 1);
}
