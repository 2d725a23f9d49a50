/* onnx_export.h — the embedding network as an ONNX model for inference (onnxruntime & co.).
 *
 * The exported graph is the network in eval mode:
 *  - input  `input`     float32 [batch, 3, H, W], NCHW (what onnxruntime users feed; kao itself
 *    computes NHWC), RGB, normalised with kao.mean / kao.std; batch is symbolic.
 *  - output `embedding` float32 [batch, embedding_dim], L2-normalised when asked.
 *  - every BatchNorm is folded into the convolution before it (computed in double):
 *    W' = W·γ/√(var+eps), b' = β − mean·γ/√(var+eps). Initializers named `<conv>.fused.weight`
 *    and `<conv>.fused.bias` hold the folded values; SE convolutions and the classifier keep
 *    their timm names.
 *  - TF "same" padding becomes explicit Conv `pads`, computed for H×W: the file is exact for
 *    that input size only (kao.input_size).
 *  - SiLU is Sigmoid·Mul; SE is GlobalAveragePool → Conv → SiLU → Conv → Sigmoid → Mul; the head
 *    is GlobalAveragePool → Flatten → Gemm(transB=1) [→ LpNormalization(axis=1, p=2)].
 *  - opset 13 with IR version 7 (onnxruntime ≥ 1.6), or opset 17 with IR version 8.
 *  - metadata_props: `signature` and kao.* keys (architecture, width_mult, depth_mult,
 *    input_size "HxW", mean, std, color_order, layout, embedding_dim, normalized, threshold (the
 *    original's fixed 0.4), threshold_eer and threshold_far1e-3 (what kao train measured on its
 *    validation pairs, trained_info.h; "unknown" when the weights record none), score_formula,
 *    num_identities, split_hash, version, export_time in UTC ISO-8601).
 */
#ifndef KAO_ONNX_EXPORT_H
#define KAO_ONNX_EXPORT_H

#include <stdbool.h>

#include "kao/model.h"

typedef struct {
    int input_h, input_w;    /* the input size the file is exported for */
    int opset;               /* 13 or 17 */
    bool l2_normalize;       /* append LpNormalization: unit-length embeddings */
    const char *signature;   /* free text stored as metadata `signature`; NULL = a default
                                naming the architecture and kao's version */
    int num_identities;      /* identities the model was trained on; <= 0 = "unknown" */
    const char *split_hash;  /* identifies the train/validation split; NULL or "" = "unknown" */
    float mean[3], std[3];   /* the input normalisation the weights expect (kao.mean, kao.std) */
    bool has_thresholds;     /* false: kao.threshold_eer and kao.threshold_far1e-3 are "unknown" */
    double threshold_eer, threshold_far1e3;
} kao_onnx_options;

/* The metadata keys kao writes, in file order after `signature`; NULL-terminated. */
extern const char *const kao_onnx_metadata_keys[];

/* Defaults: 224×224, opset 13, not normalised, default signature, unknowns unknown, ImageNet
 * mean and std. */
void kao_onnx_options_init(kao_onnx_options *opt);

/* Writes m as an ONNX model to path, atomically (a failure leaves no file and any older file
 * untouched). KAO_ERR for bad options or an output folder that does not exist. */
int kao_onnx_export(const kao_model *m, const char *path, const kao_onnx_options *opt);

/* Reads path back, checks that it is a kao export and prints its producer, opset, input/output
 * signature and metadata to stdout (control characters escaped, e.g. ESC as \x1b). A kao export
 * parses with nothing but the fields kao writes, all strings UTF-8; has IR 7 with opset 13 or
 * IR 8 with 17; one float32 input [batch, …] and output; float32 initializers whose data fill
 * their shapes; nodes of the ops kao emits only (src/onnx_schema.c: Conv, Sigmoid, Mul, Add,
 * GlobalAveragePool, Flatten, Gemm, LpNormalization) with their attributes, inputs defined
 * before use and shapes that fit, computing the declared output; and all of kao's metadata,
 * agreeing with the graph. Such a file passes onnx.checker and loads in onnxruntime. KAO_ERR
 * otherwise, with one message: "PATH: not a kao export: node N (Op 'name'): <why>" and the
 * like, or "PATH: not a valid ONNX model …" for a file that does not parse or holds non-UTF-8
 * text. */
int kao_onnx_check(const char *path);

#endif
