#!/usr/bin/env python3
"""Writes kao's image test data: tiny PNGs of every colour type and bit depth, and the reference
decode/resize/normalise results from PIL and torchvision (tests/test_image.c reads them).

    python tools/gen_image_reference.py [out_dir]   # default tests/data/images

PNGs are written by the small encoder below (not by PIL) so that every colour type, bit depth,
tRNS variant and Adam7 interlacing is covered; PIL then decodes them. reference.h5 holds one group
per PNG (group name = file name without .png):
  rgb            (h, w, 3) uint8   what kao must decode: PIL's Image.open(f).convert('RGB'),
                                   except 16-bit grey (attribute pil_differs, see below)
  resize_HxW     (H, W, 3) uint8   torchvision transforms.Resize((H, W)) of that RGB image (PIL)
  input_HxW      (H, W, 3) float32 Resize((H, W)) + ToTensor + Normalize(ImageNet), NHWC
A target equal to the image size is the no-resize case (torchvision returns the image unchanged).

16-bit grey: PIL opens it as mode I;16 and convert('RGB') clips each sample to 255 (65535 -> 255,
300 -> 255), so almost every pixel turns white. kao keeps the high byte (value >> 8) like libpng's
png_set_strip_16 and like PIL itself does for 16-bit RGB, RGBA and grey+alpha. For those files
`rgb` is the high byte and `rgb_pil` records what PIL gives.
"""
import os
import struct
import sys
import warnings
import zlib

import h5py
import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

# Adam7 passes: x0, y0, dx, dy
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def pack_row(samples, bit_depth):
    """samples: 1-D int array of one row's samples -> bytes (MSB-first packing below 8 bits)."""
    if bit_depth == 16:
        return samples.astype(">u2").tobytes()
    if bit_depth == 8:
        return samples.astype(np.uint8).tobytes()
    per_byte = 8 // bit_depth
    padded = np.zeros(-(-len(samples) // per_byte) * per_byte, dtype=np.uint32)
    padded[: len(samples)] = samples
    padded = padded.reshape(-1, per_byte)
    shifts = np.arange(per_byte - 1, -1, -1) * bit_depth
    return (padded << shifts).sum(axis=1).astype(np.uint8).tobytes()


def filter_rows(rows, bpp):
    """Applies PNG filters cycling None, Sub, Up, Average, Paeth so that libpng undoes all five."""
    out, prev = b"", bytes(len(rows[0])) if rows else b""
    for i, row in enumerate(rows):
        kind = i % 5
        r = np.frombuffer(row, np.uint8).astype(np.int32)
        p = np.frombuffer(prev, np.uint8).astype(np.int32)
        left = np.concatenate([np.zeros(bpp, np.int32), r[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), p[:-bpp]])
        if kind == 0:
            f = r
        elif kind == 1:
            f = r - left
        elif kind == 2:
            f = r - p
        elif kind == 3:
            f = r - (left + p) // 2
        else:
            est = left + p - upleft
            pa, pb, pc = np.abs(est - left), np.abs(est - p), np.abs(est - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, p, upleft))
            f = r - pred
        out += bytes([kind]) + (f & 0xFF).astype(np.uint8).tobytes()
        prev = row
    return out


def encode_png(samples, color_type, bit_depth, palette=None, trns=None, interlace=False):
    """samples: (h, w, channels) ints. Returns the bytes of a PNG file."""
    h, w, c = samples.shape
    assert c == CHANNELS[color_type]
    bpp = max(1, c * bit_depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    data = b""
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        data += filter_rows([pack_row(row.reshape(-1), bit_depth) for row in sub], bpp)
    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, int(interlace)))
    if palette is not None:
        png += chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if trns is not None:
        png += chunk(b"tRNS", trns)
    png += chunk(b"IDAT", zlib.compress(data, 9))
    return png + chunk(b"IEND", b"")


def header_only_png(w, h):
    """A well-formed PNG whose IHDR claims w x h grey pixels (for the absurd-size errors)."""
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    return png + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def test_images(rng):
    """name -> (samples, color_type, bit_depth, palette, trns, interlace)"""
    def noise(h, w, c, bits):
        return rng.integers(0, 1 << bits, size=(h, w, c))

    def smooth(h, w, c, bits):  # gradients plus noise: resize errors show up on edges and ramps
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([(x * 7 + y * 3 + 40 * k) for k in range(c)], axis=-1)
        v = (base % 64) * ((1 << bits) - 1) // 63 + rng.integers(-3, 4, size=(h, w, c))
        return np.clip(v, 0, (1 << bits) - 1)

    pal = rng.integers(0, 256, size=(256, 3))
    imgs = {}
    for bits in (1, 2, 4, 8, 16):
        imgs[f"grey{bits}"] = (noise(9, 13, 1, bits), 0, bits, None, None, False)
    imgs["grey8_trns"] = (noise(9, 13, 1, 8), 0, 8, None, struct.pack(">H", 77), False)
    imgs["grey16_small"] = (noise(9, 13, 1, 9), 0, 16, None, None, False)  # PIL's clipping shows here
    imgs["greyalpha8"] = (noise(9, 13, 2, 8), 4, 8, None, None, False)
    imgs["greyalpha16"] = (noise(9, 13, 2, 16), 4, 16, None, None, False)
    imgs["rgb8"] = (smooth(9, 13, 3, 8), 2, 8, None, None, False)
    imgs["rgb8_trns"] = (noise(9, 13, 3, 8), 2, 8, None, struct.pack(">HHH", 1, 2, 3), False)
    imgs["rgb16"] = (noise(9, 13, 3, 16), 2, 16, None, None, False)
    imgs["rgba8"] = (smooth(17, 20, 4, 8), 6, 8, None, None, False)
    imgs["rgba16"] = (noise(17, 20, 4, 16), 6, 16, None, None, False)
    for bits in (1, 2, 4, 8):
        imgs[f"palette{bits}"] = (noise(9, 13, 1, bits), 3, bits, pal[: 1 << bits], None, False)
    imgs["palette8_trns"] = (noise(9, 13, 1, 8), 3, 8, pal, bytes(rng.integers(0, 256, 100, dtype=np.uint8)), False)
    imgs["palette4_trns"] = (noise(9, 13, 1, 4), 3, 4, pal[:16], bytes([0, 128, 255]), False)
    imgs["rgb8_interlaced"] = (smooth(17, 20, 3, 8), 2, 8, None, None, True)
    imgs["grey16_interlaced"] = (noise(17, 20, 1, 16), 0, 16, None, None, True)
    imgs["palette2_interlaced"] = (noise(9, 13, 1, 2), 3, 2, pal[:4], None, True)
    imgs["rgba8_interlaced"] = (noise(5, 3, 4, 8), 6, 8, None, None, True)  # smaller than an Adam7 block
    imgs["face_like"] = (smooth(112, 92, 1, 8), 0, 8, None, None, False)  # ORL's 92x112 grey shape
    imgs["one_pixel"] = (noise(1, 1, 3, 8), 2, 8, None, None, False)
    return imgs


# Target sizes (H, W) per image: the image's own size (no resize), down, up, mixed, one axis only,
# and both pass orders of Pillow 13 (vertical first when the height loses more than twice as many
# pixels as the width: rgb8 3x11 and 2x20, rgba8 5x16, rgb8_interlaced 11x29, face_like 20x60).
# (face_like has no no-resize target: its 92x112 float input alone would be 124 KB.)
TARGETS = {
    "rgb8": [(9, 13), (5, 7), (23, 31), (17, 6), (9, 20), (4, 13), (3, 11), (2, 20)],
    "rgba8": [(17, 20), (8, 11), (40, 45), (3, 3), (5, 16)],
    "rgb8_interlaced": [(17, 20), (11, 29)],
    "face_like": [(16, 13), (37, 29), (56, 46), (20, 60)],
    "one_pixel": [(1, 1), (3, 2)],
}


def check_encoder(path, samples, color_type, bit_depth):
    """The encoder above is checked against PIL's raw decode wherever PIL keeps the raw samples."""
    raw = np.asarray(Image.open(path))
    if color_type == 3 or (color_type == 0 and bit_depth in (8, 16)):
        assert np.array_equal(raw, samples[..., 0]), path
    elif color_type in (2, 4, 6) and bit_depth == 8:
        assert np.array_equal(raw, samples), path
    elif color_type in (2, 6) and bit_depth == 16:
        assert np.array_equal(raw, samples >> 8), path


def expected_rgb(path, samples, color_type, bit_depth):
    pil = np.asarray(Image.open(path).convert("RGB"))
    if color_type == 0 and bit_depth == 16:
        high = (samples[..., 0] >> 8).astype(np.uint8)
        return np.repeat(high[..., None], 3, axis=-1), pil
    return pil, None


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data", "images")
    os.makedirs(out_dir, exist_ok=True)
    # PIL warns that a palette tRNS should become RGBA; convert('RGB') drops it as intended.
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    rng = np.random.default_rng(20240611)
    normalize = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    with h5py.File(os.path.join(out_dir, "reference.h5"), "w") as f:
        f.attrs["generator"] = "tools/gen_image_reference.py"
        f.attrs["versions"] = f"Pillow {Image.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}"
        for name, (samples, ct, bits, pal, trns, interlace) in test_images(rng).items():
            path = os.path.join(out_dir, name + ".png")
            with open(path, "wb") as png:
                png.write(encode_png(samples, ct, bits, pal, trns, interlace))
            check_encoder(path, samples, ct, bits)
            rgb, pil = expected_rgb(path, samples, ct, bits)
            g = f.create_group(name)
            g.create_dataset("rgb", data=rgb)
            if pil is not None:
                g.attrs["pil_differs"] = 1
                g.create_dataset("rgb_pil", data=pil)
            image = Image.fromarray(rgb, "RGB")
            for h, w in TARGETS.get(name, []):
                resized = transforms.Resize((h, w), interpolation=transforms.InterpolationMode.BILINEAR)(image)
                g.create_dataset(f"resize_{h}x{w}", data=np.asarray(resized))
                chw = normalize(resized)
                g.create_dataset(f"input_{h}x{w}", data=chw.permute(1, 2, 0).contiguous().numpy())
    with open(os.path.join(out_dir, "huge_side.png"), "wb") as png:
        png.write(header_only_png(100000, 8))
    with open(os.path.join(out_dir, "huge_area.png"), "wb") as png:
        png.write(header_only_png(60000, 60000))


if __name__ == "__main__":
    main()
