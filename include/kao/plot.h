/* plot.h — the verification plots: a ROC curve and a histogram of pair scores, as PNG or SVG, and
 * the ROC's points as CSV.
 *
 * One drawing, described once (rectangles, lines, dots, a polyline, text), goes either to kao's
 * own small rasteriser, an 8-bit RGB image of KAO_PLOT_WIDTH × KAO_PLOT_HEIGHT pixels saved with
 * kao_image_save_png (text in a built-in 5×7 bitmap font of digits, upper- and lower-case
 * letters and a few signs, drawn at twice its size), or, when the path ends in ".svg", to an SVG
 * of the same size and coordinates (text in a monospace font stretched to the bitmap text's box,
 * the ROC curve one <polyline id="roc"> with a vertex per ROC point). The margins follow from the
 * widest tick label, so no text overlaps another. Every file is written atomically. */
#ifndef KAO_PLOT_H
#define KAO_PLOT_H

#include <stdbool.h>

#include "kao/metrics.h"

#define KAO_PLOT_WIDTH 640
#define KAO_PLOT_HEIGHT 480

/* The ROC curve through points (as kao_roc_curve gives them), true-accept rate (0..1, linear)
 * over false-accept rate on a log axis: decades from min(1e-4, the decade of the smallest non-zero
 * FAR) to 1 (points at FAR 0 sit on the axis's left edge). Marked on the curve: the EER point
 * (red square) and TAR at FAR 1e-3 and 1e-2 (orange dots); the header gives m's AUC, EER, its
 * threshold and those TARs. */
int kao_plot_roc(const char *path, const kao_roc_point *points, int count, const kao_pair_metrics *m);

/* The ROC points as CSV: a header "far,tar,threshold", then one line per point in increasing FAR,
 * each number to 17 significant digits, so a double reads back exactly (the first point's
 * threshold is "inf"). */
int kao_plot_roc_csv(const char *path, const kao_roc_point *points, int count);

/* Histograms of the scores (n) of same-identity (green) and different-identity (red) pairs,
 * each normalised to its own count (bar height = share of that kind's pairs), over the scores'
 * range rounded out to tenths, with the threshold as a vertical line. */
int kao_plot_histogram(const char *path, const float *scores, const bool *same, int n, double threshold);

#endif
