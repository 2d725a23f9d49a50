/* plot.c — the ROC and score-histogram plots (plot.h): a canvas of a few shapes (blended
 * rectangles, dots, thick and dashed lines, polylines, 5×7 bitmap text) that rasterises them into an
 * RGB8 image or writes them as SVG elements, and the two layouts drawn on it. */
#include "kao/plot.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kao/image.h"
#include "kao/util.h"

/* ---- the font: 5×7 glyphs, one byte per row from the top, bit 4 = leftmost column; lower case
 * in the HD44780 LCD's shapes (descenders inside the 7 rows) ------------------------------------ */

static const char font_chars[] = " 0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.,-+:=%()/<>_@";
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
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}, /* a */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E}, /* b */
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E}, /* c */
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F}, /* d */
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}, /* e */
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08}, /* f */
    {0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* g */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}, /* h */
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}, /* i */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C}, /* j */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}, /* k */
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, /* l */
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11}, /* m */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}, /* n */
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}, /* o */
    {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10}, /* p */
    {0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01}, /* q */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}, /* r */
    {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E}, /* s */
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}, /* t */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D}, /* u */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04}, /* v */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A}, /* w */
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11}, /* x */
    {0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* y */
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F}, /* z */
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
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E}, /* @ */
};

_Static_assert(sizeof font_chars - 1 == sizeof font_rows / sizeof font_rows[0], "a glyph per character");

#define SCALE 2                 /* font pixels per glyph dot */
#define ADVANCE (6 * SCALE)     /* a glyph and one dot of space */
#define LINE_HEIGHT (7 * SCALE)

typedef struct { uint8_t r, g, b; } rgb;

static const rgb white = {255, 255, 255}, black = {0, 0, 0}, grid = {225, 225, 225}, faint = {242, 242, 242};
static const rgb blue = {31, 90, 180}, red = {200, 40, 40}, green = {30, 150, 60}, orange = {230, 130, 0};

static const uint8_t *glyph(char ch) {
    const char *at = ch ? strchr(font_chars, ch) : NULL;
    return font_rows[at ? at - font_chars : 0];
}

static int text_width(const char *s) { return (int)strlen(s) * ADVANCE - SCALE; }

/* ---- the canvas: each shape rasterised into pixels, or written as an SVG element ------------- */

typedef struct {
    kao_image img; /* the raster (pixels NULL when drawing SVG) */
    FILE *svg;     /* the SVG being written (NULL when drawing pixels) */
    char temp[4096];
} canvas;

static void svg_paint(FILE *f, const char *attribute, rgb color, float alpha) {
    fprintf(f, " %s=\"#%02x%02x%02x\"", attribute, color.r, color.g, color.b);
    if (alpha < 1) fprintf(f, " %s-opacity=\"%.2f\"", attribute, alpha);
}

static void blend(kao_image *c, int x, int y, rgb color, float alpha) {
    if (x < 0 || y < 0 || x >= c->width || y >= c->height) return;
    uint8_t *p = c->pixels + ((size_t)y * c->width + x) * 3;
    p[0] = (uint8_t)lrintf(p[0] + alpha * (color.r - p[0]));
    p[1] = (uint8_t)lrintf(p[1] + alpha * (color.g - p[1]));
    p[2] = (uint8_t)lrintf(p[2] + alpha * (color.b - p[2]));
}

/* Fills [x0, x1) × [y0, y1). */
static void rect(canvas *c, int x0, int y0, int x1, int y1, rgb color, float alpha) {
    if (x1 <= x0 || y1 <= y0) return;
    if (c->svg) {
        fprintf(c->svg, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"", x0, y0, x1 - x0, y1 - y0);
        svg_paint(c->svg, "fill", color, alpha);
        fputs("/>\n", c->svg);
        return;
    }
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) blend(&c->img, x, y, color, alpha);
}

/* A filled disc of radius r around the centre of pixel (x, y). */
static void dot(canvas *c, int x, int y, int r, rgb color) {
    if (c->svg) {
        fprintf(c->svg, "<circle cx=\"%d.5\" cy=\"%d.5\" r=\"%d\"", x, y, r);
        svg_paint(c->svg, "fill", color, 1);
        fputs("/>\n", c->svg);
        return;
    }
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            if (dx * dx + dy * dy <= r * r) blend(&c->img, x + dx, y + dy, color, 1);
}

/* The SVG stroke of a raster line of that width: a square brush of width pixels from (x - (width -
 * 1) / 2) covers [x - (width - 1) / 2, x - (width - 1) / 2 + width), centred this far right of x. */
static double stroke_offset(int width) { return -((width - 1) / 2) + width / 2.0; }

/* A line of the given width (a square brush along Bresenham's path); dash > 0: on and off
 * every dash steps. */
static void line(canvas *c, int x0, int y0, int x1, int y1, rgb color, int width, int dash) {
    if (c->svg) {
        double o = stroke_offset(width);
        fprintf(c->svg, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke-width=\"%d\"", x0 + o, y0 + o, x1 + o,
                y1 + o, width);
        svg_paint(c->svg, "stroke", color, 1);
        if (dash) fprintf(c->svg, " stroke-dasharray=\"%d\"", dash);
        fputs("/>\n", c->svg);
        return;
    }
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy, lo = -(width - 1) / 2;
    for (int step = 0;; step++) {
        if (dash == 0 || (step / dash) % 2 == 0) rect(c, x0 + lo, y0 + lo, x0 + lo + width, y0 + lo + width, color, 1);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

/* Lines through the n pixels xy (x0, y0, x1, y1, ...); in SVG one <polyline id="id">. */
static void polyline(canvas *c, const int *xy, int n, rgb color, int width, const char *id) {
    if (!c->svg) {
        for (int k = 1; k < n; k++) line(c, xy[2 * k - 2], xy[2 * k - 1], xy[2 * k], xy[2 * k + 1], color, width, 0);
        return;
    }
    double o = stroke_offset(width);
    fprintf(c->svg, "<polyline id=\"%s\" fill=\"none\" stroke-width=\"%d\" stroke-linejoin=\"round\"", id, width);
    svg_paint(c->svg, "stroke", color, 1);
    fputs(" points=\"", c->svg);
    for (int k = 0; k < n; k++) fprintf(c->svg, "%s%g,%g", k ? " " : "", xy[2 * k] + o, xy[2 * k + 1] + o);
    fputs("\"/>\n", c->svg);
}

/* SVG text: each run of s without two spaces in a row is its own <text>, placed where the bitmap
 * font puts it and stretched to its width, so no renderer's font or spacing moves a word. */
static void svg_text(FILE *f, int x, int y, const char *s, rgb color, bool vertical) {
    for (int i = 0; s[i];) {
        if (s[i] == ' ') {
            i++;
            continue;
        }
        int end = i;
        while (s[end] && !(s[end] == ' ' && (s[end + 1] == ' ' || !s[end + 1]))) end++;
        int tx = vertical ? x : x + i * ADVANCE, ty = vertical ? y - i * ADVANCE : y;
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-family=\"DejaVu Sans Mono, monospace\" font-size=\"19\" "
                   "textLength=\"%d\" lengthAdjust=\"spacingAndGlyphs\"", tx, ty + LINE_HEIGHT, (end - i) * ADVANCE - SCALE);
        if (vertical) fprintf(f, " transform=\"rotate(-90 %d %d)\"", tx, ty);
        svg_paint(f, "fill", color, 1);
        fputc('>', f);
        for (; i < end; i++) /* the font's characters: only these three need escaping */
            fputs(s[i] == '<' ? "&lt;" : s[i] == '>' ? "&gt;" : s[i] == '&' ? "&amp;" : (char[2]){s[i], 0}, f);
        fputs("</text>\n", f);
    }
}

/* Text in the box of its bitmap glyphs: text_width(s) × LINE_HEIGHT with its top-left corner at
 * (x, y); vertical: turned a quarter left, read upwards, (x, y) its bottom-left corner. */
static void text(canvas *c, int x, int y, const char *s, rgb color, bool vertical) {
    if (c->svg) {
        svg_text(c->svg, x, y, s, color, vertical);
        return;
    }
    for (int i = 0; s[i]; i++) {
        const uint8_t *rows = glyph(s[i]);
        for (int r = 0; r < 7; r++)
            for (int col = 0; col < 5; col++) {
                if (!(rows[r] >> (4 - col) & 1)) continue;
                int u = i * ADVANCE + col * SCALE, v = r * SCALE; /* along, down the glyph */
                int px = vertical ? x + v : x + u, py = vertical ? y - u - SCALE : y + v;
                rect(c, px, py, px + SCALE, py + SCALE, color, 1);
            }
    }
}

/* A white canvas for path: SVG when it ends in ".svg", else pixels for a PNG. */
static int canvas_open(canvas *c, const char *path) {
    *c = (canvas){.img = {KAO_PLOT_WIDTH, KAO_PLOT_HEIGHT, NULL}};
    if (kao_ends_with(path, ".svg")) {
        c->svg = kao_atomic_fopen(c->temp, sizeof c->temp, path);
        if (!c->svg) return KAO_ERR;
        fprintf(c->svg, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
                        "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n", KAO_PLOT_WIDTH, KAO_PLOT_HEIGHT,
                KAO_PLOT_WIDTH, KAO_PLOT_HEIGHT);
    } else {
        if (kao_check_parent_dir(path)) return KAO_ERR;
        c->img.pixels = kao_malloc((size_t)KAO_PLOT_WIDTH * KAO_PLOT_HEIGHT * 3, "plot");
    }
    rect(c, 0, 0, KAO_PLOT_WIDTH, KAO_PLOT_HEIGHT, white, 1);
    return KAO_OK;
}

static int canvas_save(canvas *c, const char *path) {
    if (c->svg) {
        fputs("</svg>\n", c->svg);
        return kao_atomic_fclose(c->svg, c->temp, path);
    }
    int rc = kao_image_save_png(&c->img, path);
    free(c->img.pixels);
    return rc;
}

/* ---- the frame: axes with ticks, data coordinates onto the plot area ------------------------- */

enum { PAD = 12, TICK = 6, TICK_GAP = 4, NAME_GAP = 12, HEADER_Y = 12, HEADER_GAP = 6, MAX_TICKS = 64 };
/* Room right of the plot for half the widest x tick label ("-0.45"). */
#define RIGHT_MARGIN (PAD + 30)

typedef struct {
    double value;
    bool major;     /* a grid line and a long tick; minor: a faint grid line and a short tick */
    char label[16]; /* "" for none */
} tick;

typedef struct {
    double lo, hi;
    bool log; /* log10 scale (lo > 0); values below lo sit at lo */
    tick ticks[MAX_TICKS];
    int count;
} axis;

typedef struct {
    axis x, y;
    int left, right, top, bottom; /* the plot area, pixels */
} frame;

static double axis_share(const axis *a, double v) {
    if (a->log) return (log10(fmax(v, a->lo)) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
    return (v - a->lo) / (a->hi - a->lo);
}

static int px_x(const frame *f, double x) { return f->left + (int)lround(axis_share(&f->x, x) * (f->right - f->left)); }
static int px_y(const frame *f, double y) { return f->bottom - (int)lround(axis_share(&f->y, y) * (f->bottom - f->top)); }

static void add_tick(axis *a, double value, bool major, const char *label) {
    if (a->count == MAX_TICKS) return;
    tick *t = &a->ticks[a->count++];
    *t = (tick){value, major, ""};
    snprintf(t->label, sizeof t->label, "%s", label);
}

/* lo..hi, a labelled tick at every multiple of step. */
static void linear_axis(axis *a, double lo, double hi, double step, const char *format) {
    *a = (axis){.lo = lo, .hi = hi};
    for (long i = lround(ceil(lo / step - 1e-9));; i++) {
        double v = i * step;
        if (v > hi + 1e-9) break;
        char label[16];
        snprintf(label, sizeof label, format, fabs(v) < 1e-9 ? 0.0 : v);
        add_tick(a, v, true, label);
    }
}

/* 10^lo_exp..1: a tick at every decade, labelled "1e-k" ("1" at 1), every few decades when there
 * are more than 8 (so labels keep apart); minor ticks at 2..9 × 10^k up to 6 decades. */
static void log_axis(axis *a, int lo_exp) {
    *a = (axis){.lo = pow(10, lo_exp), .hi = 1, .log = true};
    int decades = -lo_exp, every = (decades + 7) / 8;
    for (int e = lo_exp; e <= 0; e++) {
        char label[16] = "";
        if (-e % every == 0) snprintf(label, sizeof label, e ? "1e%d" : "1", e);
        add_tick(a, pow(10, e), true, label);
        for (int k = 2; e < 0 && decades <= 6 && k <= 9; k++) add_tick(a, k * pow(10, e), false, "");
    }
}

/* The plot area: room left for the y axis's name, its widest tick label and the ticks; below for
 * the ticks, their labels and the x axis's name; above for header_lines of text. */
static void frame_layout(frame *f, int header_lines) {
    int widest = 0;
    for (int i = 0; i < f->y.count; i++) {
        int w = text_width(f->y.ticks[i].label);
        widest = w > widest ? w : widest;
    }
    f->left = PAD + LINE_HEIGHT + NAME_GAP + widest + TICK + TICK_GAP;
    f->right = KAO_PLOT_WIDTH - RIGHT_MARGIN;
    f->top = HEADER_Y + header_lines * (LINE_HEIGHT + HEADER_GAP) + 2 * PAD;
    f->bottom = KAO_PLOT_HEIGHT - PAD - LINE_HEIGHT - NAME_GAP - LINE_HEIGHT - TICK - TICK_GAP;
}

static void draw_ticks(canvas *c, const frame *f) {
    for (int i = 0; i < f->x.count; i++) {
        const tick *t = &f->x.ticks[i];
        int x = px_x(f, t->value);
        line(c, x, f->top, x, f->bottom, t->major ? grid : faint, 1, 0);
        line(c, x, f->bottom, x, f->bottom + (t->major ? TICK : TICK / 2), black, 1, 0);
        text(c, x - text_width(t->label) / 2, f->bottom + TICK + TICK_GAP, t->label, black, false);
    }
    for (int i = 0; i < f->y.count; i++) {
        const tick *t = &f->y.ticks[i];
        int y = px_y(f, t->value);
        line(c, f->left, y, f->right, y, t->major ? grid : faint, 1, 0);
        line(c, f->left - (t->major ? TICK : TICK / 2), y, f->left, y, black, 1, 0);
        text(c, f->left - TICK - TICK_GAP - text_width(t->label), y - LINE_HEIGHT / 2, t->label, black, false);
    }
}

/* Grid lines, ticks with their labels, the axes and their names. */
static void draw_frame(canvas *c, const frame *f, const char *x_name, const char *y_name) {
    draw_ticks(c, f);
    line(c, f->left, f->bottom, f->right, f->bottom, black, 1, 0);
    line(c, f->left, f->top, f->left, f->bottom, black, 1, 0);
    text(c, (f->left + f->right - text_width(x_name)) / 2, KAO_PLOT_HEIGHT - PAD - LINE_HEIGHT, x_name, black, false);
    text(c, PAD, (f->top + f->bottom + text_width(y_name)) / 2, y_name, black, true);
}

/* ---- header lines: text centred over the plot, a coloured key before some of its words ------ */

typedef enum { KEY_BAR, KEY_SQUARE, KEY_DOT } key_shape;

/* A legend key or a mark on the curve, centred on (x, y). */
static void mark(canvas *c, int x, int y, key_shape shape, rgb color) {
    if (shape == KEY_BAR) rect(c, x - 6, y - LINE_HEIGHT / 2, x + 6, y + LINE_HEIGHT / 2, color, 0.55f);
    else if (shape == KEY_SQUARE) rect(c, x - 4, y - 4, x + 5, y + 5, color, 1);
    else dot(c, x, y, 4, color);
}

typedef struct {
    const char *word; /* the key goes in the two spaces before the word's first occurrence */
    key_shape shape;
    rgb color;
} key;

static void header(canvas *c, const frame *f, int line_no, const char *s, const key *keys, int count) {
    int x = (f->left + f->right - text_width(s)) / 2, y = HEADER_Y + line_no * (LINE_HEIGHT + HEADER_GAP);
    text(c, x, y, s, black, false);
    for (int k = 0; k < count; k++)
        mark(c, x + ADVANCE * ((int)(strstr(s, keys[k].word) - s) - 1) - SCALE / 2, y + LINE_HEIGHT / 2, keys[k].shape,
             keys[k].color);
}

/* ---- the plots -------------------------------------------------------------------------------- */

/* The log FAR axis's lowest decade: 1e-4, or lower to reach the smallest non-zero FAR. */
static int roc_lowest_decade(const kao_roc_point *p, int count) {
    double smallest = 1;
    for (int k = 0; k < count; k++)
        if (p[k].far > 0) smallest = fmin(smallest, p[k].far);
    return (int)fmin(-4, floor(log10(smallest)));
}

static void roc_curve(canvas *c, const frame *f, const kao_roc_point *p, int count) {
    int *xy = kao_malloc((size_t)count * 2 * sizeof *xy, "roc curve");
    for (int k = 0; k < count; k++) xy[2 * k] = px_x(f, p[k].far), xy[2 * k + 1] = px_y(f, p[k].tar);
    polyline(c, xy, count, blue, 3, "roc");
    free(xy);
}

int kao_plot_roc(const char *path, const kao_roc_point *points, int count, const kao_pair_metrics *m) {
    frame f;
    log_axis(&f.x, roc_lowest_decade(points, count));
    linear_axis(&f.y, 0, 1, 0.2, "%.1f");
    frame_layout(&f, 2);
    canvas c;
    if (canvas_open(&c, path)) return KAO_ERR;
    draw_frame(&c, &f, "false accept rate (FAR, log scale)", "true accept rate (TAR)");
    roc_curve(&c, &f, points, count);
    mark(&c, px_x(&f, 1e-3), px_y(&f, m->tar_at_far_1e3), KEY_DOT, orange);
    mark(&c, px_x(&f, 1e-2), px_y(&f, m->tar_at_far_1e2), KEY_DOT, orange);
    mark(&c, px_x(&f, m->eer), px_y(&f, 1 - m->eer), KEY_SQUARE, red);
    char line1[96], line2[96];
    snprintf(line1, sizeof line1, "ROC  AUC %.4f    EER %.2f%% at %.3f", m->auc, 100 * m->eer, m->eer_threshold);
    snprintf(line2, sizeof line2, "  TAR %.4f at FAR 1e-3, %.4f at 1e-2", m->tar_at_far_1e3, m->tar_at_far_1e2);
    header(&c, &f, 0, line1, (key[]){{"EER", KEY_SQUARE, red}}, 1);
    header(&c, &f, 1, line2, (key[]){{"TAR", KEY_DOT, orange}}, 1);
    return canvas_save(&c, path);
}

int kao_plot_roc_csv(const char *path, const kao_roc_point *points, int count) {
    char temp[4096];
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    if (!f) return KAO_ERR;
    fputs("far,tar,threshold\n", f);
    for (int k = 0; k < count; k++) fprintf(f, "%.17g,%.17g,%.17g\n", points[k].far, points[k].tar, (double)points[k].threshold);
    return kao_atomic_fclose(f, temp, path);
}

enum { HIST_BINS = 40 };

typedef struct {
    double lo, hi;              /* the scores' range rounded out to tenths */
    double share[2][HIST_BINS]; /* [different, same][bin]: the share of that kind's pairs */
    int kinds[2];               /* pairs of each kind */
    double top;                 /* the tallest bar */
} histogram;

static void histogram_count(histogram *h, const float *scores, const bool *same, int n) {
    *h = (histogram){.lo = INFINITY, .hi = -INFINITY};
    for (int i = 0; i < n; i++) {
        h->lo = fmin(h->lo, scores[i]);
        h->hi = fmax(h->hi, scores[i]);
    }
    h->lo = floor(h->lo * 10 - 1e-9) / 10;
    h->hi = ceil(h->hi * 10 + 1e-9) / 10;
    for (int i = 0; i < n; i++) {
        int b = (int)((scores[i] - h->lo) / (h->hi - h->lo) * HIST_BINS);
        b = b < 0 ? 0 : b >= HIST_BINS ? HIST_BINS - 1 : b;
        h->share[same[i]][b] += 1;
        h->kinds[same[i]]++;
    }
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < HIST_BINS; b++) {
            if (h->kinds[k]) h->share[k][b] /= h->kinds[k];
            h->top = fmax(h->top, h->share[k][b]);
        }
}

static void histogram_frame(frame *f, const histogram *h) {
    double y_step = h->top > 0.5 ? 0.2 : h->top > 0.25 ? 0.1 : h->top > 0.1 ? 0.05 : 0.02;
    linear_axis(&f->y, 0, ceil(h->top / y_step - 1e-9) * y_step, y_step, "%.2f");
    frame_layout(f, 1);
    /* The finest step that leaves about 60 pixels (a "-0.45" label and a gap) between ticks. */
    double range = h->hi - h->lo, x_step = 0.05;
    while (x_step * (f->right - f->left) < range * 60) x_step = x_step == 0.05 ? 0.1 : x_step == 0.1 ? 0.2 : 0.5;
    linear_axis(&f->x, h->lo, h->hi, x_step, x_step < 0.1 ? "%.2f" : "%.1f");
}

static void histogram_bars(canvas *c, const frame *f, const histogram *h) {
    const rgb colour[2] = {red, green};
    double range = h->hi - h->lo;
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < HIST_BINS; b++) {
            if (h->share[k][b] == 0) continue;
            int x0 = px_x(f, h->lo + range * b / HIST_BINS), x1 = px_x(f, h->lo + range * (b + 1) / HIST_BINS);
            rect(c, x0 + 1, px_y(f, h->share[k][b]), x1, f->bottom, colour[k], 0.55f);
        }
}

/* The threshold's dashed line, labelled right of it, or left where the label would leave the plot. */
static void threshold_line(canvas *c, const frame *f, double threshold) {
    int x = px_x(f, threshold);
    line(c, x, f->top, x, f->bottom, black, 2, 5);
    char note[48];
    snprintf(note, sizeof note, "threshold %.2f", threshold);
    int w = text_width(note);
    text(c, x + 8 + w <= f->right ? x + 8 : x - 8 - w, f->top + 6, note, black, false);
}

int kao_plot_histogram(const char *path, const float *scores, const bool *same, int n, double threshold) {
    if (n <= 0) return kao_fail("%s: no scores to plot", path);
    histogram h;
    histogram_count(&h, scores, same, n);
    frame f;
    histogram_frame(&f, &h);
    canvas c;
    if (canvas_open(&c, path)) return KAO_ERR;
    draw_frame(&c, &f, "cosine similarity", "share of pairs");
    histogram_bars(&c, &f, &h);
    char title[96];
    snprintf(title, sizeof title, "  same pairs (%d)    different (%d)", h.kinds[1], h.kinds[0]);
    header(&c, &f, 0, title, (key[]){{"same", KEY_BAR, green}, {"different", KEY_BAR, red}}, 2);
    if (threshold >= h.lo && threshold <= h.hi) threshold_line(&c, &f, threshold);
    return canvas_save(&c, path);
}
