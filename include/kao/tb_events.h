/* tb_events.h — TensorBoard event files with scalar summaries, written without TensorFlow.
 *
 * An event file ("events.out.tfevents.<seconds>.<host>.<pid>.kao") is a sequence of TFRecords:
 *     uint64 length (little-endian), uint32 masked CRC-32C of those 8 bytes,
 *     length bytes of data, uint32 masked CRC-32C of the data,
 * masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8. Each data block is a serialised
 * tensorflow.Event protocol buffer; kao writes three kinds:
 *     Event{wall_time (1, double), file_version (3, string) = "brain.Event:2"}    the first record
 *     Event{wall_time, step (2, int64), summary (5) = Summary{value (1) = Value{tag (1, string),
 *           simple_value (2, float)}}}                                          one scalar
 *     Event{wall_time, step, session_log (6) = SessionLog{status (1) = START}}  written on a resume:
 *           TensorBoard then drops the earlier files' events at steps past it (the steps trained
 *           after the checkpoint, before the interruption, which the resumed run repeats)
 * Records are flushed by kao_tb_flush (the caller does so at checkpoints and epoch ends).
 */
#ifndef KAO_TB_EVENTS_H
#define KAO_TB_EVENTS_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *f;
} kao_tb_writer;

/* Creates a new event file in dir (which must exist). */
int kao_tb_open(kao_tb_writer *w, const char *dir);
void kao_tb_scalar(kao_tb_writer *w, const char *tag, int64_t step, float value);
void kao_tb_session_start(kao_tb_writer *w, int64_t step);
void kao_tb_flush(kao_tb_writer *w);
void kao_tb_close(kao_tb_writer *w);

/* CRC-32C (Castagnoli), as TFRecord uses; exposed for tests. */
uint32_t kao_crc32c(const void *data, size_t n);

#endif
