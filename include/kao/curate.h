/* curate.h — kao curate: find the images an identity-folder tree should not train on, and move
 * them aside, undoably.
 *
 * Two halves:
 *  - analysis (src/curate_*.c, kao curate without --apply): embeds every image, judges each one
 *    against its identity's reference and every identity against the others, and gives one
 *    kao_curate_item per image plus the identities that end up too small;
 *  - moves (src/curate_apply.c, src/curate_journal.c): --apply moves the flagged images into
 *    not_me/, same_face/, no_face/ inside their identity folder and too-small identities into
 *    _small/ beside the root, never deleting anything, with a journal of every move written (and
 *    fsynced) before the first; --undo JOURNAL puts everything back exactly.
 */
#ifndef KAO_CURATE_H
#define KAO_CURATE_H

#include <stdbool.h>

typedef enum {
    KAO_VERDICT_KEEP = 0,
    KAO_VERDICT_NOT_ME,     /* another person: moved to <identity>/not_me/ */
    KAO_VERDICT_SAME_FACE,  /* a near-duplicate of a kept image: moved to <identity>/same_face/ */
    KAO_VERDICT_NO_FACE,    /* far from every identity: moved to <identity>/no_face/ */
} kao_verdict;

/* The quarantine folder of a verdict ("not_me", "same_face", "no_face"); NULL for KAO_VERDICT_KEEP. */
const char *kao_verdict_folder(kao_verdict v);

typedef struct {
    const char *rel;        /* "identity/file.png", relative to the root */
    kao_verdict verdict;
} kao_curate_move;

/* Moves every item whose verdict is not KEEP into its quarantine folder inside its identity
 * folder (ROOT/I/F -> ROOT/I/<kao_verdict_folder>/F), and every identity named in small_identities
 * (whole folder) into the folder beside the root: "<parent of root>/_small/<identity>". Moves by
 * rename(2) only: nothing is ever deleted or overwritten (a symbolic link moves as the link).
 *
 * Everything is checked before anything moves or any journal is written, each failure one message
 * naming the path: rel must be "identity/file" and every name UTF-8 without tab or line break (the
 * journal, a UTF-8 text file, could not hold it); every source there; no destination there (a file
 * of the same name in not_me/, an existing _small/<identity>, a file where a quarantine folder
 * goes); nothing listed twice; the folders writable; _small on the root's file system (a rename
 * cannot cross file systems, and kao never copies); the journal not inside an identity folder.
 *
 * Then the journal is written at journal_path (created exclusively and whole, fsynced with its
 * folder: src/curate_journal.h has the format) holding every planned move and every folder the
 * apply will create, so that every move is on disk in it before it is made; then the moves are made
 * in order, and the file system synced (syncfs). Whether each move has happened is read from the
 * file system (its destination exists and its source does not), so a kill at any point can be
 * undone (kao_curate_undo) or finished: when journal_path exists, this call finishes the journal's
 * plan instead of starting one. root must then be the journal's, and moves and small_identities
 * either none (NULL, 0, NULL, 0: after a partial apply the analysis cannot list the same moves
 * again) or exactly the journal's (so a finished apply run again does nothing); other moves are
 * refused, so an old journal is never mistaken for a new plan. */
int kao_curate_apply(const char *root, const kao_curate_move *moves, int num_moves, char *const *small_identities,
                     int num_small, const char *journal_path);

/* Reverses every move of the journal that has happened, newest first, and removes the folders the
 * apply created, when empty (one that holds other files is kept, with a note on stderr); the tree
 * is then as before the apply, byte for byte. A tree changed since (a moved file's old name taken
 * again, a moved file gone) is refused before anything moves back. The journal is then renamed to
 * <journal>.undone (or .undone.2, ... when taken), so undoing the same path again is an error that
 * says it was undone, and the same journal path serves the next apply. */
int kao_curate_undo(const char *journal_path);

#endif
