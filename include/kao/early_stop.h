/* early_stop.h — early stopping on a validation metric, and when to save the best model.
 *
 * After each epoch the watched value (validation ArcFace loss or EER, lower is better; or ROC
 * AUC, higher is better) is compared with the best so far: it is an improvement when it beats the
 * best by more than min_delta (the first epoch always improves). Training stops once patience
 * epochs in a row brought no improvement (patience 0: never), as Keras' and PyTorch Lightning's
 * EarlyStopping do. The state is a few numbers, saved in checkpoints.
 */
#ifndef KAO_EARLY_STOP_H
#define KAO_EARLY_STOP_H

#include <stdbool.h>

typedef enum { KAO_WATCH_VAL_LOSS = 0, KAO_WATCH_EER = 1, KAO_WATCH_AUC = 2 } kao_watch;

typedef struct {
    kao_watch metric;
    int patience;      /* 0: never stop */
    double min_delta;  /* >= 0 */
    double best;       /* best value so far; meaningless while best_epoch == 0 */
    int best_epoch;    /* 1-based epoch of the best value; 0: no epoch yet */
    int bad_epochs;    /* epochs since the last improvement */
} kao_early_stop;

void kao_early_stop_init(kao_early_stop *es, kao_watch metric, int patience, double min_delta);
/* Records the value of epoch (1-based); returns true when it is an improvement (save best.h5).
 * A NaN value never improves. */
bool kao_early_stop_update(kao_early_stop *es, int epoch, double value);
bool kao_early_stop_should_stop(const kao_early_stop *es);
const char *kao_watch_name(kao_watch metric); /* "val_loss" | "eer" | "auc" */

#endif
