/* The model's parameters and BN statistics in a backend's memory. */
#include <string.h>

#include "kao/network.h"

void kao_net_weights_create(kao_net_weights *w, const kao_model *m, kao_backend *be) {
    memset(w, 0, sizeof *w);
    w->backend = be;
    if (be->host_memory) {
        w->params = m->params;
        w->buffers = m->buffers;
        return;
    }
    w->owned = true;
    w->params = be->alloc(be, m->num_params * sizeof(float), "parameters");
    w->buffers = be->alloc(be, m->num_buffers * sizeof(float), "BN statistics");
    kao_net_weights_upload(w, m);
}

void kao_net_weights_free(kao_net_weights *w) {
    if (w->owned) {
        w->backend->release(w->backend, w->params);
        w->backend->release(w->backend, w->buffers);
    }
    memset(w, 0, sizeof *w);
}

float *kao_net_tensor(const kao_net_weights *w, const kao_model *m, int index) {
    const kao_tensor *t = &m->tensors[index];
    return (t->role == KAO_ROLE_PARAM ? w->params : w->buffers) + t->offset;
}

kao_bn_tensors kao_net_bn(const kao_net_weights *w, const kao_model *m, kao_bn_ref bn) {
    return (kao_bn_tensors){kao_net_tensor(w, m, bn.weight), kao_net_tensor(w, m, bn.bias),
                            kao_net_tensor(w, m, bn.mean),   kao_net_tensor(w, m, bn.var),
                            m->arch.bn_eps,                  m->arch.bn_momentum};
}

void kao_net_weights_upload(kao_net_weights *w, const kao_model *m) {
    if (!w->owned) return;
    w->backend->to_backend(w->backend, w->params, m->params, m->num_params * sizeof(float));
    w->backend->to_backend(w->backend, w->buffers, m->buffers, m->num_buffers * sizeof(float));
}

void kao_net_weights_download(const kao_net_weights *w, kao_model *m) {
    if (!w->owned) return;
    w->backend->to_host(w->backend, m->params, w->params, m->num_params * sizeof(float));
    w->backend->to_host(w->backend, m->buffers, w->buffers, m->num_buffers * sizeof(float));
}
