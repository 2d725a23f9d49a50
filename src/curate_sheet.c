/* curate_sheet.c — kao curate's contact sheets (curate_analysis.h): per identity with a flagged
 * image, one PNG (kao_image_save_png, libpng) of its reference images, then its flagged images,
 * each scaled to fit a TILE × TILE square and framed in a colour: blue the reference, red NOT_ME,
 * orange SAME_FACE, grey NO_FACE. images.tsv says which file each tile is, in the same order. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kao/curate_analysis.h"
#include "kao/image.h"
#include "kao/util.h"

#define TILE 112
#define FRAME 4
#define COLS 8
#define MAX_TILES 64 /* per sheet; the TSV lists every image */

static const uint8_t colours[][3] = {{40, 90, 200}, {210, 40, 40}, {240, 150, 20}, {128, 128, 128}};

/* Draws image path into tile t of sheet: framed in colour, the picture scaled to fit inside. */
static int draw_tile(kao_image *sheet, int t, const char *path, const uint8_t colour[3]) {
    int x0 = (t % COLS) * TILE, y0 = (t / COLS) * TILE;
    for (int y = y0; y < y0 + TILE; y++)
        for (int x = x0; x < x0 + TILE; x++) memcpy(sheet->pixels + ((size_t)y * sheet->width + x) * 3, colour, 3);
    kao_image img;
    kao_image_options opt = KAO_IMAGE_OPTIONS_DEFAULT;
    if (kao_image_load_rgb(&img, path, &opt)) return KAO_ERR;
    int inner = TILE - 2 * FRAME;
    double scale = (double)inner / (img.width > img.height ? img.width : img.height);
    int w = (int)(img.width * scale + 0.5), h = (int)(img.height * scale + 0.5);
    w = w < 1 ? 1 : w;
    h = h < 1 ? 1 : h;
    uint8_t *small = kao_malloc((size_t)w * h * 3, "tile");
    kao_image_resize_rgb(small, img.pixels, img.height, img.width, h, w);
    int ox = x0 + FRAME + (inner - w) / 2, oy = y0 + FRAME + (inner - h) / 2;
    for (int y = 0; y < h; y++)
        memcpy(sheet->pixels + ((size_t)(oy + y) * sheet->width + ox) * 3, small + (size_t)y * w * 3, (size_t)w * 3);
    free(small);
    kao_image_free(&img);
    return KAO_OK;
}

/* The sheet of class c: tiles listed in order (references first), n of them. */
static int write_sheet(const char *dir, const kao_dataset *ds, const kao_curate_result *r, const int *tiles, int n,
                       int c) {
    kao_image sheet = {.width = COLS * TILE, .height = ((n + COLS - 1) / COLS) * TILE};
    sheet.pixels = kao_calloc((size_t)sheet.width * sheet.height, 3, "contact sheet");
    memset(sheet.pixels, 255, (size_t)sheet.width * sheet.height * 3);
    int rc = KAO_OK;
    for (int t = 0; t < n && rc == KAO_OK; t++) {
        const kao_curate_image *im = &r->images[tiles[t]];
        rc = draw_tile(&sheet, t, ds->images[tiles[t]].path, colours[im->reference ? 0 : im->verdict]);
    }
    if (rc == KAO_OK) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s.png", dir, ds->classes[c].name);
        rc = kao_image_save_png(&sheet, path);
    }
    free(sheet.pixels);
    return rc;
}

int kao_curate_write_sheets(const char *dir, const kao_dataset *ds, const kao_curate_result *r) {
    char sheets[4200];
    snprintf(sheets, sizeof sheets, "%s/sheets", dir);
    if (mkdir(sheets, 0777) != 0 && errno != EEXIST)
        return kao_fail("%s: cannot create folder: %s", sheets, strerror(errno));
    int *tiles = kao_malloc(MAX_TILES * sizeof *tiles, "contact sheet");
    int rc = KAO_OK;
    for (int c = 0; c < ds->num_classes && rc == KAO_OK; c++) {
        const kao_class *k = &ds->classes[c];
        int n = 0, flagged = 0;
        for (int i = 0; i < k->num_images && n < MAX_TILES; i++)
            if (r->images[k->images[i]].reference) tiles[n++] = k->images[i];
        for (int i = 0; i < k->num_images && n < MAX_TILES; i++)
            if (r->images[k->images[i]].verdict != KAO_VERDICT_KEEP) {
                tiles[n++] = k->images[i];
                flagged++;
            }
        if (flagged) rc = write_sheet(sheets, ds, r, tiles, n, c);
    }
    free(tiles);
    return rc;
}
