#!/usr/bin/env python3
"""convert_timm.py — timm EfficientNetV2 weights <-> kao's HDF5 weights files.

A kao weights file (include/kao/weights.h) holds one float32 dataset per state_dict tensor at the
root, named by timm's key, in PyTorch shape and state_dict order; each BatchNorm's
`num_batches_tracked` as an int64 scalar; and the root attributes format="kao-weights",
format_version=1, architecture (timm model name), width_mult, depth_mult (float64) and
embedding_dim (int64, the classifier's out_features); with --pretrained also what timm's
pretrained_cfg says the weights expect: input_mean, input_std (float64[3], RGB, 0..1 scale) and
input_height, input_width (int64, its test_input_size), which kao train, embed, verify and export
use without being told (the _s, _m, _l and b3 weights want mean = std = 0.5, b0-b2 ImageNet's).

Run it with the tools environment: PY=$(bash scripts/setup_python.sh); $PY tools/convert_timm.py ...

  to-h5 --model NAME [--channel-multiplier X] [--depth-multiplier Y]
        (--pretrained | --random [--seed N] | --state-dict FILE.pth) [--num-classes N] --out W.h5
      Writes a timm model as a kao weights file (atomically).
      --pretrained   timm's ImageNet weights, taken from the local Hugging Face cache (or torch hub's
                     checkpoint folder) only: nothing is downloaded, and a clear error says so when
                     they are not cached. The 1000-class classifier is kept unless --num-classes is
                     given; kao skips a head that does not match its embedding size and
                     initialises a fresh one. The normalisation and input size of the variant's
                     pretrained_cfg are recorded. (kao reads timm's model.safetensors itself too:
                     kao convert, or any command's --weights / --init.)
      --random       timm's own initialisation after torch.manual_seed(--seed) (default seed 0).
      --state-dict   a checkpoint of this architecture (e.g. fine-tuned in PyTorch): .pth/.pt or
                     .safetensors, read by timm's own load_state_dict (which unwraps "state_dict",
                     "state_dict_ema", "model_ema" and "model" and strips DDP's "module." and
                     torch.compile's "_orig_mod." prefixes), also unwrapping "model_state_dict"
                     (PyTorch's tutorial layout); it is loaded with strict=True first, so a mismatch
                     is reported here.
      --num-classes  classifier out_features, which kao calls embedding_dim. Default: 1000 with
                     --pretrained, 512 with --random, the state_dict's classifier size otherwise.
      Multipliers default to the variant's own (b1: depth 1.1, b2: 1.1/1.2, b3: 1.2/1.4).

  to-timm W.h5 --out model.pth
      Builds the timm model that W.h5's attributes describe, loads the file into it with
      load_state_dict(strict=True) and saves model.state_dict() with torch.save.

  check W.h5
      Loads W.h5 into timm strictly, runs one forward pass and prints the architecture and the
      parameter count.

Models: tf_efficientnetv2_b0, _b1, _b2, _b3, _s, _m, _l. Exit status 0 on success, 1 with
"convert_timm: error: ..." on stderr otherwise.
"""
import argparse
import math
import os
import sys
import tempfile

import kao_seal

FORMAT = "kao-weights"
FORMAT_VERSION = 1

# timm's generator for each variant and the variant's own (channel, depth) multipliers
# (timm/models/efficientnet.py: _gen_efficientnetv2_base/_s/_m/_l and the tf_efficientnetv2_* entries).
VARIANTS = {
    "tf_efficientnetv2_b0": ("_gen_efficientnetv2_base", 1.0, 1.0),
    "tf_efficientnetv2_b1": ("_gen_efficientnetv2_base", 1.0, 1.1),
    "tf_efficientnetv2_b2": ("_gen_efficientnetv2_base", 1.1, 1.2),
    "tf_efficientnetv2_b3": ("_gen_efficientnetv2_base", 1.2, 1.4),
    "tf_efficientnetv2_s": ("_gen_efficientnetv2_s", 1.0, 1.0),
    "tf_efficientnetv2_m": ("_gen_efficientnetv2_m", 1.0, 1.0),
    "tf_efficientnetv2_l": ("_gen_efficientnetv2_l", 1.0, 1.0),
}


class Fail(Exception):
    """An error for the user: printed as one line, exit status 1."""


def describe(variant, cm, dm):
    _, cm0, dm0 = VARIANTS[variant]
    if math.isclose(cm, cm0) and math.isclose(dm, dm0):
        return variant
    return f"{variant} (width {cm:g}, depth {dm:g})"


def multipliers(variant, cm, dm):
    if variant not in VARIANTS:
        raise Fail(f"unknown model '{variant}'; known: {', '.join(VARIANTS)}")
    _, cm0, dm0 = VARIANTS[variant]
    return (cm0 if cm is None else float(cm)), (dm0 if dm is None else float(dm))


def cached_pretrained_file(variant):
    """The path of timm's pretrained weights in a local cache, or a Fail naming where it looked."""
    import timm
    cfg = timm.models.get_pretrained_cfg(variant)
    looked = []
    if cfg is not None and cfg.hf_hub_id:
        from huggingface_hub import constants, hf_hub_download
        for name in ("model.safetensors", "pytorch_model.bin"):
            try:
                return hf_hub_download(cfg.hf_hub_id, name, local_files_only=True)
            except Exception:  # not cached (LocalEntryNotFoundError and friends)
                pass
        looked.append(f"Hugging Face cache {constants.HF_HUB_CACHE} ({cfg.hf_hub_id})")
    if cfg is not None and cfg.url:
        import torch
        path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(cfg.url))
        if os.path.isfile(path):
            return path
        looked.append(f"torch hub checkpoints {os.path.dirname(path)}")
    raise Fail(f"pretrained weights for {variant} are not in the local cache (looked in "
               f"{'; '.join(looked) or 'nothing: timm knows no pretrained weights for it'}); "
               f"nothing is downloaded here: fetch them once with network access, e.g. "
               f"python -c \"import timm; timm.create_model('{variant}', pretrained=True)\", "
               f"or use --random")


def build_timm(variant, cm, dm, num_classes, pretrained_file=None):
    """The timm model; default multipliers go through timm.create_model, others through the
    variant's generator (the registered b1-b3 functions fix their own multipliers)."""
    import timm
    from timm.models import efficientnet
    gen_name, cm0, dm0 = VARIANTS[variant]
    if math.isclose(cm, cm0) and math.isclose(dm, dm0):
        if pretrained_file:
            return timm.create_model(variant, pretrained=True, num_classes=num_classes,
                                     pretrained_cfg_overlay=dict(file=pretrained_file))
        return timm.create_model(variant, num_classes=num_classes)
    if pretrained_file:
        raise Fail(f"pretrained weights exist only for {variant}'s own multipliers "
                   f"({cm0:g}, {dm0:g}), not ({cm:g}, {dm:g})")
    # What the registered tf_ functions add (bn_eps 1e-3, 'same' padding; docs/architecture.md, 'Variants').
    return getattr(efficientnet, gen_name)(variant, channel_multiplier=cm, depth_multiplier=dm,
                                           bn_eps=1e-3, pad_type="same", num_classes=num_classes)


def randomise_bn(model, seed, mean_std=0.1, var_min=1.0, var_range=0.5):
    """Random BatchNorm affine parameters and running statistics (for tests and reference data:
    timm's initial ones are 1, 0, 0, 1, under which a wrong BN, or a wrong fold of BN into a conv,
    can pass). From torch.Generator seed: weight 1 + 0.2·N(0,1), bias 0.1·N(0,1), running_mean
    mean_std·N(0,1), running_var var_min + var_range·U(0,1), drawn layer by layer in module order.
    Returns model (its train/eval mode unchanged)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(mean_std * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(var_min + var_range * torch.rand(m.running_var.shape, generator=g))
    return model


def load_strict(model, state_dict, source):
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise Fail(f"{source} does not fit {type(model).__name__}: {e}") from None


def read_checkpoint(path):
    """A state_dict from any checkpoint timm's load_state_dict reads, or a Fail naming the file."""
    from timm.models import load_state_dict
    from timm.models._helpers import clean_state_dict
    if not os.path.isfile(path):
        raise Fail(f"{path}: no such file")
    try:
        sd = load_state_dict(path)
    except Exception as e:  # torch.load, safetensors and pickle each raise their own types
        raise Fail(f"{path}: cannot read a PyTorch or safetensors checkpoint: {e}") from None
    if isinstance(sd.get("model_state_dict"), dict):
        sd = clean_state_dict(sd["model_state_dict"])
    return sd


def write_h5(path, model, variant, cm, dm, pretrained_cfg=None):
    import h5py
    import numpy as np
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise Fail(f"{path}: folder '{folder}' does not exist")
    sd = model.state_dict()
    if "classifier.weight" not in sd:
        raise Fail("the model has no classifier (num_classes 0); kao needs one")
    # Created exclusively beside the target (nothing planted there is followed), renamed over it.
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp.", dir=folder)
    os.close(fd)
    try:
        # track_order: datasets list in state_dict order; libver: readable by HDF5 1.10 (Debian);
        # the user block holds kao's seal (kao_seal.py), written once HDF5 has closed the file.
        with h5py.File(tmp, "w", track_order=True, libver=("earliest", "v110"),
                       userblock_size=kao_seal.BLOCK) as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
            f.attrs["architecture"] = variant
            f.attrs["width_mult"] = np.float64(cm)
            f.attrs["depth_mult"] = np.float64(dm)
            f.attrs["embedding_dim"] = np.int64(sd["classifier.weight"].shape[0])
            if pretrained_cfg:  # what the weights expect (include/kao/trained_info.h)
                size = pretrained_cfg.get("test_input_size") or pretrained_cfg["input_size"]
                f.attrs["input_height"] = np.int64(size[1])
                f.attrs["input_width"] = np.int64(size[2])
                f.attrs["input_mean"] = np.array(pretrained_cfg["mean"], dtype=np.float64)
                f.attrs["input_std"] = np.array(pretrained_cfg["std"], dtype=np.float64)
            for key, value in sd.items():
                array = value.detach().cpu().numpy()
                if key.endswith(".num_batches_tracked"):
                    f.create_dataset(key, data=np.int64(array))
                else:
                    f.create_dataset(key, data=array.astype(np.float32))
        kao_seal.seal(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_h5(path):
    """(variant, cm, dm, state_dict) from a kao weights file."""
    import h5py
    import numpy as np
    import torch
    if not os.path.isfile(path):
        raise Fail(f"{path}: no such file")
    if problem := kao_seal.check(path):
        raise Fail(f"{path}: {problem}")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise Fail(f"{path}: not an HDF5 file (or truncated/corrupt)") from None
    with f:
        def attr(name):
            if name not in f.attrs:
                raise Fail(f"{path}: missing attribute '{name}' (not written by kao or convert_timm.py?)")
            value = f.attrs[name]
            return value.decode() if isinstance(value, bytes) else value
        if "format" in f.attrs and attr("format") != FORMAT:
            raise Fail(f"{path}: a '{attr('format')}' file, not a weights file")
        variant = str(attr("architecture"))
        cm, dm = multipliers(variant, float(attr("width_mult")), float(attr("depth_mult")))
        sd = {}
        for key, item in f.items():
            if isinstance(item, h5py.Dataset):
                sd[key] = torch.from_numpy(np.array(item[()]))
    return variant, cm, dm, sd


def cmd_to_h5(args):
    variant = args.model
    cm, dm = multipliers(variant, args.channel_multiplier, args.depth_multiplier)
    import torch
    pretrained_cfg = None
    if args.pretrained:
        model = build_timm(variant, cm, dm, args.num_classes or 1000, cached_pretrained_file(variant))
        pretrained_cfg = model.pretrained_cfg
    elif args.state_dict:
        sd = read_checkpoint(args.state_dict)
        classes = args.num_classes or (sd["classifier.weight"].shape[0] if "classifier.weight" in sd else 0)
        model = build_timm(variant, cm, dm, classes)
        load_strict(model, sd, args.state_dict)
    else:
        torch.manual_seed(args.seed)
        model = build_timm(variant, cm, dm, args.num_classes or 512)
    write_h5(args.out, model, variant, cm, dm, pretrained_cfg)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.out}: {describe(variant, cm, dm)}, classifier {model.num_classes} outputs, "
          f"{params:,} parameters, {len(model.state_dict())} tensors")


def model_from_h5(path):
    variant, cm, dm, sd = read_h5(path)
    classes = sd["classifier.weight"].shape[0] if "classifier.weight" in sd else 0
    model = build_timm(variant, cm, dm, classes)
    load_strict(model, sd, path)
    return model, variant, cm, dm


def cmd_to_timm(args):
    import torch
    model, variant, cm, dm = model_from_h5(args.file)
    torch.save(model.state_dict(), args.out)
    print(f"{args.out}: {describe(variant, cm, dm)}, {len(model.state_dict())} tensors")


def cmd_check(args):
    import torch
    model, variant, cm, dm = model_from_h5(args.file)
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.file}: {describe(variant, cm, dm)}, classifier {model.num_classes} outputs: "
          f"{params:,} parameters; load_state_dict(strict=True) ok, forward gives {list(out.shape)}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="convert_timm.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    h = sub.add_parser("to-h5", help="timm model -> kao weights file")
    h.add_argument("--model", required=True, help="tf_efficientnetv2_b0 ... _l")
    h.add_argument("--channel-multiplier", type=float)
    h.add_argument("--depth-multiplier", type=float)
    source = h.add_mutually_exclusive_group(required=True)
    source.add_argument("--pretrained", action="store_true", help="ImageNet weights from the local cache")
    source.add_argument("--random", action="store_true", help="timm's initialisation with --seed")
    source.add_argument("--state-dict", metavar="FILE", help="a .pth/.pt or .safetensors checkpoint")
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--num-classes", type=int)
    h.add_argument("--out", required=True, metavar="W.h5")
    t = sub.add_parser("to-timm", help="kao weights file -> PyTorch state_dict")
    t.add_argument("file", metavar="W.h5")
    t.add_argument("--out", required=True, metavar="model.pth")
    c = sub.add_parser("check", help="load a kao weights file into timm strictly")
    c.add_argument("file", metavar="W.h5")
    args = p.parse_args(argv)
    if args.command == "to-h5" and args.num_classes is not None and args.num_classes < 1:
        p.error("--num-classes must be at least 1")
    try:
        {"to-h5": cmd_to_h5, "to-timm": cmd_to_timm, "check": cmd_check}[args.command](args)
    except Fail as e:
        print(f"convert_timm: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
