/* Embeddings of host batches on any backend (embedder.h). */
#include <string.h>

#include "kao/embedder.h"

void kao_embedder_init(kao_embedder *e, const kao_model *m, const kao_net_weights *w, int height, int width) {
    memset(e, 0, sizeof *e);
    e->m = m;
    e->w = w;
    e->height = height;
    e->width = width;
}

static void release_plan(kao_embedder *e) {
    kao_backend *be = e->w->backend;
    if (!e->batch) return;
    kao_acts_free(&e->acts);
    if (e->input) be->release(be, e->input);
    e->input = NULL;
    e->batch = 0;
}

void kao_embedder_run(kao_embedder *e, float *out, const float *input, int B) {
    kao_backend *be = e->w->backend;
    size_t input_bytes = (size_t)B * e->height * e->width * 3 * sizeof(float);
    if (e->batch != B) {
        kao_profile *profile = e->acts.profile;
        release_plan(e);
        kao_acts_create(&e->acts, e->m, B, e->height, e->width, false, be);
        e->acts.profile = profile;
        if (!be->host_memory) e->input = be->alloc(be, input_bytes, "input batch");
        e->batch = B;
    }
    const float *x = input;
    if (e->input) {
        be->to_backend(be, e->input, input, input_bytes);
        x = e->input;
    }
    kao_forward_eval(e->m, e->w, &e->acts, x);
    be->to_host(be, out, e->acts.embedding, (size_t)B * e->m->arch.embedding_dim * sizeof(float));
}

void kao_embedder_free(kao_embedder *e) {
    release_plan(e);
    memset(e, 0, sizeof *e);
}
