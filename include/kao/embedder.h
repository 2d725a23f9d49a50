/* embedder.h — embeddings of host batches on any backend: the eval forward pass with the input
 * copied over and the embeddings copied back, re-planned when the batch size changes. Used by
 * kao embed, validation during training and kao bench. */
#ifndef KAO_EMBEDDER_H
#define KAO_EMBEDDER_H

#include "kao/network.h"

typedef struct {
    const kao_model *m;
    const kao_net_weights *w;   /* borrowed; on the backend the embedder runs on */
    int height, width;
    int batch;                  /* the planned batch (0: none yet) */
    kao_acts acts;
    float *input;               /* (batch, H, W, 3) in the backend's memory; unused on the host */
} kao_embedder;

void kao_embedder_init(kao_embedder *e, const kao_model *m, const kao_net_weights *w, int height, int width);
/* out (B, E) host ← the embeddings of input (B, H, W, 3) host, normalised as kao_load_input does. */
void kao_embedder_run(kao_embedder *e, float *out, const float *input, int B);
void kao_embedder_free(kao_embedder *e);

#endif
