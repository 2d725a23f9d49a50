#!/usr/bin/env python3
"""PyTorch/timm side of kao's benchmarks: the same workloads as `kao bench`, on the same machine.

  infer: timm tf_efficientnetv2_* with a Linear(num_features, 512) embedding head, eval mode,
         torch.no_grad(), channels-last, batch B at HxW.
  train: one full training step: forward in train mode, pytorch-metric-learning ArcFaceLoss over
         --classes classes, backward, AdamW on the network and SGD on the ArcFace W (the
         original's setup), channels-last.
Prints one JSON line per configuration: images/s, ms per batch (median of --steps timed runs after
--warmup). On the CPU also peak RSS (MiB, from getrusage: the whole process, including the framework
itself). On CUDA (PyTorch's default cuDNN/matmul precision, reported as tf32_* fields, with
torch.backends.cudnn.benchmark on, as timm's train.py sets it: cuDNN times its algorithms for each
shape during the warm-up steps and keeps the fastest) each timed step is bracketed by
torch.cuda.synchronize(), and peak_gpu_mib is torch.cuda.max_memory_allocated() over
the whole configuration, warm-up and compilation included. --precision bf16 runs forward and loss
under torch.autocast(bfloat16) with fp32 weights and no loss scaling; --compile wraps the network in
torch.compile. A configuration that runs out of GPU memory or fails to compile prints a line with
"error" instead of the figures and does not fail the run; --device cuda without a usable GPU exits 1
with a one-line message.

Usage: python tools/bench_torch.py --mode infer|train [--model tf_efficientnetv2_b0] [--size 224]
       [--batch 32] [--threads 2] [--steps 5] [--warmup 2] [--classes 1000] [--onnxruntime]
       python tools/bench_torch.py --device cuda --mode infer|train [--precision fp32|bf16]
       [--compile] [--size 224] [--batch 32] [--steps 5] [--warmup 2] [--classes 1000]
       python tools/bench_torch.py --all-gpu [--steps 5] [--warmup 2]
--all-gpu runs, one after another in one process, train at batch 128 and 256 and infer at batch 256,
each as fp32 eager, bf16 eager and bf16 compiled (compiled last), at 224x224 with 1000 classes: 9
lines, each configuration with its own peak; exits 1 if one failed other than by OOM or compilation.
"""
import argparse
import gc
import json
import resource
import statistics
import sys
import time

import timm
import torch

# Compiled configurations last: they take minutes to compile, and a run cut short keeps the rest.
GPU_GRID = [dict(mode=mode, batch=batch, precision=precision, compile=compiled, size=224, classes=1000)
            for precision, compiled in (("fp32", False), ("bf16", False), ("bf16", True))
            for mode, batch in (("train", 128), ("train", 256), ("infer", 256))]


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def median_seconds(step, args, sync):
    """Median wall time of args.steps calls of step() after args.warmup untimed ones."""
    times = []
    for i in range(args.warmup + args.steps):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def pytorch_step(args, device):
    """The model and input on device, channels-last; returns a closure running one batch."""
    model = timm.create_model(args.model, num_classes=args.embedding)
    model = model.to(device, memory_format=torch.channels_last)
    model.train(args.mode == "train")
    x = torch.randn(args.batch, 3, args.size, args.size, device=device).to(memory_format=torch.channels_last)
    net = torch.compile(model) if args.compile else model
    bf16 = args.precision == "bf16"
    if args.mode == "infer":
        def infer():
            with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                net(x)
        return infer

    from pytorch_metric_learning.losses import ArcFaceLoss
    loss_fn = ArcFaceLoss(num_classes=args.classes, embedding_size=args.embedding).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    loss_opt = torch.optim.SGD(loss_fn.parameters(), lr=0.01)
    labels = torch.randint(0, args.classes, (args.batch,), device=device)

    def train():
        opt.zero_grad()
        loss_opt.zero_grad()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            # .float(): ArcFaceLoss casts W.data to the embeddings' dtype unless it sees autocast
            # enabled; fp32 embeddings keep W fp32 whatever it sees (its matmul still autocasts).
            loss = loss_fn(net(x).float(), labels)
        loss.backward()
        opt.step()
        loss_opt.step()
    return train


def bench_onnxruntime(args):
    import os
    import tempfile

    import onnxruntime as ort
    model = timm.create_model(args.model, num_classes=args.embedding).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    torch.onnx.export(model, x[:1], path, input_names=["input"], output_names=["embedding"],
                      dynamic_axes={"input": {0: "batch"}}, opset_version=13)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = {"input": x.numpy()}
    return f"onnxruntime {ort.__version__}", median_seconds(lambda: sess.run(None, feed), args, lambda: None)


def bench_cpu(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.onnxruntime:
        engine, median = bench_onnxruntime(args)
    else:
        engine = f"pytorch {torch.__version__}"
        median = median_seconds(pytorch_step(args, "cpu"), args, lambda: None)
    print(json.dumps({"engine": engine, "mode": args.mode, "model": args.model, "size": args.size,
                      "batch": args.batch, "threads": args.threads, "ms_per_batch": median * 1e3,
                      "images_per_s": args.batch / median, "peak_rss_mib": peak_rss_mib()}))


def bench_cuda(args):
    """One CUDA configuration, one JSON line; False if it failed other than by OOM or compilation."""
    torch.backends.cudnn.benchmark = True  # PyTorch's fastest eager convolutions (see above)
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch._dynamo.reset()
    line = {"engine": f"pytorch {torch.__version__}", "device": "cuda", "gpu": torch.cuda.get_device_name(),
            "mode": args.mode, "model": args.model, "size": args.size, "batch": args.batch,
            "precision": args.precision, "compile": args.compile,
            "tf32_conv": torch.backends.cudnn.allow_tf32,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark}
    ok = True
    try:
        torch.manual_seed(0)
        median = median_seconds(pytorch_step(args, "cuda"), args, torch.cuda.synchronize)
        line.update(ms_per_batch=median * 1e3, images_per_s=args.batch / median)
    except Exception as e:  # the step's tensors go with e's traceback when this block ends
        ok = args.compile or isinstance(e, torch.cuda.OutOfMemoryError)
        line["error"] = " ".join(f"{type(e).__name__}: {e}".split())[:300]
    line["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(line), flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["infer", "train"], default="infer")
    ap.add_argument("--model", default="tf_efficientnetv2_b0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (--device cpu)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--embedding", type=int, default=512)
    ap.add_argument("--onnxruntime", action="store_true", help="infer through onnxruntime on timm's ONNX export")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="cuda only")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (cuda only)")
    ap.add_argument("--all-gpu", action="store_true", help="the whole CUDA grid (see above)")
    args = ap.parse_args()
    if args.all_gpu:
        args.device = "cuda"
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    if args.device == "cpu":
        if args.precision != "fp32" or args.compile:
            ap.error("--precision and --compile are for --device cuda")
        if args.onnxruntime and args.mode != "infer":
            ap.error("--onnxruntime is for --mode infer")
        bench_cpu(args)
        return
    if args.onnxruntime:
        ap.error("--onnxruntime is CPU only")
    try:
        torch.cuda.init()
    except Exception as e:
        sys.exit(f"bench_torch.py: error: --device cuda: no usable GPU ({str(e).splitlines()[0]})")
    configs = GPU_GRID if args.all_gpu else [{}]
    ok = [bench_cuda(argparse.Namespace(**{**vars(args), **c})) for c in configs]
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
