/* kao train: fine-tune an embedding network with ArcFace (train_loop.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "kao/config.h"
#include "kao/train_loop.h"
#include "kao/util.h"

static const char *help =
    "usage: kao train --config FILE [options]\n"
    "       kao train --resume RUN_DIR [--allow-changed] [options]\n"
    "\n"
    "Fine-tunes an EfficientNetV2 embedding network with an ArcFace loss on ROOT/<identity>/<image>\n"
    "(PNG or JPEG: *.png, *.jpg, *.jpeg; data.max_image_pixels and data.exif_transpose say how they are\n"
    "decoded), validating after every epoch (ArcFace loss; verification accuracy, AUC, EER, TAR@FAR)\n"
    "and keeping best.h5 (ready for kao embed and kao export), last.h5 and checkpoints in the run folder.\n"
    "\n"
    "options:\n"
    "  --config FILE       INI config (kao train --help-config lists every key); with --resume the\n"
    "                      run's own config.ini is used unless this is given\n"
    "  --set KEY=VALUE     override one key, e.g. --set train.lr=0.001 (repeatable); --KEY VALUE too\n"
    "  --data ROOT         the data root (same as --set data.root=ROOT)\n"
    "  --follow-symlinks   follow symbolic links that lead out of the data root (same as --set\n"
    "                      data.follow_symlinks=true; without it they are skipped, as the data summary\n"
    "                      reports)\n"
    "  --init W            start from these weights (same as --set model.weights=W): ImageNet weights\n"
    "                      as downloaded (timm's model.safetensors, Keras's efficientnetv2-*.h5) or\n"
    "                      converted (kao convert, tools/convert_timm.py), or a previous run's\n"
    "                      best.h5 / last.h5 / checkpoint, whose identities' ArcFace centres are kept\n"
    "                      by name; the input normalisation they record is used (model.input_mean),\n"
    "                      and their architecture (model.name, width_mult, depth_mult; embedding_dim\n"
    "                      of an embedding head) where the config does not set it\n"
    "  --out RUN_DIR       run folder to create (default runs/<date>-<time>): a new or empty folder (a\n"
    "                      folder with other files is refused); a failed start removes what it made\n"
    "  --resume RUN_DIR    continue the run in RUN_DIR from its newest checkpoint (temporary files a\n"
    "                      killed run left there are removed)\n"
    "  --allow-changed     resume even though the config or the data set changed\n"
    "  --split FILE        use this split manifest (split.tsv of another run) instead of making one\n"
    "  --log-every N       without a terminal: one progress line every N steps (default 10)\n"
    "  --device D          cpu (default), cuda or cuda:N: where the steps and validation run (same as\n"
    "                      --set train.device=D; a GPU needs kao built with -DKAO_CUDA=ON); a run may\n"
    "                      resume on another device\n"
    "  --help-config       describe every config key\n"
    "\n"
    "Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves a checkpoint and exits; run the command\n"
    "it prints to continue. After the last epoch's last step the run finishes instead (it is complete),\n"
    "and --resume of a finished run only says so. Exit status: 0 done (or already complete), 1 error,\n"
    "2 usage error, 3 interrupted (resumable).\n";

static int usage(const char *fmt, const char *arg) { return kao_cli_usage_error("train", fmt, arg); }

int kao_cmd_train(int argc, char **argv) {
    const char *config_path = NULL, *resume = NULL, *out = NULL;
    kao_train_args a = {.log_every = 10, .command = "kao train"};
    /* Overrides are applied after the config file, in command-line order: either key and value,
     * or a "key=value" assignment (--set). */
    typedef struct {
        const char *key, *value, *assignment;
    } override;
    override *sets = kao_calloc((size_t)argc + 1, sizeof *sets, "overrides");
    int num_sets = 0, status = 2;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            fputs(help, stdout);
            status = 0;
            goto done;
        }
        if (!strcmp(opt, "--help-config")) {
            kao_config_print_help(stdout);
            status = 0;
            goto done;
        }
        if (!strcmp(opt, "--allow-changed")) {
            a.allow_changed = true;
            continue;
        }
        if (!strcmp(opt, "--follow-symlinks")) {
            sets[num_sets++] = (override){"data.follow_symlinks", "true", NULL};
            continue;
        }
        if (!has_value && opt[0] == '-') {
            usage("option '%s' needs a value, or is unknown", opt);
            goto done;
        }
        if (!strcmp(opt, "--config")) config_path = argv[++i];
        else if (!strcmp(opt, "--resume")) resume = argv[++i];
        else if (!strcmp(opt, "--out")) out = argv[++i];
        else if (!strcmp(opt, "--split")) a.split_path = argv[++i];
        else if (!strcmp(opt, "--device")) sets[num_sets++] = (override){"train.device", argv[++i], NULL};
        else if (!strcmp(opt, "--set")) sets[num_sets++] = (override){.assignment = argv[++i]};
        else if (!strcmp(opt, "--data")) sets[num_sets++] = (override){"data.root", argv[++i], NULL};
        else if (!strcmp(opt, "--init")) sets[num_sets++] = (override){"model.weights", argv[++i], NULL};
        else if (!strcmp(opt, "--log-every")) {
            if (!kao_cli_parse_int(argv[++i], 1, 1000000000, &a.log_every)) {
                usage("--log-every wants a positive integer, got '%s'", argv[i]);
                goto done;
            }
        } else if (!strncmp(opt, "--", 2) && kao_config_has_key(opt + 2)) {
            sets[num_sets++] = (override){opt + 2, argv[i + 1], NULL};
            i++;
        } else {
            usage("unknown option '%s'", opt);
            goto done;
        }
    }
    if (!config_path && !resume) {
        usage("needs --config FILE (or --resume RUN_DIR)%s", "");
        goto done;
    }
    if (resume && (out || a.split_path)) {
        usage("--resume continues RUN_DIR in place: --out and --split do not apply%s", "");
        goto done;
    }
    if (a.allow_changed && !resume) {
        usage("--allow-changed applies to --resume only%s", "");
        goto done;
    }

    status = 1;
    kao_config_defaults(&a.config);
    char resume_config[4200];
    if (resume && !config_path) {
        snprintf(resume_config, sizeof resume_config, "%s/config.ini", resume);
        if (!kao_file_exists(resume_config)) {
            kao_fail("%s: not a kao run folder (no config.ini)", resume);
            status = kao_cli_report_error();
            goto done;
        }
        config_path = resume_config;
    }
    if (kao_config_load(&a.config, config_path)) {
        status = kao_cli_report_error();
        goto done;
    }
    for (int k = 0; k < num_sets; k++) {
        int rc = sets[k].assignment ? kao_config_set_assignment(&a.config, sets[k].assignment, "--set")
                                    : kao_config_set(&a.config, sets[k].key, sets[k].value, "command line");
        if (rc) {
            status = kao_cli_report_error();
            goto done;
        }
    }
    char default_out[64];
    if (!resume && !out) {
        time_t now = time(NULL);
        strftime(default_out, sizeof default_out, "runs/%Y%m%d-%H%M%S", localtime(&now));
        out = default_out;
    }
    a.run_dir = resume ? resume : out;
    a.resume = resume != NULL;
    a.progress_bar = isatty(fileno(stderr));
    kao_cli_set_threads(a.config.train.threads);
    int rc = kao_train_run(&a);
    if (rc == KAO_ERR) status = kao_cli_report_error();
    else status = rc == KAO_TRAIN_INTERRUPTED ? 3 : 0;
done:
    free(sets);
    return status;
}
