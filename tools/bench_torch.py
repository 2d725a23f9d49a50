#!/usr/bin/env python3
"""PyTorch/timm side of kao's benchmarks: the same workloads as `kao bench`, on the same machine.

  infer: timm tf_efficientnetv2_* with a Linear(num_features, 512) embedding head, eval mode,
         torch.no_grad(), channels-last, batch B at HxW.
  train: one full training step: forward in train mode, pytorch-metric-learning ArcFaceLoss over
         --classes classes, backward, AdamW on the network and SGD on the ArcFace W (the
         original's setup), channels-last.
Prints one JSON line: images/s, ms per batch (median of --steps timed runs after --warmup),
peak RSS (MiB, from getrusage: the whole process, including the framework itself).

Usage: python tools/bench_torch.py --mode infer|train [--model tf_efficientnetv2_b0] [--size 224]
       [--batch 32] [--threads 2] [--steps 5] [--warmup 2] [--classes 1000] [--onnxruntime]
"""
import argparse
import json
import resource
import statistics
import time

import timm
import torch


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["infer", "train"], default="infer")
    ap.add_argument("--model", default="tf_efficientnetv2_b0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--embedding", type=int, default=512)
    ap.add_argument("--onnxruntime", action="store_true", help="infer through onnxruntime on timm's ONNX export")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = timm.create_model(args.model, num_classes=args.embedding)
    x = torch.randn(args.batch, 3, args.size, args.size)
    times = []
    engine = "pytorch"

    if args.mode == "infer" and args.onnxruntime:
        import os
        import tempfile

        import onnxruntime as ort
        model.eval()
        path = os.path.join(tempfile.mkdtemp(), "model.onnx")
        torch.onnx.export(model, x[:1], path, input_names=["input"], output_names=["embedding"],
                          dynamic_axes={"input": {0: "batch"}}, opset_version=13)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feed = {"input": x.numpy()}
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            sess.run(None, feed)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        engine = f"onnxruntime {ort.__version__}"
    elif args.mode == "infer":
        model.eval()
        model = model.to(memory_format=torch.channels_last)
        xc = x.to(memory_format=torch.channels_last)
        with torch.no_grad():
            for i in range(args.warmup + args.steps):
                t0 = time.perf_counter()
                model(xc)
                if i >= args.warmup:
                    times.append(time.perf_counter() - t0)
        engine = f"pytorch {torch.__version__}"
    else:
        from pytorch_metric_learning.losses import ArcFaceLoss
        model.train()
        model = model.to(memory_format=torch.channels_last)
        xc = x.to(memory_format=torch.channels_last)
        loss_fn = ArcFaceLoss(num_classes=args.classes, embedding_size=args.embedding)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss_opt = torch.optim.SGD(loss_fn.parameters(), lr=0.01)
        labels = torch.randint(0, args.classes, (args.batch,))
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            opt.zero_grad()
            loss_opt.zero_grad()
            loss = loss_fn(model(xc), labels)
            loss.backward()
            opt.step()
            loss_opt.step()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        engine = f"pytorch {torch.__version__}"

    median = statistics.median(times)
    print(json.dumps({"engine": engine, "mode": args.mode, "model": args.model, "size": args.size,
                      "batch": args.batch, "threads": args.threads, "ms_per_batch": median * 1e3,
                      "images_per_s": args.batch / median, "peak_rss_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main()
