/* early_stop.c — patience and min_delta on a validation metric (early_stop.h). */
#include "kao/early_stop.h"

#include <math.h>

void kao_early_stop_init(kao_early_stop *es, kao_watch metric, int patience, double min_delta) {
    *es = (kao_early_stop){.metric = metric, .patience = patience, .min_delta = min_delta};
}

bool kao_early_stop_update(kao_early_stop *es, int epoch, double value) {
    bool higher_better = es->metric == KAO_WATCH_AUC;
    bool improved = false;
    if (!isnan(value)) {
        if (es->best_epoch == 0) improved = true;
        else if (higher_better) improved = value > es->best + es->min_delta;
        else improved = value < es->best - es->min_delta;
    }
    if (improved) {
        es->best = value;
        es->best_epoch = epoch;
        es->bad_epochs = 0;
    } else {
        es->bad_epochs++;
    }
    return improved;
}

bool kao_early_stop_should_stop(const kao_early_stop *es) {
    return es->patience > 0 && es->bad_epochs >= es->patience;
}

const char *kao_watch_name(kao_watch metric) {
    return metric == KAO_WATCH_EER ? "eer" : metric == KAO_WATCH_AUC ? "auc" : "val_loss";
}
