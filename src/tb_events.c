/* tb_events.c — TFRecord framing and the few Event messages kao writes (tb_events.h). Protocol
 * buffers are encoded by hand: field key = (number << 3) | wire type; varints for integers,
 * fixed 64/32 bits for double/float, length-delimited strings and sub-messages. */
#include "kao/tb_events.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kao/files.h"
#include "kao/util.h"

uint32_t kao_crc32c(const void *data, size_t n) {
    static uint32_t table[256];
    static int ready;
    if (!ready) { /* benign race: every thread computes the same table */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const uint8_t *p = data;
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

typedef struct {
    uint8_t buf[512];
    size_t n;
} pb;

static void put_byte(pb *b, uint8_t v) {
    KAO_ASSERT(b->n < sizeof b->buf, "event too large");
    b->buf[b->n++] = v;
}

static void put_varint(pb *b, uint64_t v) {
    while (v >= 0x80) {
        put_byte(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_byte(b, (uint8_t)v);
}

static void put_fixed(pb *b, const void *v, int bytes) { /* little-endian host */
    for (int i = 0; i < bytes; i++) put_byte(b, ((const uint8_t *)v)[i]);
}

static void put_bytes(pb *b, int field, const void *data, size_t n) {
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, n);
    for (size_t i = 0; i < n; i++) put_byte(b, ((const uint8_t *)data)[i]);
}

/* Event header fields: wall_time (1) and, when step >= 0, step (2). */
static void event_head(pb *b, int64_t step) {
    double now = (double)time(NULL);
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0) now = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
    put_varint(b, 1 << 3 | 1);
    put_fixed(b, &now, 8);
    if (step >= 0) {
        put_varint(b, 2 << 3 | 0);
        put_varint(b, (uint64_t)step);
    }
}

static void write_record(kao_tb_writer *w, const pb *b) {
    if (!w->f) return;
    uint64_t len = b->n;
    uint32_t len_crc = masked(kao_crc32c(&len, 8)), data_crc = masked(kao_crc32c(b->buf, b->n));
    fwrite(&len, 8, 1, w->f);
    fwrite(&len_crc, 4, 1, w->f);
    fwrite(b->buf, 1, b->n, w->f);
    fwrite(&data_crc, 4, 1, w->f);
}

int kao_tb_open(kao_tb_writer *w, const char *dir) {
    char host[128] = "localhost", path[4300];
    gethostname(host, sizeof host - 1);
    snprintf(path, sizeof path, "%s/events.out.tfevents.%ld.%s.%ld.kao", dir, (long)time(NULL), host, (long)getpid());
    w->f = kao_fopen_write(path, false);
    if (!w->f) return kao_fail_context("TensorBoard event file: ");
    pb b = {.n = 0};
    event_head(&b, -1);
    put_bytes(&b, 3, "brain.Event:2", strlen("brain.Event:2"));
    write_record(w, &b);
    return KAO_OK;
}

void kao_tb_scalar(kao_tb_writer *w, const char *tag, int64_t step, float value) {
    pb value_msg = {.n = 0}, summary = {.n = 0}, event = {.n = 0};
    put_bytes(&value_msg, 1, tag, strlen(tag));
    put_varint(&value_msg, 2 << 3 | 5);
    put_fixed(&value_msg, &value, 4);
    put_bytes(&summary, 1, value_msg.buf, value_msg.n);
    event_head(&event, step);
    put_bytes(&event, 5, summary.buf, summary.n);
    write_record(w, &event);
}

void kao_tb_session_start(kao_tb_writer *w, int64_t step) {
    pb log = {.n = 0}, event = {.n = 0};
    put_varint(&log, 1 << 3 | 0);
    put_varint(&log, 1); /* SessionLog.START */
    event_head(&event, step);
    put_bytes(&event, 6, log.buf, log.n);
    write_record(w, &event);
}

void kao_tb_flush(kao_tb_writer *w) {
    if (w->f) fflush(w->f);
}

void kao_tb_close(kao_tb_writer *w) {
    if (w->f) fclose(w->f);
    w->f = NULL;
}
