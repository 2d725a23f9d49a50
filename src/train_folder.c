/* train_folder.c — a kao train run's folder (rules in train_loop.h): which folder a new run may
 * use, its lock, what a failed start removes, and the temporary files a resume removes. */
#include "train_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The files kao train makes in a run folder (train_loop.h), and those of them it writes through a
 * temporary file (util.h), whose stale temporary files a resume removes. */
static const char *const run_files[] = {"config.ini", "split.tsv", "classes.txt", "metrics.csv",
                                        "train.log",  "train.lock", "best.h5",    "last.h5"};
static const char *const atomic_run_files[] = {"config.ini", "split.tsv", "classes.txt",
                                               "metrics.csv", "best.h5", "last.h5"};
#define COUNT(a) (int)(sizeof a / sizeof *a)

/* mkdir -p; *made gets the topmost folder it created (NULL: none). */
static int make_dirs(const char *path, char **made) {
    char buf[4096];
    *made = NULL;
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return kao_fail("%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p) continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0777) == 0) {
            if (!*made) *made = kao_strdup(buf);
        } else if (errno != EEXIST) {
            return kao_fail("%s: cannot create folder: %s", buf, strerror(errno));
        }
        if (!kao_is_dir(buf)) return kao_fail("%s: exists and is not a folder", buf);
        *p = c;
        if (!c) break;
    }
    return KAO_OK;
}

static bool folder_is_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return false;
    struct dirent *e;
    while ((e = readdir(d)) && (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))) continue;
    closedir(d);
    return e == NULL;
}

/* A kao run folder holds config.ini and checkpoints/ (train_loop.h). */
static bool is_run_folder(const kao_run *r) {
    char *config = kao_run_path(r, "config.ini"), *checkpoints = kao_run_path(r, "checkpoints");
    struct stat st;
    bool run = stat(config, &st) == 0 && S_ISREG(st.st_mode) && kao_is_dir(checkpoints);
    free(config);
    free(checkpoints);
    return run;
}

/* A new run's folder: created (with its parents), or an empty folder, or a run folder (whose run
 * saved no checkpoint yet, setup_new checks); a folder with other files is refused, not
 * overwritten. Then its checkpoints/. */
static int prepare_folder(kao_run *r) {
    struct stat st;
    if (stat(r->dir, &st) != 0) {
        int rc = make_dirs(r->dir, &r->made_dir);
        r->owns_dir = r->made_dir != NULL;
        if (rc) return KAO_ERR;
    } else if (!S_ISDIR(st.st_mode)) {
        return kao_fail("%s: exists and is not a folder (--out names the run folder to create)", r->dir);
    } else if (folder_is_empty(r->dir)) {
        r->owns_dir = true;
    } else if (!is_run_folder(r)) {
        return kao_fail("%s: not empty and not a kao run folder (no config.ini and checkpoints/): kao train would "
                        "overwrite its files; choose a new or empty --out", r->dir);
    }
    char *ckpt_dir = kao_run_path(r, "checkpoints");
    int rc = mkdir(ckpt_dir, 0777) != 0 && errno != EEXIST
                 ? kao_fail("%s: cannot create folder: %s", ckpt_dir, strerror(errno))
                 : KAO_OK;
    free(ckpt_dir);
    return rc;
}

/* Removes the entries of the run folder's sub-folder `name` that match, then the sub-folder (when
 * it is empty then). */
static void remove_in(const kao_run *r, const char *name, bool (*match)(const char *entry)) {
    char *dir = kao_run_path(r, name);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!match(e->d_name)) continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *path = kao_malloc(n, "path");
        snprintf(path, n, "%s/%s", dir, e->d_name);
        unlink(path);
        free(path);
    }
    if (d) closedir(d);
    rmdir(dir);
    free(dir);
}

static bool is_event_file(const char *name) { return !strncmp(name, "events.out.tfevents.", 20); }
static bool is_checkpoint(const char *name) { return !strncmp(name, "ckpt-", 5); }

void kao_run_folder_remove_failed_start(const kao_run *r) {
    for (int i = 0; i < COUNT(run_files); i++) {
        char *path = kao_run_path(r, run_files[i]);
        unlink(path);
        free(path);
    }
    remove_in(r, "tb", is_event_file);
    remove_in(r, "checkpoints", is_checkpoint);
    if (!r->made_dir) return;
    char *dir = kao_strdup(r->dir);
    for (char *slash; rmdir(dir) == 0 && strcmp(dir, r->made_dir) != 0 && (slash = strrchr(dir, '/'));)
        *slash = '\0';
    free(dir);
}

/* The temporary files that a killed kao train left in the run folder. */
static void remove_stale_temps(const kao_run *r) {
    DIR *d = opendir(r->dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        for (int i = 0; i < COUNT(atomic_run_files); i++) {
            if (!kao_is_temp_name(e->d_name, atomic_run_files[i])) continue;
            char *path = kao_run_path(r, e->d_name);
            fprintf(stderr, "removing %s (left by an interrupted write)\n", path);
            unlink(path);
            free(path);
        }
    }
    if (d) closedir(d);
}

/* One kao train per run folder at a time: an advisory lock held until the process ends. */
static int lock_run(const kao_run *r) {
    char *path = kao_run_path(r, "train.lock");
    int fd = open(path, O_CREAT | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0666);
    int rc = KAO_OK;
    if (fd < 0) rc = kao_fail("%s: cannot create lock file: %s", path, strerror(errno));
    else if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        rc = kao_fail("%s: another kao train is using this run folder", r->dir);
    free(path);
    return rc; /* the descriptor stays open (and locked) for the life of the process */
}

int kao_run_folder_new(kao_run *r) {
    if (prepare_folder(r)) return KAO_ERR;
    if (lock_run(r)) {
        r->owns_dir = false; /* another kao train works there: nothing in it is this start's to remove */
        return KAO_ERR;
    }
    return KAO_OK;
}

int kao_run_folder_resume(kao_run *r) {
    if (!kao_is_dir(r->dir)) return kao_fail("%s: no such run folder", r->dir);
    if (lock_run(r)) return KAO_ERR;
    remove_stale_temps(r);
    return KAO_OK;
}
