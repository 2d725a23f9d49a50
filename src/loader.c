/* loader.c — worker threads and a ring of prepared batches (loader.h).
 *
 * Batch b of a pass lives in slot b % depth. Workers claim batches in order, up to depth - 1 beyond
 * the one the caller holds (whose slot stays untouched until the next call releases it); the
 * caller waits for slot_batch[slot] == b. A
 * pass change bumps `generation`: a worker that finishes a batch of an older pass drops it. */
#include "kao/loader.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kao/image.h"
#include "kao/util.h"

typedef struct {
    kao_image img;
    uint8_t *scratch;
    size_t scratch_bytes;
} worker_buffers;

typedef struct {
    kao_loader *L;
    pthread_t thread;
    worker_buffers buf;
} worker;

struct kao_loader {
    const kao_dataset *ds;
    kao_backend *backend;  /* allocates the batches' input memory */
    int height, width, max_batch, depth, num_workers;
    kao_batch *slots;      /* (depth) */
    int *slot_batch;       /* (depth) batch held by each slot, -1: none ready */
    worker *workers;       /* (num_workers) */
    worker_buffers own;    /* the caller's buffers (workers = 0) */

    /* the pass, fixed while it runs */
    int *items;            /* (n) */
    int n, capacity, batch_size, num_batches;
    kao_augment_cfg aug;
    kao_input_norm norm;
    kao_image_options image;
    uint64_t seed;
    int epoch;

    pthread_mutex_t mutex;
    pthread_cond_t changed;
    uint64_t generation;
    int next_claim;        /* next batch a worker takes */
    int next_deliver;      /* next batch kao_loader_next returns */
    int released;          /* batches before this one are done with; the caller may hold this one */
    int in_flight;         /* batches being prepared right now */
    int quit;
};

static void alloc_batch(kao_batch *b, int max_batch, int H, int W, kao_backend *be) {
    memset(b, 0, sizeof *b);
    size_t bytes = (size_t)max_batch * H * W * 3 * sizeof(float);
    b->input = be->host_alloc(be, bytes, "batch input");
    b->labels = kao_malloc((size_t)max_batch * sizeof *b->labels, "batch labels");
    b->items = kao_malloc((size_t)max_batch * sizeof *b->items, "batch items");
    b->failed = kao_malloc((size_t)max_batch * sizeof *b->failed, "batch failures");
    b->failed_message = kao_malloc((size_t)max_batch * sizeof *b->failed_message, "batch failure messages");
}

static void free_batch(kao_batch *b, kao_backend *be) {
    be->host_release(be, b->input);
    free(b->labels);
    free(b->items);
    free(b->failed);
    free(b->failed_message);
}

/* Prepares batch `index` of the current pass into out. Reads only the pass fields, which do not
 * change while any batch is in flight. */
static void fill_batch(kao_loader *L, kao_batch *out, int index, worker_buffers *buf) {
    double t0 = kao_now_seconds();
    int first = index * L->batch_size;
    int n = L->n - first < L->batch_size ? L->n - first : L->batch_size;
    size_t image_floats = (size_t)L->height * L->width * 3;
    out->index = index;
    out->count = 0;
    out->num_failed = 0;
    for (int k = 0; k < n; k++) {
        int item = L->items[first + k];
        const kao_sample *s = &L->ds->images[item];
        if (kao_image_load_rgb(&buf->img, s->path, &L->image) != KAO_OK) {
            out->failed[out->num_failed] = item;
            snprintf(out->failed_message[out->num_failed], KAO_LOADER_MESSAGE, "%s", kao_last_error());
            kao_utf8_trim(out->failed_message[out->num_failed]);
            out->num_failed++;
            continue;
        }
        size_t need = kao_augment_scratch_bytes(&buf->img, L->height, L->width);
        if (need > buf->scratch_bytes) {
            free(buf->scratch);
            buf->scratch = kao_malloc(need, "augmentation scratch");
            buf->scratch_bytes = need;
        }
        kao_rng rng;
        kao_augment_rng(&rng, L->seed, L->epoch, first + k);
        kao_augment_input(out->input + (size_t)out->count * image_floats, &buf->img, L->height, L->width, &L->aug,
                          &L->norm, &rng, buf->scratch);
        kao_image_free(&buf->img);
        out->labels[out->count] = s->label;
        out->items[out->count] = item;
        out->count++;
    }
    out->seconds = kao_now_seconds() - t0;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    kao_loader *L = w->L;
    pthread_mutex_lock(&L->mutex);
    for (;;) {
        if (L->quit) break;
        int b = L->next_claim;
        if (b >= L->num_batches || b >= L->released + L->depth) { /* its slot is not free yet */
            pthread_cond_wait(&L->changed, &L->mutex);
            continue;
        }
        L->next_claim++;
        L->in_flight++;
        uint64_t generation = L->generation;
        int slot = b % L->depth;
        pthread_mutex_unlock(&L->mutex);
        fill_batch(L, &L->slots[slot], b, &w->buf);
        pthread_mutex_lock(&L->mutex);
        L->in_flight--;
        if (generation == L->generation) L->slot_batch[slot] = b;
        pthread_cond_broadcast(&L->changed);
    }
    pthread_mutex_unlock(&L->mutex);
    return NULL;
}

kao_loader *kao_loader_create(const kao_dataset *ds, int workers, int depth, int max_batch, int height, int width,
                              const kao_input_norm *norm, const kao_image_options *image, kao_backend *be) {
    KAO_ASSERT(workers >= 0 && depth >= 1 && max_batch >= 1, "workers %d depth %d batch %d", workers, depth, max_batch);
    kao_loader *L = kao_calloc(1, sizeof *L, "loader");
    L->ds = ds;
    L->backend = be;
    L->height = height;
    L->norm = *norm;
    L->image = *image;
    L->width = width;
    L->max_batch = max_batch;
    L->depth = workers ? depth : 1;
    L->num_workers = workers;
    L->slots = kao_malloc((size_t)L->depth * sizeof *L->slots, "loader slots");
    L->slot_batch = kao_malloc((size_t)L->depth * sizeof *L->slot_batch, "loader slot batches");
    for (int i = 0; i < L->depth; i++) {
        alloc_batch(&L->slots[i], max_batch, height, width, be);
        L->slot_batch[i] = -1;
    }
    pthread_mutex_init(&L->mutex, NULL);
    pthread_cond_init(&L->changed, NULL);
    L->workers = kao_calloc((size_t)workers + 1, sizeof *L->workers, "loader workers");
    for (int i = 0; i < workers; i++) {
        L->workers[i].L = L;
        int rc = pthread_create(&L->workers[i].thread, NULL, worker_main, &L->workers[i]);
        KAO_ASSERT(rc == 0, "pthread_create: error %d", rc);
    }
    return L;
}

void kao_loader_stop(kao_loader *L) {
    pthread_mutex_lock(&L->mutex);
    L->generation++;
    L->num_batches = 0;
    L->next_claim = L->next_deliver = L->released = 0;
    while (L->in_flight > 0) pthread_cond_wait(&L->changed, &L->mutex);
    for (int i = 0; i < L->depth; i++) L->slot_batch[i] = -1;
    pthread_mutex_unlock(&L->mutex);
}

void kao_loader_free(kao_loader *L) {
    if (!L) return;
    kao_loader_stop(L);
    pthread_mutex_lock(&L->mutex);
    L->quit = 1;
    pthread_cond_broadcast(&L->changed);
    pthread_mutex_unlock(&L->mutex);
    for (int i = 0; i < L->num_workers; i++) {
        pthread_join(L->workers[i].thread, NULL);
        free(L->workers[i].buf.scratch);
    }
    free(L->own.scratch);
    for (int i = 0; i < L->depth; i++) free_batch(&L->slots[i], L->backend);
    pthread_mutex_destroy(&L->mutex);
    pthread_cond_destroy(&L->changed);
    free(L->workers);
    free(L->slots);
    free(L->slot_batch);
    free(L->items);
    free(L);
}

void kao_loader_start(kao_loader *L, const int *items, int n, int batch_size, int first_batch,
                      const kao_augment_cfg *aug, uint64_t seed, int epoch) {
    KAO_ASSERT(batch_size >= 1 && batch_size <= L->max_batch, "batch %d of at most %d", batch_size, L->max_batch);
    kao_loader_stop(L);
    pthread_mutex_lock(&L->mutex);
    if (n > L->capacity) {
        free(L->items);
        L->items = kao_malloc((size_t)n * sizeof *L->items, "loader items");
        L->capacity = n;
    }
    if (n) memcpy(L->items, items, (size_t)n * sizeof *items);
    L->n = n;
    L->batch_size = batch_size;
    L->aug = *aug;
    L->seed = seed;
    L->epoch = epoch;
    L->next_claim = L->next_deliver = L->released = first_batch;
    L->num_batches = (n + batch_size - 1) / batch_size;
    pthread_cond_broadcast(&L->changed);
    pthread_mutex_unlock(&L->mutex);
}

const kao_batch *kao_loader_next(kao_loader *L, double *waited) {
    if (waited) *waited = 0;
    if (L->num_workers == 0) {
        int b = L->next_deliver;
        if (b >= L->num_batches) return NULL;
        L->next_deliver++;
        double t0 = kao_now_seconds();
        fill_batch(L, &L->slots[0], b, &L->own);
        if (waited) *waited = kao_now_seconds() - t0;
        return &L->slots[0];
    }
    pthread_mutex_lock(&L->mutex);
    /* The batch handed out last time is done with: free its slot for the workers. */
    if (L->released < L->next_deliver) {
        L->slot_batch[L->released % L->depth] = -1;
        L->released = L->next_deliver;
        pthread_cond_broadcast(&L->changed);
    }
    int b = L->next_deliver;
    if (b >= L->num_batches) {
        pthread_mutex_unlock(&L->mutex);
        return NULL;
    }
    double t0 = kao_now_seconds();
    int slot = b % L->depth;
    while (L->slot_batch[slot] != b) pthread_cond_wait(&L->changed, &L->mutex);
    if (waited) *waited = kao_now_seconds() - t0;
    L->next_deliver = b + 1;
    pthread_mutex_unlock(&L->mutex);
    return &L->slots[slot];
}

int kao_loader_device_workers(void) {
    /* The CPUs this process may run on (a container's or taskset's share), not the machine's. */
    cpu_set_t set;
    long cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
    /* 16 threads decode well over 10,000 images/s; more would only pin more batch buffers. */
    return cores < 3 ? 1 : cores > 17 ? 16 : (int)cores - 1;
}
