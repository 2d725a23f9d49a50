/* curate_apply.c — kao curate --apply and --undo (curate.h): carries out a plan
 * (curate_journal.h) by rename(2) alone, finishes one that was interrupted, and reverses one.
 *
 * Where every move stands is read from the file system: a move has happened iff its destination
 * exists and its source does not (a rename is atomic, so a kill leaves each file at exactly one of
 * the two). The image moves of an identity that also moves to _small are looked for in that
 * identity's present home (ROOT/I, or PARENT/_small/I once it has moved), so this holds at any
 * point of an apply or an undo, in whatever order their renames reached the disk. Both places or
 * neither taken means the tree changed behind kao's back: an error before anything moves.
 *
 * apply, journal path free: the plan comes from the arguments; a mkdir step goes before the first
 * move into each quarantine folder (and _small) that does not exist yet, so that undo removes those
 * and no other; every source must be there, no destination, the folders writable and _small on the
 * root's file system (a rename cannot cross file systems, and kao never copies and deletes); then
 * the journal is written whole, then the steps run in order.
 * apply, journal path taken: the journal's plan is finished (what is not yet moved is moved). The
 * moves given must then be none (NULL, 0: the caller cannot list the same moves again once some are
 * made, the analysis would see another tree) or exactly the journal's; anything else is refused, so
 * an old journal is never taken for a new plan.
 * undo: the moves made are reversed newest first, the folders the plan created removed if empty,
 * and the journal renamed to <journal>.undone (.undone.2, ... when taken): a second undo of the
 * same path is an error that says it was undone.
 * Renames use RENAME_NOREPLACE, so nothing is ever overwritten; nothing is deleted. Both end with
 * syncfs of the tree's file system: the moves are on disk when they return.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "curate_journal.h"
#include "kao/curate.h"
#include "kao/files.h"
#include "kao/util.h"

typedef enum { AT_SOURCE, AT_DESTINATION, AT_BOTH, AT_NEITHER } move_state;

typedef struct {
    char src[PATH_MAX]; /* a move's source; "" for a mkdir */
    char dst[PATH_MAX]; /* a move's destination, a mkdir's folder */
} step_paths;

static bool present(const char *path) {
    struct stat st;
    /* An entry that cannot be looked at (EACCES) counts as there: never a place to move to. */
    return lstat(path, &st) == 0 || errno != ENOENT;
}

static int join(char *out, const char *folder, const char *name) {
    if ((size_t)snprintf(out, PATH_MAX, "%s/%s", folder, name) >= PATH_MAX)
        return kao_fail("%s/%s: path too long", folder, name);
    return KAO_OK;
}

/* PARENT/_small/<name>, or PARENT/_small itself for name NULL. */
static int small_path(char *out, const kao_curate_plan *p, const char *name) {
    if (!name) return join(out, p->parent, KAO_SMALL_FOLDER);
    char small[PATH_MAX];
    return small_path(small, p, NULL) || join(out, small, name) ? KAO_ERR : KAO_OK;
}

/* ROOT/I, or PARENT/_small/I when the plan moves I there and it is there now. */
static int identity_home(char *out, const kao_curate_plan *p, const kao_curate_step *s) {
    if (join(out, p->root, s->identity)) return KAO_ERR;
    if (!s->identity_moves || present(out)) return KAO_OK;
    char moved[PATH_MAX];
    if (small_path(moved, p, s->identity)) return KAO_ERR;
    if (present(moved)) memcpy(out, moved, PATH_MAX);
    return KAO_OK;
}

/* The paths of step s as the tree is now. */
static int paths_of(step_paths *sp, const kao_curate_plan *p, const kao_curate_step *s) {
    char home[PATH_MAX], folder[PATH_MAX];
    sp->src[0] = '\0';
    switch (s->kind) {
    case KAO_CURATE_STEP_MKDIR: return identity_home(home, p, s) || join(sp->dst, home, s->folder) ? KAO_ERR : KAO_OK;
    case KAO_CURATE_STEP_MKDIR_SMALL: return small_path(sp->dst, p, NULL);
    case KAO_CURATE_STEP_MOVE:
        return identity_home(home, p, s) || join(sp->src, home, s->file) || join(folder, home, s->folder) ||
                       join(sp->dst, folder, s->file)
                   ? KAO_ERR
                   : KAO_OK;
    case KAO_CURATE_STEP_MOVE_IDENTITY:
        return join(sp->src, p->root, s->identity) || small_path(sp->dst, p, s->identity) ? KAO_ERR : KAO_OK;
    }
    return KAO_ERR;
}

static bool is_move(const kao_curate_step *s) {
    return s->kind == KAO_CURATE_STEP_MOVE || s->kind == KAO_CURATE_STEP_MOVE_IDENTITY;
}

static move_state state_of(const step_paths *sp) {
    bool src = present(sp->src), dst = present(sp->dst);
    return src && !dst ? AT_SOURCE : dst && !src ? AT_DESTINATION : src ? AT_BOTH : AT_NEITHER;
}

/* The error for a move of a journal that is neither made nor still to make. */
static int state_error(const step_paths *sp, move_state state, const char *journal) {
    if (state == AT_BOTH)
        return kao_fail("%s: both %s and %s exist: the tree changed since the journal was written; move one "
                        "of them away",
                        journal, sp->src, sp->dst);
    return kao_fail("%s: %s is missing, and is not at %s either: the tree changed since the journal was written",
                    journal, sp->src, sp->dst);
}

/* Every move of a journal's plan is either made or still to make. */
static int check_states(const kao_curate_plan *p, const char *journal) {
    for (int i = 0; i < p->num_steps; i++) {
        step_paths sp;
        if (!is_move(&p->steps[i])) continue;
        if (paths_of(&sp, p, &p->steps[i])) return KAO_ERR;
        move_state state = state_of(&sp);
        if (state == AT_BOTH || state == AT_NEITHER) return state_error(&sp, state, journal);
    }
    return KAO_OK;
}

/* out = the folder that holds path ("/x" -> "/"); out may be path. */
static void folder_of(char *out, const char *path) {
    if (out != path) snprintf(out, PATH_MAX, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash) slash[slash == out] = '\0';
}

/* A fresh move: src can be renamed to dst (src's folder writable, dst's folder, or the folder that
 * will hold it, writable and on src's file system). */
static int check_movable(const char *src, const struct stat *src_st, const char *dst) {
    char from[PATH_MAX], to[PATH_MAX];
    struct stat st;
    folder_of(from, src);
    folder_of(to, dst);
    while (stat(to, &st) != 0 && strcmp(to, "/") != 0) folder_of(to, to); /* a quarantine folder to create */
    if (access(from, W_OK | X_OK) != 0) return kao_fail("%s: cannot move files out of it: %s", from, strerror(errno));
    if (access(to, W_OK | X_OK) != 0) return kao_fail("%s: cannot move files into it: %s", to, strerror(errno));
    if (st.st_dev != src_st->st_dev)
        return kao_fail("%s: cannot be moved to %s: another file system (kao moves by renaming and never copies); "
                        "keep the root and the folder that holds it on one file system",
                        src, dst);
    return KAO_OK;
}

/* Before the journal is written: every source there, every destination free. */
static int check_fresh(const kao_curate_plan *p) {
    for (int i = 0; i < p->num_steps; i++) {
        const kao_curate_step *s = &p->steps[i];
        step_paths sp;
        struct stat st;
        if (!is_move(s)) continue;
        if (paths_of(&sp, p, s)) return KAO_ERR;
        if (lstat(sp.src, &st) != 0) return kao_fail("%s: cannot be moved: %s", sp.src, strerror(errno));
        if (s->kind == KAO_CURATE_STEP_MOVE && S_ISDIR(st.st_mode))
            return kao_fail("%s: a folder, not an image", sp.src);
        if (s->kind == KAO_CURATE_STEP_MOVE_IDENTITY && !kao_is_dir(sp.src))
            return kao_fail("%s: not an identity folder", sp.src);
        if (present(sp.dst))
            return kao_fail("%s: exists already, so %s cannot be moved there (kao never overwrites); move it away "
                            "first",
                            sp.dst, sp.src);
        if (check_movable(sp.src, &st, sp.dst)) return KAO_ERR;
    }
    return KAO_OK;
}

/* Adds a mkdir step for folder (or _small) to out when it does not exist yet. */
static int add_mkdir_if_missing(kao_curate_plan *out, kao_curate_step_kind kind, const char *identity,
                                const char *folder) {
    kao_curate_step s = {.kind = kind, .identity = (char *)identity, .folder = folder};
    step_paths sp;
    struct stat st;
    if (paths_of(&sp, out, &s)) return KAO_ERR;
    if (lstat(sp.dst, &st) != 0) {
        kao_curate_plan_add(out, kind, identity, NULL, folder);
        return KAO_OK;
    }
    return S_ISDIR(st.st_mode) ? KAO_OK
                               : kao_fail("%s: exists and is not a folder, so nothing can be moved into it", sp.dst);
}

/* The quarantine folders used by the moves of the identity whose first move is steps[first]. */
static int add_identity_mkdirs(kao_curate_plan *out, const kao_curate_plan *p, int first) {
    const char *identity = p->steps[first].identity;
    for (kao_verdict v = KAO_VERDICT_NOT_ME; v <= KAO_VERDICT_NO_FACE; v++) {
        const char *folder = kao_verdict_folder(v);
        bool used = false;
        for (int i = first;
             i < p->num_steps && p->steps[i].kind == KAO_CURATE_STEP_MOVE && !strcmp(p->steps[i].identity, identity);
             i++)
            used |= !strcmp(p->steps[i].folder, folder);
        if (used && add_mkdir_if_missing(out, KAO_CURATE_STEP_MKDIR, identity, folder)) return KAO_ERR;
    }
    return KAO_OK;
}

/* p with a mkdir step before the first move into each folder that the apply must create. */
static int add_mkdir_steps(kao_curate_plan *p) {
    kao_curate_plan out = {kao_strdup(p->root), kao_strdup(p->parent), NULL, 0};
    int rc = KAO_OK;
    for (int i = 0; i < p->num_steps && rc == KAO_OK; i++) {
        const kao_curate_step *s = &p->steps[i], *prev = i ? &p->steps[i - 1] : NULL;
        bool first = !prev || prev->kind != s->kind || strcmp(prev->identity, s->identity) != 0;
        if (first && s->kind == KAO_CURATE_STEP_MOVE) rc = add_identity_mkdirs(&out, p, i);
        if (s->kind == KAO_CURATE_STEP_MOVE_IDENTITY && (!prev || prev->kind != s->kind))
            rc = add_mkdir_if_missing(&out, KAO_CURATE_STEP_MKDIR_SMALL, NULL, NULL);
        kao_curate_plan_add(&out, s->kind, s->identity, s->file, s->folder);
    }
    kao_curate_plan_mark_identity_moves(&out);
    kao_curate_plan_free(p);
    *p = out;
    return rc;
}

static int rename_new(const char *from, const char *to) {
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return KAO_OK;
    return kao_fail("cannot move %s to %s: %s", from, to, strerror(errno));
}

static int step_forward(const kao_curate_plan *p, const kao_curate_step *s, const char *journal) {
    step_paths sp;
    if (paths_of(&sp, p, s)) return KAO_ERR;
    if (!is_move(s)) {
        if (mkdir(sp.dst, 0777) == 0 || (errno == EEXIST && kao_is_dir(sp.dst))) return KAO_OK;
        return kao_fail("%s: cannot create the folder: %s", sp.dst, strerror(errno));
    }
    move_state state = state_of(&sp);
    if (state == AT_DESTINATION) return KAO_OK; /* made before the apply was interrupted */
    return state == AT_SOURCE ? rename_new(sp.src, sp.dst) : state_error(&sp, state, journal);
}

static int step_back(const kao_curate_plan *p, const kao_curate_step *s, const char *journal) {
    step_paths sp;
    if (paths_of(&sp, p, s)) return KAO_ERR;
    if (!is_move(s)) {
        if (rmdir(sp.dst) == 0 || errno == ENOENT) return KAO_OK;
        if (errno != ENOTEMPTY && errno != EEXIST)
            return kao_fail("%s: cannot remove the folder --apply created: %s", sp.dst, strerror(errno));
        fprintf(stderr, "note: kept %s: it holds files that the journal did not move there\n", sp.dst);
        return KAO_OK;
    }
    move_state state = state_of(&sp);
    if (state == AT_SOURCE) return KAO_OK; /* never made: the apply was interrupted before it */
    return state == AT_DESTINATION ? rename_new(sp.dst, sp.src) : state_error(&sp, state, journal);
}

static int sync_tree(const char *root) {
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd) != 0) {
        int err = errno;
        if (fd >= 0) close(fd);
        return kao_fail("%s: cannot flush the moves to disk: %s", root, strerror(err));
    }
    close(fd);
    return KAO_OK;
}

/* Runs the plan forward (apply) or backward (undo); a failure in between says the journal holds
 * what was done. */
static int run(const kao_curate_plan *p, const char *journal, bool forward) {
    for (int k = 0; k < p->num_steps; k++) {
        const kao_curate_step *s = &p->steps[forward ? k : p->num_steps - 1 - k];
        if ((forward ? step_forward : step_back)(p, s, journal) == KAO_OK) continue;
        char message[2048];
        snprintf(message, sizeof message, "%s", kao_last_error());
        return kao_fail("%s (%s stopped; the journal %s knows what was moved: %s once this is solved)", message,
                        forward ? "--apply" : "--undo", journal,
                        forward ? "apply it again, or undo it," : "undo it again");
    }
    return sync_tree(p->root);
}

/* The journal must not lie where the apply moves folders: inside an identity folder. */
static int check_journal_place(const char *journal, const char *root_real) {
    char folder[PATH_MAX];
    if (kao_check_parent_dir(journal)) return KAO_ERR;
    folder_of(folder, journal);
    char *real = realpath(strchr(journal, '/') ? folder : ".", NULL);
    bool inside = real && strcmp(real, root_real) != 0 && kao_path_inside(root_real, real);
    free(real);
    if (inside)
        return kao_fail("%s: the journal cannot be inside an identity folder of %s (--apply may move it); write it "
                        "elsewhere",
                        journal, root_real);
    return KAO_OK;
}

static int start(const char *root_real, const kao_curate_move *moves, int num_moves, char *const *small, int num_small,
                 const char *journal) {
    kao_curate_plan plan;
    int rc = kao_curate_plan_from_moves(&plan, root_real, moves, num_moves, small, num_small);
    if (rc == KAO_OK) rc = check_journal_place(journal, root_real);
    if (rc == KAO_OK) rc = add_mkdir_steps(&plan);
    if (rc == KAO_OK) rc = check_fresh(&plan);
    if (rc == KAO_OK) rc = kao_curate_plan_write(&plan, journal);
    if (rc == KAO_OK) rc = run(&plan, journal, true);
    kao_curate_plan_free(&plan);
    return rc;
}

static int finish(const char *root_real, const kao_curate_move *moves, int num_moves, char *const *small, int num_small,
                  const char *journal) {
    kao_curate_plan plan, given = {0};
    int rc = kao_curate_plan_read(&plan, journal);
    if (rc == KAO_OK && strcmp(plan.root, root_real) != 0)
        rc = kao_fail("%s: the journal of %s, not of %s", journal, plan.root, root_real);
    if (rc == KAO_OK && num_moves + num_small > 0) {
        rc = kao_curate_plan_from_moves(&given, root_real, moves, num_moves, small, num_small);
        if (rc == KAO_OK && !kao_curate_plan_same_moves(&plan, &given))
            rc = kao_fail("%s: exists already, with other moves: finish it (apply it again without moves) or undo "
                          "it, or write the new journal elsewhere",
                          journal);
    }
    if (rc == KAO_OK) rc = check_states(&plan, journal);
    if (rc == KAO_OK) rc = run(&plan, journal, true);
    kao_curate_plan_free(&given);
    kao_curate_plan_free(&plan);
    return rc;
}

int kao_curate_apply(const char *root, const kao_curate_move *moves, int num_moves, char *const *small_identities,
                     int num_small, const char *journal_path) {
    char *root_real = realpath(root, NULL);
    if (!root_real) return kao_fail("%s: cannot open the identity folder tree: %s", root, strerror(errno));
    const char *name = strrchr(root_real, '/') + 1;
    int rc = KAO_OK;
    if (!kao_is_dir(root_real))
        rc = kao_fail("%s: not a folder", root);
    else if (!strcmp(name, KAO_SMALL_FOLDER))
        rc = kao_fail("%s: a root named %s would be its own quarantine of small identities; rename it", root,
                      KAO_SMALL_FOLDER);
    else if (present(journal_path))
        rc = finish(root_real, moves, num_moves, small_identities, num_small, journal_path);
    else
        rc = start(root_real, moves, num_moves, small_identities, num_small, journal_path);
    free(root_real);
    return rc;
}

/* Renames the journal to <journal>.undone, or .undone.2, ...: whichever is free. */
static int set_aside(const char *journal) {
    char name[PATH_MAX + 16];
    for (int k = 1; k < 1000; k++) {
        if (k == 1)
            snprintf(name, sizeof name, "%s.undone", journal);
        else
            snprintf(name, sizeof name, "%s.undone.%d", journal, k);
        if (renameat2(AT_FDCWD, journal, AT_FDCWD, name, RENAME_NOREPLACE) == 0) {
            kao_fsync_folder_of(name);
            return KAO_OK;
        }
        if (errno != EEXIST) return kao_fail("%s: cannot rename it to %s: %s", journal, name, strerror(errno));
    }
    return kao_fail("%s: cannot rename it: %s.undone up to .undone.999 exist", journal, journal);
}

int kao_curate_undo(const char *journal_path) {
    char undone[PATH_MAX + 16];
    snprintf(undone, sizeof undone, "%s.undone", journal_path);
    if (!present(journal_path) && present(undone))
        return kao_fail("%s: no such journal: undone already (%s is what it was)", journal_path, undone);
    kao_curate_plan plan;
    int rc = kao_curate_plan_read(&plan, journal_path);
    if (rc == KAO_OK) rc = check_states(&plan, journal_path);
    if (rc == KAO_OK) rc = run(&plan, journal_path, false);
    if (rc == KAO_OK) rc = set_aside(journal_path);
    kao_curate_plan_free(&plan);
    return rc;
}
