/* kao — face-recognition embedding training. One program, one subcommand per job. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", kao_cmd_train, "fine-tune an embedding network with ArcFace: validation, early stopping, resume"},
    {"embed", kao_cmd_embed, "compute face embeddings of PNG or JPEG images with a weights file"},
    {"info", kao_cmd_info, "describe a weights file: architecture, parameters, mismatches"},
    {"export", kao_cmd_export, "write the network as an ONNX model; --check inspects one"},
    {"convert", kao_cmd_convert, "rewrite timm safetensors or Keras .h5 weights as a sealed kao weights file"},
    {"bench", kao_cmd_bench, "measure images/s of inference or training steps (see scripts/bench.sh)"},
    {"verify", kao_cmd_verify, "same-person decisions and ROC/EER metrics over pairs of face images"},
    {"curate", kao_cmd_curate, "flag other people, near-duplicates and non-faces in a data set; move them aside"},
};

static void usage(FILE *out) {
    fprintf(out, "kao %s — face-recognition embedding training (EfficientNetV2 + ArcFace)\n\n"
                 "usage: kao <command> [options]   (kao <command> --help for its options)\n\ncommands:\n",
            KAO_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("kao %s\n", KAO_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kao: error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
