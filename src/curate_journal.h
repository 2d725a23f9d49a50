/* curate_journal.h — the plan of kao curate --apply and the journal file that holds it (internal to
 * curate_journal.c, which builds, writes and reads plans, and curate_apply.c, which carries them
 * out and reverses them).
 *
 * A plan is a list of steps over an identity-folder tree ROOT (absolute, symbolic links resolved):
 *   mkdir          I  Q    ROOT/I/Q is created (it did not exist when the plan was made)
 *   mkdir-small            PARENT/_small is created (PARENT: the folder holding ROOT)
 *   move           I/F Q   ROOT/I/F -> ROOT/I/Q/F   (Q: not_me, same_face or no_face)
 *   move-identity  I       ROOT/I -> PARENT/_small/I
 * Names are single path components (no '/', not "." or ".."), UTF-8, without tab or line break:
 * the journal is UTF-8 text with tab-separated fields, so such names are refused, not escaped (the
 * dataset scan and the split manifests refuse them too). Paths are rebuilt from the root and the
 * names, never read whole from the journal, so a journal cannot make kao move anything else.
 *
 * The journal file:
 *   kao curate journal 1
 *   root<TAB>/absolute/root
 *   <one line per step, in order, fields separated by tabs>
 *   end
 * It is written whole (to a temporary file, fsynced, renamed into place without replacing anything,
 * its folder fsynced) before the first move: it is either absent or complete, and every move that
 * can ever happen is on disk in it before it happens. It has no per-move records: whether a move
 * has happened is read from the file system (curate_apply.c).
 */
#ifndef KAO_CURATE_JOURNAL_H
#define KAO_CURATE_JOURNAL_H

#include <stdbool.h>

#include "kao/curate.h"

#define KAO_SMALL_FOLDER "_small"

typedef enum {
    KAO_CURATE_STEP_MKDIR,
    KAO_CURATE_STEP_MKDIR_SMALL,
    KAO_CURATE_STEP_MOVE,
    KAO_CURATE_STEP_MOVE_IDENTITY
} kao_curate_step_kind;

typedef struct {
    kao_curate_step_kind kind;
    char *identity;      /* NULL for KAO_CURATE_STEP_MKDIR_SMALL */
    char *file;          /* KAO_CURATE_STEP_MOVE: the image's name in its identity folder; else NULL */
    const char *folder;  /* KAO_CURATE_STEP_MKDIR, KAO_CURATE_STEP_MOVE: kao_verdict_folder's string; else NULL */
    bool identity_moves; /* KAO_CURATE_STEP_MKDIR, KAO_CURATE_STEP_MOVE: the plan also moves the identity to _small */
} kao_curate_step;

typedef struct {
    char *root;   /* absolute, resolved, no trailing '/' */
    char *parent; /* the folder holding root ("" for "/") */
    kao_curate_step *steps;
    int num_steps;
} kao_curate_plan;

/* The move steps for moves (KEEP skipped) and small_identities: image moves sorted by identity
 * and file, then identity moves sorted by name. Fails naming ROOT/<rel> for a bad name, a bad
 * verdict or a move listed twice. root_real: a realpath. */
int kao_curate_plan_from_moves(kao_curate_plan *plan, const char *root_real, const kao_curate_move *moves,
                               int num_moves, char *const *small_identities, int num_small);
/* Appends a step (the strings are copied); sets nothing else. */
void kao_curate_plan_add(kao_curate_plan *plan, kao_curate_step_kind kind, const char *identity, const char *file,
                         const char *folder);
/* Sets identity_moves on every mkdir and move step whose identity has a move-identity step. */
void kao_curate_plan_mark_identity_moves(kao_curate_plan *plan);
/* Whether a and b plan the same moves in the same order (mkdir steps are not compared: they depend
 * on what existed when each plan was made). */
bool kao_curate_plan_same_moves(const kao_curate_plan *a, const kao_curate_plan *b);
/* Writes the journal (see above); fails when journal_path exists. */
int kao_curate_plan_write(const kao_curate_plan *plan, const char *journal_path);
/* Reads and checks a journal; errors name the file and the line. */
int kao_curate_plan_read(kao_curate_plan *plan, const char *journal_path);
void kao_curate_plan_free(kao_curate_plan *plan);

#endif
