/* plot.c — the ROC and score-histogram plots (plot.h): a tiny rasteriser over an RGB8 image
 * (blended rectangles, thick and dashed lines, 5×7 bitmap text) and the two layouts. */
#include "kao/plot.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kao/image.h"
#include "kao/util.h"

/* ---- the font: 5×7 glyphs, one byte per row from the top, bit 4 = leftmost column ------------ */

static const char font_chars[] = " 0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.,-+:=%()/<>_";
static const uint8_t font_rows[][7] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* space */
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, /* 0 */
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}, /* 1 */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, /* 2 */
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}, /* 3 */
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, /* 4 */
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}, /* 5 */
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, /* 6 */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* 7 */
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, /* 8 */
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}, /* 9 */
    {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}, /* A */
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}, /* B */
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, /* C */
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}, /* D */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, /* E */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}, /* F */
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, /* G */
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}, /* H */
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, /* I */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}, /* J */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, /* K */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}, /* L */
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, /* M */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, /* N */
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, /* O */
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}, /* P */
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, /* Q */
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}, /* R */
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, /* S */
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* T */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, /* U */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}, /* V */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, /* W */
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}, /* X */
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}, /* Y */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}, /* Z */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}, /* . */
    {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}, /* , */
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}, /* + */
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}, /* : */
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}, /* = */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, /* % */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, /* ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, /* ) */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}, /* / */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}, /* < */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}, /* > */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}, /* _ */
};

#define SCALE 2                 /* font pixels per glyph dot */
#define ADVANCE (6 * SCALE)     /* a glyph and one dot of space */
#define LINE_HEIGHT (7 * SCALE)

typedef struct { uint8_t r, g, b; } rgb;

static const rgb black = {0, 0, 0}, grid = {225, 225, 225}, mid_grey = {150, 150, 150};
static const rgb blue = {31, 90, 180}, red = {200, 40, 40}, green = {30, 150, 60};

static void blend(kao_image *c, int x, int y, rgb color, float alpha) {
    if (x < 0 || y < 0 || x >= c->width || y >= c->height) return;
    uint8_t *p = c->pixels + ((size_t)y * c->width + x) * 3;
    p[0] = (uint8_t)lrintf(p[0] + alpha * (color.r - p[0]));
    p[1] = (uint8_t)lrintf(p[1] + alpha * (color.g - p[1]));
    p[2] = (uint8_t)lrintf(p[2] + alpha * (color.b - p[2]));
}

/* Fills [x0, x1) × [y0, y1). */
static void fill_rect(kao_image *c, int x0, int y0, int x1, int y1, rgb color, float alpha) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) blend(c, x, y, color, alpha);
}

/* A line of the given width (a square brush along Bresenham's path); dash > 0: on and off
 * every dash steps. */
static void line(kao_image *c, int x0, int y0, int x1, int y1, rgb color, int width, int dash) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy, lo = -(width - 1) / 2;
    for (int step = 0;; step++) {
        if (dash == 0 || (step / dash) % 2 == 0) fill_rect(c, x0 + lo, y0 + lo, x0 + lo + width, y0 + lo + width, color, 1);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

static const uint8_t *glyph(char ch) {
    if (ch >= 'a' && ch <= 'z') ch = (char)(ch - 'a' + 'A');
    const char *at = ch ? strchr(font_chars, ch) : NULL;
    return font_rows[at ? at - font_chars : 0];
}

static int text_width(const char *s) { return (int)strlen(s) * ADVANCE - SCALE; }

/* Text with its top-left corner at (x, y); vertical: turned a quarter left, read upwards from
 * (x, y) as its bottom-left corner. */
static void text(kao_image *c, int x, int y, const char *s, rgb color, bool vertical) {
    for (int i = 0; s[i]; i++) {
        const uint8_t *rows = glyph(s[i]);
        for (int r = 0; r < 7; r++)
            for (int col = 0; col < 5; col++) {
                if (!(rows[r] >> (4 - col) & 1)) continue;
                int u = i * ADVANCE + col * SCALE, v = r * SCALE; /* along, down the glyph */
                int px = vertical ? x + v : x + u, py = vertical ? y - u - SCALE : y + v;
                fill_rect(c, px, py, px + SCALE, py + SCALE, color, 1);
            }
    }
}

/* ---- the frame: data coordinates onto the plot area ---------------------------------------- */

enum { LEFT = 84, RIGHT = KAO_PLOT_WIDTH - 24, TOP = 52, BOTTOM = KAO_PLOT_HEIGHT - 64 };

typedef struct {
    double x_lo, x_hi, y_lo, y_hi;
} frame;

static int px_x(const frame *f, double x) { return LEFT + (int)lround((x - f->x_lo) / (f->x_hi - f->x_lo) * (RIGHT - LEFT)); }
static int px_y(const frame *f, double y) { return BOTTOM - (int)lround((y - f->y_lo) / (f->y_hi - f->y_lo) * (BOTTOM - TOP)); }

/* A white canvas with grid lines, ticks and their labels every step on each axis, the axis
 * names and a title. */
static void draw_frame(kao_image *c, const frame *f, double x_step, double y_step, const char *x_format,
                       const char *y_format, const char *x_name, const char *y_name, const char *title) {
    memset(c->pixels, 255, (size_t)c->width * c->height * 3);
    char label[32];
    for (long i = lround(ceil(f->x_lo / x_step - 1e-9));; i++) { /* ticks at multiples of the step */
        double v = i * x_step;
        if (v > f->x_hi + 1e-9) break;
        int x = px_x(f, v);
        line(c, x, TOP, x, BOTTOM, grid, 1, 0);
        line(c, x, BOTTOM, x, BOTTOM + 6, black, 1, 0);
        snprintf(label, sizeof label, x_format, fabs(v) < 1e-9 ? 0.0 : v);
        text(c, x - text_width(label) / 2, BOTTOM + 10, label, black, false);
    }
    for (long i = lround(ceil(f->y_lo / y_step - 1e-9));; i++) {
        double v = i * y_step;
        if (v > f->y_hi + 1e-9) break;
        int y = px_y(f, v);
        line(c, LEFT, y, RIGHT, y, grid, 1, 0);
        line(c, LEFT - 6, y, LEFT, y, black, 1, 0);
        snprintf(label, sizeof label, y_format, fabs(v) < 1e-9 ? 0.0 : v);
        text(c, LEFT - 10 - text_width(label), y - LINE_HEIGHT / 2, label, black, false);
    }
    line(c, LEFT, BOTTOM, RIGHT, BOTTOM, black, 1, 0);
    line(c, LEFT, TOP, LEFT, BOTTOM, black, 1, 0);
    text(c, (LEFT + RIGHT - text_width(x_name)) / 2, KAO_PLOT_HEIGHT - 24, x_name, black, false);
    text(c, 12, (TOP + BOTTOM + text_width(y_name)) / 2, y_name, black, true);
    text(c, (LEFT + RIGHT - text_width(title)) / 2, 18, title, black, false);
}

static int save(kao_image *c, const char *path) {
    int rc = kao_image_save_png(c, path);
    free(c->pixels);
    return rc;
}

static kao_image new_canvas(void) {
    kao_image c = {KAO_PLOT_WIDTH, KAO_PLOT_HEIGHT, NULL};
    c.pixels = kao_malloc((size_t)c.width * c.height * 3, "plot");
    return c;
}

/* ---- the plots -------------------------------------------------------------------------------- */

int kao_plot_roc(const char *path, const float *fpr, const float *tpr, int points, const kao_pair_metrics *m) {
    if (kao_check_parent_dir(path)) return KAO_ERR;
    kao_image c = new_canvas();
    frame f = {0, 1, 0, 1};
    char title[96];
    snprintf(title, sizeof title, "ROC  AUC %.4f  EER %.2f%%", m->auc, 100 * m->eer);
    draw_frame(&c, &f, 0.2, 0.2, "%.1f", "%.1f", "FALSE ACCEPT RATE", "TRUE ACCEPT RATE", title);
    line(&c, px_x(&f, 0), px_y(&f, 0), px_x(&f, 1), px_y(&f, 1), mid_grey, 1, 4);
    for (int k = 1; k < points; k++)
        line(&c, px_x(&f, fpr[k - 1]), px_y(&f, tpr[k - 1]), px_x(&f, fpr[k]), px_y(&f, tpr[k]), blue, 3, 0);
    int ex = px_x(&f, m->eer), ey = px_y(&f, 1 - m->eer);
    fill_rect(&c, ex - 4, ey - 4, ex + 5, ey + 5, red, 1);
    char note[64];
    snprintf(note, sizeof note, "EER AT %.3f", m->eer_threshold);
    text(&c, ex + 10, ey + 6, note, red, false);
    return save(&c, path);
}

int kao_plot_histogram(const char *path, const float *scores, const bool *same, int n, double threshold) {
    if (kao_check_parent_dir(path)) return KAO_ERR;
    if (n <= 0) return kao_fail("%s: no scores to plot", path);
    enum { BINS = 40 };
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        lo = fmin(lo, scores[i]);
        hi = fmax(hi, scores[i]);
    }
    lo = floor(lo * 10 - 1e-9) / 10;
    hi = ceil(hi * 10 + 1e-9) / 10;
    double share[2][BINS] = {{0}}; /* [different, same][bin] */
    int kinds[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        int b = (int)((scores[i] - lo) / (hi - lo) * BINS);
        b = b < 0 ? 0 : b >= BINS ? BINS - 1 : b;
        share[same[i]][b] += 1;
        kinds[same[i]]++;
    }
    double top = 0;
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < BINS; b++) {
            if (kinds[k]) share[k][b] /= kinds[k];
            top = fmax(top, share[k][b]);
        }
    double y_step = top > 0.5 ? 0.2 : top > 0.25 ? 0.1 : top > 0.1 ? 0.05 : 0.02;
    /* The finest step that leaves about 60 pixels (a "-0.45" label and a gap) between ticks. */
    double range = hi - lo, x_step = 0.05;
    while (x_step * (RIGHT - LEFT) < range * 60) x_step = x_step == 0.05 ? 0.1 : x_step == 0.1 ? 0.2 : 0.5;
    frame f = {lo, hi, 0, ceil(top / y_step - 1e-9) * y_step};
    kao_image c = new_canvas();
    char title[96];
    snprintf(title, sizeof title, "SAME PAIRS (%d)   DIFFERENT (%d)", kinds[1], kinds[0]);
    draw_frame(&c, &f, x_step, y_step, x_step < 0.1 ? "%.2f" : "%.1f", "%.2f", "COSINE SIMILARITY",
               "SHARE OF PAIRS", title);
    const rgb colour[2] = {red, green};
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < BINS; b++) {
            if (share[k][b] == 0) continue;
            int x0 = px_x(&f, lo + range * b / BINS), x1 = px_x(&f, lo + range * (b + 1) / BINS);
            fill_rect(&c, x0 + 1, px_y(&f, share[k][b]), x1, BOTTOM, colour[k], 0.55f);
        }
    /* The legend's colour keys sit left of the title's two words. */
    int title_x = (LEFT + RIGHT - text_width(title)) / 2;
    fill_rect(&c, title_x - 18, 18, title_x - 6, 18 + LINE_HEIGHT, green, 0.55f);
    int diff_x = title_x + ADVANCE * (int)(strstr(title, "DIFF") - title);
    fill_rect(&c, diff_x - 18, 18, diff_x - 6, 18 + LINE_HEIGHT, red, 0.55f);
    if (threshold >= lo && threshold <= hi) {
        int x = px_x(&f, threshold);
        line(&c, x, TOP, x, BOTTOM, black, 2, 5);
        char note[48];
        snprintf(note, sizeof note, "THRESHOLD %.2f", threshold);
        int w = text_width(note);
        text(&c, x + 8 + w <= RIGHT ? x + 8 : x - 8 - w, TOP + 6, note, black, false);
    }
    return save(&c, path);
}
