#!/usr/bin/env python3
"""PyTorch's side of `kao bench --mode load`: a torch.utils.data.DataLoader over the same identity
folders of PNG and JPEG images, with the torchvision transforms kao train's default augmentation
stands for (augment.h, docs/augmentation.md): RandomResizedCrop(HxW, scale=(0.7, 1), ratio=(0.8,
1.25)), RandomHorizontalFlip(0.5), ColorJitter(0.2, 0.2, 0.2, 0), RandomGrayscale(0.1), ToTensor
and ImageNet normalisation. Batches are pinned when a GPU is there, as kao's are.

Prints one JSON line like kao's: images/s from the end of the warm-up batches to the last batch.

Usage: python tools/bench_loader_torch.py --data ROOT [--workers 2] [--size 224] [--batch 64]
       [--steps 10] [--warmup 2]
"""
import argparse
import json
import os
import resource
import time

import torch
from PIL import Image
from torchvision import transforms


class Faces(torch.utils.data.Dataset):
    """ROOT/<identity>/<image>.png|.jpg|.jpeg, as kao's data set scan lists them (byte order)."""

    def __init__(self, root, transform):
        ids = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
        self.items = [(os.path.join(root, d, f), label) for label, d in enumerate(ids)
                      for f in sorted(os.listdir(os.path.join(root, d))) if f.lower().endswith((".png", ".jpg", ".jpeg"))]
        self.transform = transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        with Image.open(path) as img:
            return self.transform(img.convert("RGB")), label


class Cycled(torch.utils.data.Dataset):
    """The data set's images in order, over and over, n items in all (kao's order)."""

    def __init__(self, base, n):
        self.base, self.n = base, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.base[i % len(self.base)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)  # the work is in the workers, as kao's
    transform = transforms.Compose([
        transforms.RandomResizedCrop((args.size, args.size), scale=(0.7, 1.0), ratio=(0.8, 1.25),
                                     interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.RandomHorizontalFlip(0.5),
        transforms.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0),
        transforms.RandomGrayscale(0.1),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    batches = args.warmup + args.steps
    data = Cycled(Faces(args.data, transform), batches * args.batch)
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch, num_workers=args.workers,
                                         pin_memory=torch.cuda.is_available(), prefetch_factor=None if
                                         args.workers == 0 else 2)
    start, images = time.perf_counter(), 0
    for b, (x, _) in enumerate(loader):
        if b < args.warmup:
            start = time.perf_counter()
            continue
        images += x.shape[0]
    seconds = time.perf_counter() - start
    print(json.dumps({"engine": f"pytorch {torch.__version__} DataLoader", "mode": "load", "size": args.size,
                      "batch": args.batch, "workers": args.workers, "images": images,
                      "images_per_s": round(images / seconds, 1),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}))


if __name__ == "__main__":
    main()
