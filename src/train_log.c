/* train_log.c — what a kao train run shows and records: messages (stderr + train.log), the
 * progress bar or plain progress lines, and metrics.csv (columns in train_loop.h). */
#include "train_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kao/files.h"

static const char *csv_header =
    "kind,epoch,step,batch,images,loss,accuracy,lr,grad_norm,seconds,wait_seconds,images_per_second,"
    "val_loss,val_accuracy,verify_accuracy,best_threshold,best_balanced_accuracy,auc,eer,eer_threshold,tar_far_1e3,"
    "threshold_far_1e3,improved\n";

/* Whether a metrics.csv row belongs before the checkpoint being resumed. */
static bool keep_row(const char *line, int64_t keep_step, int keep_epochs) {
    char kind[16];
    long long epoch, step;
    if (sscanf(line, "%15[^,],%lld,%lld", kind, &epoch, &step) != 3) return false;
    if (!strcmp(kind, "step")) return step <= keep_step;
    if (!strcmp(kind, "epoch")) return epoch <= keep_epochs;
    return false;
}

/* Rewrites metrics.csv with the rows up to the checkpoint (atomically), then opens it to append. */
static int trim_csv(const char *path, int64_t keep_step, int keep_epochs) {
    if (!kao_file_exists(path)) return KAO_OK; /* none yet */
    FILE *in = kao_fopen_regular(path, "metrics");
    if (!in) return KAO_ERR;
    char temp[4200];
    FILE *out = kao_atomic_fopen(temp, sizeof temp, path);
    if (!out) {
        fclose(in);
        return KAO_ERR;
    }
    fputs(csv_header, out);
    char line[4096];
    bool first = true;
    while (fgets(line, sizeof line, in)) {
        if (first) {
            first = false;
            continue;
        }
        if (keep_row(line, keep_step, keep_epochs)) fputs(line, out);
    }
    fclose(in);
    return kao_atomic_fclose(out, temp, path);
}

int kao_output_open(kao_run *r, bool resumed, int64_t keep_step, int keep_epochs) {
    kao_train_output *o = &r->out;
    o->bar = r->args.progress_bar;
    o->every = r->args.log_every > 0 ? r->args.log_every : 10;
    char *log_path = kao_run_path(r, "train.log");
    char *csv_path = kao_run_path(r, "metrics.csv");
    int rc = KAO_OK;
    if (resumed) rc = trim_csv(csv_path, keep_step, keep_epochs);
    if (rc == KAO_OK) {
        o->log = kao_fopen_write(log_path, true);
        if (!o->log) rc = KAO_ERR;
    }
    if (rc == KAO_OK) {
        bool exists = kao_file_exists(csv_path);
        o->csv = kao_fopen_write(csv_path, true);
        if (!o->csv) rc = KAO_ERR;
        else if (!exists) fputs(csv_header, o->csv);
    }
    free(log_path);
    free(csv_path);
    return rc;
}

int kao_output_events(kao_run *r, bool resumed) {
    char *tb_dir = kao_run_path(r, "tb");
    int rc = KAO_OK;
    if (mkdir(tb_dir, 0777) != 0 && errno != EEXIST) rc = kao_fail("%s: cannot create folder: %s", tb_dir, strerror(errno));
    if (rc == KAO_OK) rc = kao_tb_open(&r->out.tb, tb_dir);
    if (rc == KAO_OK && resumed) kao_tb_session_start(&r->out.tb, r->trainer.step);
    free(tb_dir);
    return rc;
}

void kao_output_flush(kao_train_output *o) {
    if (o->csv) fflush(o->csv);
    kao_tb_flush(&o->tb);
}

void kao_output_close(kao_train_output *o) {
    if (o->log) fclose(o->log);
    if (o->csv) fclose(o->csv);
    kao_tb_close(&o->tb);
    o->log = o->csv = NULL;
}

static void end_bar(kao_train_output *o) {
    if (o->bar_drawn) fputc('\n', stderr);
    o->bar_drawn = false;
}

void kao_say(kao_run *r, const char *fmt, ...) {
    end_bar(&r->out);
    va_list args;
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    if (r->out.log) {
        va_start(args, fmt);
        vfprintf(r->out.log, fmt, args);
        va_end(args);
        fputc('\n', r->out.log);
        fflush(r->out.log);
    }
}

static void format_eta(char *out, size_t size, double seconds) {
    if (!(seconds >= 0) || seconds > 1e7) {
        snprintf(out, size, "?");
        return;
    }
    long s = (long)(seconds + 0.5);
    if (s >= 3600) snprintf(out, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else snprintf(out, size, "%ld:%02ld", s / 60, s % 60);
}

void kao_report_step(kao_run *r, const kao_step_report *s) {
    kao_train_output *o = &r->out;
    int64_t step = r->trainer.step;
    double rate = s->epoch_seconds > 0 ? s->epoch_rows / s->epoch_seconds : 0;
    double wait = s->epoch_seconds > 0 ? s->epoch_wait / s->epoch_seconds : 0;
    double per_batch = s->epoch_rows > 0 && s->rows > 0 ? s->epoch_seconds / (s->epoch_rows / s->rows) : 0;
    char eta[32];
    format_eta(eta, sizeof eta, per_batch * (s->num_batches - s->batch - 1));
    double acc = s->rows ? (double)s->stats.correct / s->rows : 0;
    if (o->csv)
        fprintf(o->csv, "step,%d,%" PRId64 ",%d,%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,,,,,,,,,\n", s->epoch + 1, step,
                s->batch + 1, s->rows, s->stats.loss, acc, s->lr, s->stats.grad_norm, s->seconds, s->wait_seconds,
                s->seconds > 0 ? s->rows / s->seconds : 0);
    kao_tb_scalar(&o->tb, "train/loss", step, s->stats.loss);
    kao_tb_scalar(&o->tb, "train/accuracy", step, (float)acc);
    kao_tb_scalar(&o->tb, "train/lr", step, (float)s->lr);
    if (r->cfg.train.grad_clip > 0) kao_tb_scalar(&o->tb, "train/grad_norm", step, s->stats.grad_norm);
    kao_tb_scalar(&o->tb, "train/images_per_second", step, (float)(s->seconds > 0 ? s->rows / s->seconds : 0));
    if (o->bar) {
        int width = 24, filled = (int)((double)(s->batch + 1) / s->num_batches * width + 0.5);
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r\033[Kepoch %d/%d [%s] %d/%d loss %.4f acc %.3f %.1f img/s wait %.0f%% ETA %s", s->epoch + 1,
                r->cfg.train.epochs, bar, s->batch + 1, s->num_batches, s->stats.loss, acc, rate, 100 * wait, eta);
        fflush(stderr);
        o->bar_drawn = true;
    } else if (step % o->every == 0 || s->batch + 1 == s->num_batches) {
        char line[512];
        snprintf(line, sizeof line,
                 "epoch %d/%d batch %d/%d step %" PRId64 " loss %.4f acc %.3f lr %.3g %.1f img/s wait %.1f%% ETA %s",
                 s->epoch + 1, r->cfg.train.epochs, s->batch + 1, s->num_batches, step, s->stats.loss, acc, s->lr, rate,
                 100 * wait, eta);
        fprintf(stderr, "%s\n", line);
        if (o->log) fprintf(o->log, "%s\n", line);
    }
}

void kao_report_epoch(kao_run *r, const kao_epoch_report *e) {
    kao_train_output *o = &r->out;
    const kao_val_result *v = e->val;
    const kao_pair_metrics *p = &v->pairs;
    if (o->csv) {
        fprintf(o->csv,
                "epoch,%d,%" PRId64 ",,%" PRId64 ",%.6g,%.6g,,,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,"
                "%.6g,%d\n",
                e->epoch, r->trainer.step, r->epoch_images, e->train_loss, e->train_accuracy, e->seconds, e->wait_seconds,
                e->images_per_second, v->loss, v->accuracy, p->accuracy, p->best_threshold, p->best_balanced_accuracy,
                p->auc, p->eer, p->eer_threshold, p->tar_at_far_1e3, p->far_1e3_threshold, e->improved ? 1 : 0);
        fflush(o->csv);
    }
    int64_t step = r->trainer.step;
    kao_tb_scalar(&o->tb, "epoch/train_loss", step, (float)e->train_loss);
    kao_tb_scalar(&o->tb, "epoch/train_accuracy", step, (float)e->train_accuracy);
    kao_tb_scalar(&o->tb, "epoch/images_per_second", step, (float)e->images_per_second);
    kao_tb_scalar(&o->tb, "epoch/data_wait_fraction", step, (float)(e->seconds > 0 ? e->wait_seconds / e->seconds : 0));
    kao_tb_scalar(&o->tb, "val/loss", step, (float)v->loss);
    kao_tb_scalar(&o->tb, "val/accuracy", step, (float)v->accuracy);
    if (r->can_verify) {
        kao_tb_scalar(&o->tb, "val/verify_accuracy", step, (float)p->accuracy);
        kao_tb_scalar(&o->tb, "val/best_balanced_accuracy", step, (float)p->best_balanced_accuracy);
        kao_tb_scalar(&o->tb, "val/auc", step, (float)p->auc);
        kao_tb_scalar(&o->tb, "val/eer", step, (float)p->eer);
        kao_tb_scalar(&o->tb, "val/tar_far_1e-3", step, (float)p->tar_at_far_1e3);
    }
    kao_tb_flush(&o->tb);
    double wait = e->seconds > 0 ? e->wait_seconds / e->seconds : 0;
    char verify[256] = "verify: n/a";
    if (r->can_verify)
        snprintf(verify, sizeof verify,
                 "verify acc@%.2f %.3f balanced best %.3f@%.3f AUC %.4f EER %.4f@%.3f TAR@FAR1e-3 %.3f@%.3f (%d+%d pairs)",
                 p->threshold, p->accuracy, p->best_balanced_accuracy, p->best_threshold, p->auc, p->eer,
                 p->eer_threshold, p->tar_at_far_1e3, p->far_1e3_threshold, p->same_pairs, p->diff_pairs);
    kao_say(r, "epoch %d/%d: train loss %.4f acc %.3f | %.1f img/s, waited for data %.1f%% | val loss %.4f acc %.3f | %s%s",
            e->epoch, r->cfg.train.epochs, e->train_loss, e->train_accuracy, e->images_per_second, 100 * wait, v->loss,
            v->accuracy, verify, e->improved ? " *best" : "");
}
