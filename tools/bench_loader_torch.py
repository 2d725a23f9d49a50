#!/usr/bin/env python3
"""PyTorch's side of `kao bench --mode load`: a torch.utils.data.DataLoader over the same identity
folders of PNG and JPEG images, with the torchvision transforms that do what kao train's default augmentation does
(augment.h): a random crop of 85–100% of each side keeping the aspect ratio, resized bilinearly to
HxW (RandomResizedCrop with scale (0.85², 1) and the image's own ratio), a horizontal flip, brightness
and contrast jitter of ±0.2, ToTensor and ImageNet normalisation. Batches are pinned when a GPU is
there, as kao's are.

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


class KeepAspectCrop:
    """RandomResizedCrop with the image's own aspect ratio, as kao's crop keeps it."""

    def __init__(self, size, side_min):
        self.size, self.side_min = size, side_min

    def __call__(self, img):
        ratio = img.width / img.height
        crop = transforms.RandomResizedCrop(self.size, scale=(self.side_min ** 2, 1.0), ratio=(ratio, ratio),
                                            interpolation=transforms.InterpolationMode.BILINEAR)
        return crop(img)


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
        KeepAspectCrop((args.size, args.size), 0.85),
        transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(brightness=0.2, contrast=0.2),
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
