"""JPEG decoding against Pillow, through tests/image_decode_tool (kao_image_load_rgb's pixels or message
per file; include/kao/image.h states the rules):

1. A corpus written here by Pillow: qualities 30-100; 4:4:4, 4:2:2 and 4:2:0 subsampling; baseline,
   progressive, optimised Huffman tables; restart intervals (every block, every 2 rows); Adobe RGB
   (keep_rgb); greyscale; CMYK (Pillow writes Adobe-inverted CMYK); sizes 1x1 to 223x97. kao's RGB
   equals Image.open(p).convert('RGB'): the largest level difference is printed and must be 0.
   A .jpg that holds a PNG decodes by its content.
2. EXIF orientation: the 8 orientations, and odd encodings of the tag (big-endian, LONG, BYTE,
   RATIONAL, several values, two entries, values beyond the segment, an IFD cut short, unreadable
   TIFF headers, XMP alone or beside EXIF): with --exif-transpose kao equals
   ImageOps.exif_transpose(Image.open(p)).convert('RGB'), without it the stored pixels.
3. The pixel limit: a small JPEG and a PNG claiming 60000 x 60000 (and a JPEG just over the default
   limit) are refused from the header within a second, naming the file; with --max-pixels N a file of
   N + 1 pixels is refused and one of N decoded, for both formats.
4. Damaged files (empty, truncated at several points, junk after SOI, SOI alone, corrupt data that
   libjpeg only warns about): one error each, naming the file; no crash (also run in the ASan build).
Prints "N passed, N failed"; exit status 1 on any failure.
"""
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import BINARY_DIR, SOURCE_DIR, check, finish  # noqa: E402

TOOL = os.path.join(BINARY_DIR, "tests", "image_decode_tool")
TMP = tempfile.mkdtemp(prefix="kao_test_image_jpeg_")
rng = np.random.default_rng(14)


def decode(paths, *options):
    """kao's result for each path: an (H, W, 3) uint8 array, or the error message."""
    out = subprocess.run([TOOL, *options, *paths], capture_output=True, timeout=120)
    check(out.returncode in (0, 1) and not out.stderr, f"image_decode_tool exit {out.returncode}: {out.stderr!r}")
    results, pos = [], 0
    for _ in paths:
        end = out.stdout.index(b"\n", pos)
        head = out.stdout[pos:end].decode()
        pos = end + 1
        if head.startswith("error "):
            results.append(head[6:])
            continue
        _, w, h = head.split()
        w, h = int(w), int(h)
        results.append(np.frombuffer(out.stdout[pos:pos + w * h * 3], np.uint8).reshape(h, w, 3))
        pos += w * h * 3
    return results


def picture(w, h):
    """Smooth colour gradients with noise: edges and flat parts for the codec."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x * 5 + y * 3) % 256], -1)
    return Image.fromarray(np.clip(base + rng.integers(-50, 50, (h, w, 3)), 0, 255).astype(np.uint8), "RGB")


def path(name):
    return os.path.join(TMP, name)


# ---- 1. the corpus -----------------------------------------------------------------------------
corpus = []
for w, h in [(1, 1), (8, 8), (17, 33), (223, 97), (64, 48)]:
    im = picture(w, h)
    for q in [30, 50, 75, 90, 95, 100]:
        for sub in [0, 1, 2]:
            for prog in [False, True]:
                p = path(f"rgb_{w}x{h}_q{q}_s{sub}_{'prog' if prog else 'base'}.jpg")
                im.save(p, quality=q, subsampling=sub, progressive=prog)
                corpus.append(p)
    extras = {"optimize": dict(optimize=True), "restart_blocks": dict(restart_marker_blocks=1),
              "restart_rows": dict(restart_marker_rows=2, subsampling=2), "adobe_rgb": dict(keep_rgb=True),
              "restart_prog": dict(restart_marker_blocks=3, progressive=True)}
    for name, kw in extras.items():
        p = path(f"{name}_{w}x{h}.jpg")
        im.save(p, quality=85, **kw)
        corpus.append(p)
    for mode in ["L", "CMYK"]:
        for q in [40, 95]:
            p = path(f"{mode.lower()}_{w}x{h}_q{q}.jpg")
            im.convert(mode).save(p, quality=q)
            corpus.append(p)
png_named_jpg = path("really_a_png.jpg")
picture(19, 11).save(png_named_jpg, format="PNG")
corpus.append(png_named_jpg)
check(Image.open(path("adobe_rgb_17x33.jpg")).info.get("adobe_transform") == 0, "keep_rgb wrote an Adobe RGB JPEG")

worst, mismatched = 0, []
for p, got in zip(corpus, decode(corpus)):
    want = np.asarray(Image.open(p).convert("RGB"))
    if isinstance(got, str) or got.shape != want.shape:
        mismatched.append(f"{os.path.basename(p)}: {got if isinstance(got, str) else got.shape}")
        continue
    diff = int(np.abs(got.astype(int) - want.astype(int)).max())
    worst = max(worst, diff)
    if diff:
        mismatched.append(f"{os.path.basename(p)}: {diff} levels")
print(f"JPEG decoding: {len(corpus)} files, max {worst} levels from Pillow's convert('RGB')")
check(not mismatched, f"kao differs from Pillow on {len(mismatched)} files: {mismatched[:8]}")


# ---- 2. EXIF orientation -----------------------------------------------------------------------
def tiff(entries, big=False, header=None, tail=b"", claimed=None):
    """TIFF data for an EXIF segment: IFD0 at offset 8 with entries (tag, type, count, 4-byte field),
    then tail at offset 8 + 2 + 12 * len(entries) + 4 (fields pointing there use tail_at())."""
    e = ">" if big else "<"
    head = header if header is not None else (b"MM\x00*" if big else b"II*\x00") + struct.pack(e + "I", 8)
    body = struct.pack(e + "H", len(entries) if claimed is None else claimed)
    for tag, typ, count, field in entries:
        body += struct.pack(e + "HHI", tag, typ, count) + field
    return b"Exif\x00\x00" + head + body + struct.pack(e + "I", 0) + tail


def tail_at(n_entries):
    return 8 + 2 + 12 * n_entries + 4


def short(v, big=False, second=0):
    return struct.pack((">" if big else "<") + "HH", v, second)


XMP_6 = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
upright = picture(13, 7)
exif_cases = {}
for o in range(1, 9):
    exif = Image.Exif()
    exif[0x0112] = o
    exif_cases[f"orientation {o}"] = dict(exif=exif)
O = 0x0112
exif_cases.update({
    "big-endian SHORT 6": dict(exif=tiff([(O, 3, 1, short(6, big=True))], big=True)),
    "LONG 8": dict(exif=tiff([(O, 4, 1, struct.pack("<I", 8))])),
    "BYTE 6 (Pillow: bytes, no match)": dict(exif=tiff([(O, 1, 1, b"\x06\x00\x00\x00")])),
    "SSHORT 3": dict(exif=tiff([(O, 8, 1, short(3))])),
    "RATIONAL 5/1": dict(exif=tiff([(O, 5, 1, struct.pack("<I", tail_at(1)))], tail=struct.pack("<II", 5, 1))),
    "RATIONAL 5/0": dict(exif=tiff([(O, 5, 1, struct.pack("<I", tail_at(1)))], tail=struct.pack("<II", 5, 0))),
    "DOUBLE 7.0": dict(exif=tiff([(O, 12, 1, struct.pack("<I", tail_at(1)))], tail=struct.pack("<d", 7.0))),
    "two SHORTs 6, 3": dict(exif=tiff([(O, 3, 2, short(6, second=3))])),
    "three SHORTs out of line": dict(exif=tiff([(O, 3, 3, struct.pack("<I", tail_at(1)))],
                                              tail=struct.pack("<HHH", 8, 2, 2))),
    "two entries 3 then 6": dict(exif=tiff([(O, 3, 1, short(3)), (O, 3, 1, short(6))])),
    "empty entry then 4": dict(exif=tiff([(O, 3, 0, short(0)), (O, 3, 1, short(4))])),
    "unknown type then 2": dict(exif=tiff([(O, 99, 1, short(8)), (O, 3, 1, short(2))])),
    "values beyond the segment first": dict(exif=tiff([(0x010F, 2, 20, struct.pack("<I", 4000)), (O, 3, 1, short(6))]),
                                            xmp=XMP_6),
    "oversized values skipped": dict(exif=tiff([(0x010F, 2, 100000, struct.pack("<I", 8)), (O, 3, 1, short(6))])),
    "IFD cut short": dict(exif=tiff([(O, 3, 1, short(5))], claimed=9)),
    "IFD offset past the end": dict(exif=tiff([(O, 3, 1, short(5))], header=b"II*\x00" + struct.pack("<I", 900)),
                                    xmp=XMP_6),
    "bad TIFF header, XMP 6": dict(exif=tiff([(O, 3, 1, short(6))], header=b"XX*\x00" + struct.pack("<I", 8)),
                                   xmp=XMP_6),
    "BigTIFF header": dict(exif=tiff([(O, 3, 1, short(6))], header=b"II+\x00" + struct.pack("<I", 8))),
    "MM*\\0 header": dict(exif=tiff([(O, 3, 1, short(6, big=True))], big=True,
                                    header=b"MM*\x00" + struct.pack(">I", 8))),
    "double Exif prefix": dict(exif=b"Exif\x00\x00" + tiff([(O, 3, 1, short(7))])),
    "Exif prefix only, XMP 6": dict(exif=b"Exif\x00\x00", xmp=XMP_6),
    "XMP attribute 8": dict(xmp=b'<rdf:Description tiff:Orientation="8"/>'),
    "XMP element 5": dict(xmp=b"<tiff:Orientation>5</tiff:Orientation>"),
    "XMP, first match counts": dict(xmp=b'tiff:Orientation = "3" tiff:Orientation>2<'),
    "EXIF 1 beside XMP 6": dict(exif=tiff([(O, 3, 1, short(1))]), xmp=XMP_6),
    "EXIF without the tag, XMP 6": dict(exif=tiff([(0x010F, 2, 4, b"kao\x00")]), xmp=XMP_6),
    "orientation 9": dict(exif=tiff([(O, 3, 1, short(9))])),
})
names = list(exif_cases)
exif_files = []
for i, name in enumerate(names):
    p = path(f"exif_{i:02d}.jpg")
    upright.save(p, quality=95, **exif_cases[name])
    exif_files.append(p)
on, off = decode(exif_files, "--exif-transpose"), decode(exif_files)
transposed = set()
warnings.simplefilter("ignore")  # Pillow warns about each odd EXIF
for name, p, got_on, got_off in zip(names, exif_files, on, off):
    im = Image.open(p)
    raw = np.asarray(im.convert("RGB"))
    try:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except Exception as e:  # Pillow cannot read this EXIF at all: the picture as stored
        print(f"EXIF {name}: Pillow raises {type(e).__name__}; kao uses the stored pixels")
        want = raw
    if want.shape != raw.shape or not np.array_equal(want, raw):
        transposed.add(name)
    check(not isinstance(got_on, str) and got_on.shape == want.shape and np.array_equal(got_on, want),
          f"EXIF {name}: --exif-transpose differs from ImageOps.exif_transpose "
          f"({got_on if isinstance(got_on, str) else got_on.shape} vs {want.shape})")
    check(not isinstance(got_off, str) and np.array_equal(got_off, raw), f"EXIF {name}: without --exif-transpose, "
          "not the stored pixels")
check(transposed >= {f"orientation {o}" for o in range(2, 9)} and "orientation 1" not in transposed,
      f"orientations 2-8 transpose, 1 does not: {sorted(transposed)}")
print(f"EXIF: {len(names)} files, {len(transposed)} turned by Pillow, kao the same with --exif-transpose")


# ---- 3. the pixel limit ------------------------------------------------------------------------
def claim_size(src, dst, w, h):
    """A copy of JPEG src whose SOF0 header claims w x h."""
    data = bytearray(open(src, "rb").read())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", h, w)
    open(dst, "wb").write(bytes(data))
    return dst


small = path("rgb_17x33_q75_s2_base.jpg")
huge_jpeg = claim_size(small, path("huge_60000.jpg"), 60000, 60000)
over_default = claim_size(small, path("over_default.jpg"), 65500, 2733)  # 179,011,500 > 178,956,970
huge_png = os.path.join(SOURCE_DIR, "tests", "data", "images", "huge_area.png")
for options in [(), ("--max-pixels", "1000")]:
    start = time.monotonic()
    got = decode([huge_jpeg, huge_png, over_default], *options)
    seconds = time.monotonic() - start
    label = " ".join(options) or "default limit"
    check(seconds < 1.0, f"{label}: refusing the huge files took {seconds:.2f} s")
    for p, g, size in zip([huge_jpeg, huge_png, over_default], got, ["60000 x 60000", "60000 x 60000", "65500 x 2733"]):
        check(isinstance(g, str) and g.startswith(p + ":") and f"claims {size} pixels, more than kao accepts" in g,
              f"{label}: {os.path.basename(p)}: {g if isinstance(g, str) else 'decoded'}")
    print(f"pixel limit ({label}): 3 files refused in {seconds * 1000:.0f} ms")
check(f"and {178956970} pixels" in decode([huge_jpeg])[0], "the default limit is named in the message")
small_png = path("small.png")
picture(17, 33).save(small_png)
for p in [small, small_png]:
    refused, accepted = decode([p], "--max-pixels", "560")[0], decode([p], "--max-pixels", "561")[0]
    check(isinstance(refused, str) and "17 x 33 pixels" in refused and "and 560 pixels" in refused,
          f"{os.path.basename(p)}: 561 pixels under --max-pixels 560: "
          f"{refused if isinstance(refused, str) else 'decoded'}")
    check(not isinstance(accepted, str) and accepted.shape == (33, 17, 3), f"{os.path.basename(p)}: --max-pixels 561")

# ---- 4. damaged files --------------------------------------------------------------------------
good = open(path("rgb_223x97_q90_s2_prog.jpg"), "rb").read()
baseline = open(path("rgb_223x97_q90_s2_base.jpg"), "rb").read()
eoi, dqt = baseline.rindex(b"\xff\xd9"), baseline.index(b"\xff\xdb")
CORRUPT = "truncated or corrupt JPEG ("  # then libjpeg-turbo's message, or that no image header came
LIBJPEG = CORRUPT + "libjpeg-turbo: "
damaged = {
    "empty.jpg": (b"", "empty file (0 bytes)"),
    "soi_only.jpg": (b"\xff\xd8", CORRUPT + "no image header in its 2 bytes)"),
    "junk_after_soi.jpg": (b"\xff\xd8\xff" + rng.integers(0, 256, 300, dtype=np.uint8).tobytes(), CORRUPT),
    "cut_in_header.jpg": (good[:120], CORRUPT + "no image header in its 120 bytes)"),
    "cut_in_scan_header.jpg": (good[:good.index(b"\xff\xda") + 6], LIBJPEG),
    "cut_half.jpg": (good[:len(good) // 2], LIBJPEG + "Premature end of JPEG file"),
    "cut_before_eoi.jpg": (baseline[:eoi - 40], LIBJPEG + "Premature end of JPEG file"),
    # Pillow decodes this one (libjpeg only warns); kao stops on the warning (image.h).
    "junk_before_dqt.jpg": (baseline[:dqt] + b"\x00\x00" + baseline[dqt:], LIBJPEG + "Corrupt JPEG data"),
    "text.jpg": (b"name,label\nyamada,1\n", "not a PNG or JPEG file"),
}
damaged_paths = []
for name, (data, _) in damaged.items():
    open(path(name), "wb").write(data)
    damaged_paths.append(path(name))
for (name, (_, needle)), p, got in zip(damaged.items(), damaged_paths, decode(damaged_paths)):
    check(isinstance(got, str) and got.startswith(p + ":") and needle in got and "\n" not in got,
          f"{name}: expected one message naming the file with '{needle}', "
          f"got {got if isinstance(got, str) else 'pixels'}")
    if isinstance(got, str):
        print(f"  {name}: {got[len(TMP) + 1:]}")
check(np.array_equal(np.asarray(Image.open(path("junk_before_dqt.jpg")).convert("RGB")),
                     np.asarray(Image.open(path("rgb_223x97_q90_s2_base.jpg")).convert("RGB"))),
      "Pillow accepts the extraneous bytes (kao's stricter rule is what this checks)")

shutil.rmtree(TMP)
finish("test_image_jpeg")
