/* plot.h — the verification plots as PNG files: a ROC curve and a histogram of pair scores.
 *
 * Drawn by kao's own small rasteriser into an 8-bit RGB image of KAO_PLOT_WIDTH × KAO_PLOT_HEIGHT
 * pixels (axes, ticks with labels, lines, bars; text in a built-in 5×7 bitmap font of digits,
 * capital letters and a few signs, drawn at twice its size), saved atomically with
 * kao_image_save_png. */
#ifndef KAO_PLOT_H
#define KAO_PLOT_H

#include <stdbool.h>

#include "kao/metrics.h"

#define KAO_PLOT_WIDTH 640
#define KAO_PLOT_HEIGHT 480

/* The ROC curve (true-accept rate over false-accept rate, both 0..1) through the points
 * fpr, tpr (points), as kao_roc_curve gives them, with the chance diagonal, the EER point and
 * a title giving m's AUC and EER. */
int kao_plot_roc(const char *path, const float *fpr, const float *tpr, int points, const kao_pair_metrics *m);

/* Histograms of the scores (n) of same-identity (green) and different-identity (red) pairs,
 * each normalised to its own count (bar height = share of that kind's pairs), over the scores'
 * range rounded out to tenths, with the threshold as a vertical line. */
int kao_plot_histogram(const char *path, const float *scores, const bool *same, int n, double threshold);

#endif
