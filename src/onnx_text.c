/* Text from an ONNX file on the terminal: names, metadata and messages carry whatever the file
 * holds, and a control character (ESC above all) must reach the terminal as an escape, not as a
 * command. */
#include <stdio.h>
#include <string.h>

#include "onnx_schema.h"

/* The length of the UTF-8 character at s (1..4), or 0 when s does not start one. */
static size_t utf8_length(const unsigned char *s) {
    size_t n = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : s[0] >= 0xE0 && s[0] < 0xF0 ? 3
                                                                : s[0] >= 0xF0 && s[0] < 0xF5 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0; /* also stops at the terminating NUL */
    return n;
}

/* The character at s, escaped or as it is, in piece (NUL-terminated); returns the bytes of s it
 * covers. */
static size_t next_piece(const char *s, char piece[8]) {
    const unsigned char *u = (const unsigned char *)s;
    size_t n = utf8_length(u);
    if (n == 0 || u[0] < 0x20 || u[0] == 0x7F) {
        snprintf(piece, 8, "\\x%02x", u[0]);
        return 1;
    }
    if (n == 2 && u[0] == 0xC2 && u[1] < 0xA0) { /* U+0080..U+009F: C1 controls (CSI is U+009B) */
        snprintf(piece, 8, "\\u00%02x", u[1]);
        return 2;
    }
    memcpy(piece, s, n);
    piece[n] = '\0';
    return n;
}

const char *onnx_escape(char *out, size_t out_size, const char *s) {
    size_t used = 0;
    char piece[8];
    for (size_t n; *s; s += n) {
        n = next_piece(s, piece);
        size_t len = strlen(piece);
        if (used + len >= out_size) break;
        memcpy(out + used, piece, len);
        used += len;
    }
    out[used] = '\0';
    return out;
}

void onnx_print_text(FILE *f, const char *s) {
    char piece[8];
    for (size_t n; *s; s += n) {
        n = next_piece(s, piece);
        fputs(piece, f);
    }
}
