/* curate_journal.c — kao curate --apply's plan (curate_journal.h): built from the analysis's moves,
 * written as a journal file, read back and checked; and kao_verdict_folder (curate.h). */
#include "curate_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kao/files.h"
#include "kao/util.h"

#define JOURNAL_MAGIC "kao curate journal"
#define JOURNAL_VERSION 1

const char *kao_verdict_folder(kao_verdict v) {
    switch (v) {
    case KAO_VERDICT_NOT_ME: return "not_me";
    case KAO_VERDICT_SAME_FACE: return "same_face";
    case KAO_VERDICT_NO_FACE: return "no_face";
    default: return NULL;
    }
}

/* kao_verdict_folder's own string for a folder name read from a journal; NULL if it is none. */
static const char *known_folder(const char *name) {
    for (kao_verdict v = KAO_VERDICT_NOT_ME; v <= KAO_VERDICT_NO_FACE; v++)
        if (!strcmp(name, kao_verdict_folder(v))) return kao_verdict_folder(v);
    return NULL;
}

/* Why name cannot be one path component of the journal; NULL when it can. */
static const char *name_problem(const char *name) {
    if (!*name || !strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/'))
        return "not a single file or folder name";
    if (strpbrk(name, "\t\n\r"))
        return "a name with a tab or line break cannot be written in the curate journal; rename it";
    if (!kao_valid_utf8(name)) return "a name that is not UTF-8 cannot be written in the curate journal; rename it";
    return NULL;
}

/* Why the absolute path root cannot head a journal; NULL when it can. */
static const char *root_problem(const char *root) {
    if (root[0] != '/' || !root[1]) return "expected an absolute folder other than /";
    char *copy = kao_strdup(root + 1);
    const char *problem = NULL;
    for (char *part = copy, *next; part && !problem; part = next) {
        next = strchr(part, '/');
        if (next) *next++ = '\0';
        problem = name_problem(part);
    }
    free(copy);
    return problem;
}

static void set_root(kao_curate_plan *plan, const char *root) {
    plan->root = kao_strdup(root);
    plan->parent = kao_strdup(root);
    *strrchr(plan->parent, '/') = '\0'; /* "/faces" -> "": joined paths then start with "/" */
}

void kao_curate_plan_add(kao_curate_plan *plan, kao_curate_step_kind kind, const char *identity, const char *file,
                         const char *folder) {
    plan->steps = kao_realloc(plan->steps, (size_t)(plan->num_steps + 1) * sizeof *plan->steps, "curate plan");
    plan->steps[plan->num_steps++] =
        (kao_curate_step){kind, identity ? kao_strdup(identity) : NULL, file ? kao_strdup(file) : NULL, folder, false};
}

/* Splits rel ("identity/file") into a new move step; the problem in *problem when it cannot. */
static void add_rel_move(kao_curate_plan *plan, const char *rel, const char *folder, const char **problem) {
    const char *slash = strchr(rel, '/');
    if (!slash) {
        *problem = "expected <identity>/<file>";
        return;
    }
    char *identity = kao_strdup(rel);
    identity[slash - rel] = '\0';
    const char *file = slash + 1;
    *problem = name_problem(identity);
    if (!*problem) *problem = name_problem(file);
    if (!*problem) kao_curate_plan_add(plan, KAO_CURATE_STEP_MOVE, identity, file, folder);
    free(identity);
}

static int compare_str(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : ""); }

/* Move steps by kind (image moves before identity moves), identity, file. */
static int compare_moves(const kao_curate_step *a, const kao_curate_step *b) {
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    int c = compare_str(a->identity, b->identity);
    return c ? c : compare_str(a->file, b->file);
}
static int compare_steps(const void *a, const void *b) { return compare_moves(a, b); }
static int compare_step_ptrs(const void *a, const void *b) {
    return compare_moves(*(const kao_curate_step *const *)a, *(const kao_curate_step *const *)b);
}

/* A file or identity moved twice would leave the second move nothing to move: refused. */
static int check_unique(const kao_curate_plan *plan, const char *where) {
    const kao_curate_step **moves = kao_malloc((size_t)plan->num_steps * sizeof *moves + 1, "curate plan");
    int n = 0;
    for (int i = 0; i < plan->num_steps; i++)
        if (plan->steps[i].kind == KAO_CURATE_STEP_MOVE || plan->steps[i].kind == KAO_CURATE_STEP_MOVE_IDENTITY)
            moves[n++] = &plan->steps[i];
    qsort(moves, (size_t)n, sizeof *moves, compare_step_ptrs);
    int rc = KAO_OK;
    for (int i = 1; i < n && rc == KAO_OK; i++) {
        const kao_curate_step *s = moves[i];
        if (compare_moves(moves[i - 1], s) == 0)
            rc = kao_fail("%s: %s/%s%s%s is listed twice", where, plan->root, s->identity, s->file ? "/" : "",
                          s->file ? s->file : "");
    }
    free(moves);
    return rc;
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void kao_curate_plan_mark_identity_moves(kao_curate_plan *plan) {
    char **moved = kao_malloc((size_t)plan->num_steps * sizeof *moved + 1, "curate plan");
    int n = 0;
    for (int i = 0; i < plan->num_steps; i++)
        if (plan->steps[i].kind == KAO_CURATE_STEP_MOVE_IDENTITY) moved[n++] = plan->steps[i].identity;
    qsort(moved, (size_t)n, sizeof *moved, compare_names);
    for (int i = 0; i < plan->num_steps; i++) {
        kao_curate_step *s = &plan->steps[i];
        if (s->kind == KAO_CURATE_STEP_MKDIR || s->kind == KAO_CURATE_STEP_MOVE)
            s->identity_moves = bsearch(&s->identity, moved, (size_t)n, sizeof *moved, compare_names) != NULL;
    }
    free(moved);
}

/* The steps of the arguments, unsorted; fails naming the first bad one. */
static int add_argument_moves(kao_curate_plan *plan, const kao_curate_move *moves, int num_moves,
                              char *const *small_identities, int num_small) {
    for (int i = 0; i < num_moves; i++) {
        if (moves[i].verdict == KAO_VERDICT_KEEP) continue;
        const char *folder = kao_verdict_folder(moves[i].verdict), *problem = "unknown verdict";
        if (folder) add_rel_move(plan, moves[i].rel, folder, &problem);
        if (problem) return kao_fail("%s/%s: cannot be moved: %s", plan->root, moves[i].rel, problem);
    }
    for (int i = 0; i < num_small; i++) {
        const char *problem = name_problem(small_identities[i]);
        if (problem) return kao_fail("%s/%s: cannot be moved: %s", plan->root, small_identities[i], problem);
        kao_curate_plan_add(plan, KAO_CURATE_STEP_MOVE_IDENTITY, small_identities[i], NULL, NULL);
    }
    return KAO_OK;
}

int kao_curate_plan_from_moves(kao_curate_plan *plan, const char *root_real, const kao_curate_move *moves,
                               int num_moves, char *const *small_identities, int num_small) {
    *plan = (kao_curate_plan){0};
    const char *problem = root_problem(root_real);
    if (problem) return kao_fail("%s: cannot be curated: %s", root_real, problem);
    set_root(plan, root_real);
    int rc = add_argument_moves(plan, moves, num_moves, small_identities, num_small);
    if (rc == KAO_OK && plan->num_steps)
        qsort(plan->steps, (size_t)plan->num_steps, sizeof *plan->steps, compare_steps);
    if (rc == KAO_OK) rc = check_unique(plan, "moves");
    if (rc == KAO_OK) kao_curate_plan_mark_identity_moves(plan);
    return rc;
}

bool kao_curate_plan_same_moves(const kao_curate_plan *a, const kao_curate_plan *b) {
    int i = 0, j = 0;
    for (;; i++, j++) {
        while (i < a->num_steps && a->steps[i].kind != KAO_CURATE_STEP_MOVE &&
               a->steps[i].kind != KAO_CURATE_STEP_MOVE_IDENTITY)
            i++;
        while (j < b->num_steps && b->steps[j].kind != KAO_CURATE_STEP_MOVE &&
               b->steps[j].kind != KAO_CURATE_STEP_MOVE_IDENTITY)
            j++;
        if (i == a->num_steps || j == b->num_steps) return i == a->num_steps && j == b->num_steps;
        if (compare_moves(&a->steps[i], &b->steps[j]) || compare_str(a->steps[i].folder, b->steps[j].folder))
            return false;
    }
}

static void write_step(FILE *f, const kao_curate_step *s) {
    switch (s->kind) {
    case KAO_CURATE_STEP_MKDIR: fprintf(f, "mkdir\t%s\t%s\n", s->identity, s->folder); break;
    case KAO_CURATE_STEP_MKDIR_SMALL: fputs("mkdir-small\n", f); break;
    case KAO_CURATE_STEP_MOVE: fprintf(f, "move\t%s/%s\t%s\n", s->identity, s->file, s->folder); break;
    case KAO_CURATE_STEP_MOVE_IDENTITY: fprintf(f, "move-identity\t%s\n", s->identity); break;
    }
}

/* Puts the finished temporary file at path: RENAME_NOREPLACE creates the journal exclusively, as
 * O_EXCL would, and whole: a kill while it was being written leaves only the temporary file. */
static int place_journal(const char *temp, const char *path) {
    if (renameat2(AT_FDCWD, temp, AT_FDCWD, path, RENAME_NOREPLACE) != 0) {
        int err = errno;
        kao_discard_file(temp);
        return kao_fail("%s: cannot create the curate journal: %s", path, strerror(err));
    }
    if (kao_fsync_folder_of(path) != 0)
        return kao_fail("%s: cannot flush the curate journal's folder to disk: %s", path, strerror(errno));
    return KAO_OK;
}

int kao_curate_plan_write(const kao_curate_plan *plan, const char *path) {
    char temp[4096];
    int fd = kao_temp_create(temp, sizeof temp, path);
    if (fd < 0) return KAO_ERR;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        kao_discard_file(temp);
        return kao_fail("%s: cannot write the curate journal: %s", path, strerror(errno));
    }
    fprintf(f, "%s %d\nroot\t%s\n", JOURNAL_MAGIC, JOURNAL_VERSION, plan->root);
    for (int i = 0; i < plan->num_steps; i++) write_step(f, &plan->steps[i]);
    fputs("end\n", f);
    bool ok = fflush(f) == 0 && !ferror(f) && fsync(fd) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) ok = false, err = errno;
    if (!ok) {
        kao_discard_file(temp);
        return kao_fail("%s: cannot write the curate journal: %s", path, strerror(err));
    }
    return place_journal(temp, path);
}

/* Splits line at tabs into at most max fields; the number of fields. */
static int split_fields(char *line, char **fields, int max) {
    int n = 0;
    for (char *p = line; p && n < max + 1; n++) {
        if (n < max) fields[n] = p;
        p = strchr(p, '\t');
        if (p) *p++ = '\0';
    }
    return n;
}

/* One step line; the problem in *problem when it is not one. */
static void parse_step(kao_curate_plan *plan, char *line, const char **problem) {
    char *f[3];
    int n = split_fields(line, f, 3);
    const char *folder = n == 3 ? known_folder(f[2]) : NULL;
    *problem = NULL;
    if (!strcmp(f[0], "mkdir") && folder) {
        *problem = name_problem(f[1]);
        if (!*problem) kao_curate_plan_add(plan, KAO_CURATE_STEP_MKDIR, f[1], NULL, folder);
    } else if (!strcmp(f[0], "mkdir-small") && n == 1) {
        kao_curate_plan_add(plan, KAO_CURATE_STEP_MKDIR_SMALL, NULL, NULL, NULL);
    } else if (!strcmp(f[0], "move") && folder) {
        add_rel_move(plan, f[1], folder, problem);
    } else if (!strcmp(f[0], "move-identity") && n == 2) {
        *problem = name_problem(f[1]);
        if (!*problem) kao_curate_plan_add(plan, KAO_CURATE_STEP_MOVE_IDENTITY, f[1], NULL, NULL);
    } else {
        *problem = "expected a step: mkdir, mkdir-small, move or move-identity with its fields";
    }
}

/* The first two lines: the format and version, and the root. */
static int parse_header(kao_curate_plan *plan, char *line, long number, const char *path) {
    char want[64];
    snprintf(want, sizeof want, "%s %d", JOURNAL_MAGIC, JOURNAL_VERSION);
    if (number == 1 && strcmp(line, want) != 0)
        return !strncmp(line, JOURNAL_MAGIC " ", sizeof JOURNAL_MAGIC)
                   ? kao_fail("%s: a curate journal of format '%s'; this kao reads '%s'", path, line, want)
                   : kao_fail("%s: not a kao curate journal (its first line is not '%s')", path, want);
    if (number == 1) return KAO_OK;
    char *f[2];
    const char *problem = split_fields(line, f, 2) == 2 && !strcmp(f[0], "root") ? root_problem(f[1])
                                                                                 : "expected root<TAB>/absolute/path";
    if (problem) return kao_fail("%s:2: %s", path, problem);
    set_root(plan, f[1]);
    return KAO_OK;
}

static int parse_lines(kao_curate_plan *plan, FILE *f, const char *path) {
    char *line = kao_malloc(KAO_MAX_LINE, "curate journal line");
    int rc = KAO_OK;
    bool ended = false;
    long number = 0, len;
    while (rc == KAO_OK && (len = kao_read_line(f, line, KAO_MAX_LINE)) != -1) {
        const char *problem = NULL;
        number++;
        if (len == -2)
            rc = kao_fail("%s:%ld: line longer than %d bytes", path, number, KAO_MAX_LINE);
        else if ((size_t)len != strlen(line))
            problem = "a NUL byte in the line";
        else if (ended)
            problem = "text after the end line";
        else if (number <= 2)
            rc = parse_header(plan, line, number, path);
        else if (!strcmp(line, "end"))
            ended = true;
        else
            parse_step(plan, line, &problem);
        if (problem) rc = kao_fail("%s:%ld: %s", path, number, problem);
    }
    if (rc == KAO_OK && ferror(f)) rc = kao_fail("%s: cannot read the curate journal: %s", path, strerror(errno));
    if (rc == KAO_OK && !ended)
        rc = kao_fail("%s: not a whole kao curate journal: no end line (%ld lines)", path, number);
    free(line);
    return rc;
}

int kao_curate_plan_read(kao_curate_plan *plan, const char *path) {
    *plan = (kao_curate_plan){0};
    FILE *f = kao_fopen_regular(path, "curate journal");
    if (!f) return KAO_ERR;
    int rc = parse_lines(plan, f, path);
    fclose(f);
    if (rc == KAO_OK) rc = check_unique(plan, path);
    if (rc == KAO_OK) kao_curate_plan_mark_identity_moves(plan);
    return rc;
}

void kao_curate_plan_free(kao_curate_plan *plan) {
    for (int i = 0; i < plan->num_steps; i++) {
        free(plan->steps[i].identity);
        free(plan->steps[i].file);
    }
    free(plan->steps);
    free(plan->root);
    free(plan->parent);
    *plan = (kao_curate_plan){0};
}
