/* onnx_embed_example.c — a `kao export` ONNX model through onnxruntime's C API (docs/deploy.md).
 *
 * Reads the model's metadata (signature, kao.input_size, the thresholds), runs one image at a time
 * and prints the cosine similarity of every pair with the decision at kao.threshold, in the form of
 * kao verify's lines. To stay short it takes images already preprocessed: a file of N x 3 x H x W
 * float32 values (NCHW, RGB, normalised with kao.mean / kao.std), as
 * `python tools/onnx_embed_example.py --save-input F.f32` writes it; in an application that step
 * is the decoder plus PIL-bilinear resize plus (x/255 - mean)/std of docs/deploy.md.
 *
 *   cc -std=c11 -O2 tools/onnx_embed_example.c -I<onnxruntime>/include -L<onnxruntime>/lib \
 *      -lonnxruntime -lm -o onnx_embed_example
 *   ./onnx_embed_example face.onnx inputs.f32
 *
 * Any onnxruntime from 1.6 on (opset 13); every API call's status is checked. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <onnxruntime_c_api.h>

static const OrtApi *ort;

/* Exits with the message of a failed onnxruntime call. */
static void check(OrtStatus *status, const char *what) {
    if (!status) return;
    fprintf(stderr, "onnx_embed_example: %s: %s\n", what, ort->GetErrorMessage(status));
    ort->ReleaseStatus(status);
    exit(1);
}

/* A custom metadata value, copied into out (empty when the key is missing). */
static void metadata(const OrtModelMetadata *md, OrtAllocator *alloc, const char *key, char *out, size_t size) {
    char *value = NULL;
    check(ort->ModelMetadataLookupCustomMetadataMap(md, alloc, key, &value), key);
    snprintf(out, size, "%s", value ? value : "");
    if (value) check(ort->AllocatorFree(alloc, value), "AllocatorFree");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.onnx INPUTS.f32\n", argv[0]);
        return 2;
    }
    ort = OrtGetApiBase()->GetApi(ORT_API_VERSION);
    if (!ort) {
        fprintf(stderr, "onnx_embed_example: this onnxruntime is older than its header\n");
        return 1;
    }
    OrtEnv *env;
    OrtSessionOptions *opts;
    OrtSession *session;
    check(ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "kao", &env), "CreateEnv");
    check(ort->CreateSessionOptions(&opts), "CreateSessionOptions");
    check(ort->SetIntraOpNumThreads(opts, 1), "SetIntraOpNumThreads");
    check(ort->CreateSession(env, argv[1], opts, &session), argv[1]); /* ORTCHAR_T is wchar_t on Windows */

    OrtAllocator *alloc;
    OrtModelMetadata *md;
    check(ort->GetAllocatorWithDefaultOptions(&alloc), "GetAllocatorWithDefaultOptions");
    check(ort->SessionGetModelMetadata(session, &md), "SessionGetModelMetadata");
    char signature[512], size[64], thr_text[64], formula[128];
    metadata(md, alloc, "signature", signature, sizeof signature);
    metadata(md, alloc, "kao.input_size", size, sizeof size);
    metadata(md, alloc, "kao.threshold", thr_text, sizeof thr_text); /* or kao.threshold_eer, ... */
    metadata(md, alloc, "kao.score_formula", formula, sizeof formula);
    ort->ReleaseModelMetadata(md);
    int h, w;
    double a, b, c;
    char *end;
    double threshold = strtod(thr_text, &end);
    if (sscanf(size, "%dx%d", &h, &w) != 2 || h < 1 || w < 1 || end == thr_text ||
        sscanf(formula, "%lf*x^2 + %lf*x + %lf", &a, &b, &c) != 3) {
        fprintf(stderr, "onnx_embed_example: %s is not a kao export (kao.input_size '%s', kao.threshold "
                        "'%s', kao.score_formula '%s')\n", argv[1], size, thr_text, formula);
        return 1;
    }
    printf("signature: %s\ninput: 1x3x%dx%d\nthreshold: %.17g\n", signature, h, w, threshold);

    char *in_name, *out_name; /* graph.input[0], graph.output[0] */
    check(ort->SessionGetInputName(session, 0, alloc, &in_name), "SessionGetInputName");
    check(ort->SessionGetOutputName(session, 0, alloc, &out_name), "SessionGetOutputName");

    /* The preprocessed images. */
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    size_t per_image = (size_t)3 * h * w, n = 0, cap = 0;
    float *x = NULL;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            x = realloc(x, cap * per_image * sizeof *x);
            if (!x) return 1;
        }
        size_t got = fread(x + n * per_image, sizeof *x, per_image, f);
        if (got == 0) break;
        if (got != per_image) {
            fprintf(stderr, "onnx_embed_example: %s: not a whole number of 3x%dx%d images\n", argv[2], h, w);
            return 1;
        }
        n++;
    }
    fclose(f);

    /* One run per image: input tensor over our buffer (no copy), output read in place. */
    OrtMemoryInfo *mem;
    check(ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &mem), "CreateCpuMemoryInfo");
    const int64_t shape[4] = {1, 3, h, w};
    float *emb = NULL;
    size_t dim = 0;
    for (size_t i = 0; i < n; i++) {
        OrtValue *input = NULL, *output = NULL;
        check(ort->CreateTensorWithDataAsOrtValue(mem, x + i * per_image, per_image * sizeof(float), shape, 4,
                                                  ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &input),
              "CreateTensorWithDataAsOrtValue");
        const char *in_names[1] = {in_name}, *out_names[1] = {out_name};
        check(ort->Run(session, NULL, in_names, (const OrtValue *const *)&input, 1, out_names, 1, &output), "Run");
        OrtTensorTypeAndShapeInfo *info;
        size_t count;
        check(ort->GetTensorTypeAndShape(output, &info), "GetTensorTypeAndShape");
        check(ort->GetTensorShapeElementCount(info, &count), "GetTensorShapeElementCount");
        ort->ReleaseTensorTypeAndShapeInfo(info);
        float *y;
        check(ort->GetTensorMutableData(output, (void **)&y), "GetTensorMutableData");
        if (!emb) {
            dim = count;
            emb = malloc(n * dim * sizeof *emb);
            if (!emb) return 1;
        }
        memcpy(emb + i * dim, y, dim * sizeof *emb);
        ort->ReleaseValue(output);
        ort->ReleaseValue(input);
    }

    /* Cosine similarity of every pair (as kao verify: in double, rounded to float). */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            double dot = 0, ni = 0, nj = 0;
            for (size_t k = 0; k < dim; k++) {
                dot += (double)emb[i * dim + k] * emb[j * dim + k];
                ni += (double)emb[i * dim + k] * emb[i * dim + k];
                nj += (double)emb[j * dim + k] * emb[j * dim + k];
            }
            double s = (float)(dot / (sqrt(ni) * sqrt(nj)));
            printf("%zu, %zu, %s, %.2f%%, %.6f\n", i, j, s >= threshold ? "True" : "False", a * s * s + b * s + c, s);
        }

    free(emb);
    free(x);
    ort->ReleaseMemoryInfo(mem);
    check(ort->AllocatorFree(alloc, in_name), "AllocatorFree");
    check(ort->AllocatorFree(alloc, out_name), "AllocatorFree");
    ort->ReleaseSession(session);
    ort->ReleaseSessionOptions(opts);
    ort->ReleaseEnv(env);
    return 0;
}
