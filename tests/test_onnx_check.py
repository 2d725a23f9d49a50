"""`kao export --check` against onnx.checker and onnxruntime.

Exports the tiny b0 of tests/data (model_b0_tiny.weights.h5) at 32x32 with tests/onnx_export_tool
(the `kao export` command alone), then:
  - the good files (opset 13; opset 17 with --normalize) pass kao, onnx.checker(full_check=True)
    and onnxruntime;
  - one file per class of defect, made from the good one with the onnx package (a byte edit where
    the package cannot write the defect): kao refuses each with one line naming the file and the
    node; the test prints which of onnx.checker and onnxruntime refuse it too, and requires that
    they do where they are known to;
  - control characters (ESC, BEL, DEL, C1) in a metadata value and in an op type reach neither
    stdout nor stderr raw: they are printed escaped (\\x1b, \\u009b);
  - a seeded mutation loop (random bytes of the file, random fields of the model): every file
    kao accepts passes onnx.checker(full_check=True) and loads and runs in onnxruntime; kao never
    crashes (rc 0 or 1; under ASan/UBSan any report aborts) and always answers in one line.

Run by ctest with KAO_SOURCE_DIR / KAO_BINARY_DIR set; prints "N passed, N failed".
"""
import concurrent.futures
import copy
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import BINARY_DIR, SOURCE_DIR, check, finish  # noqa: E402

TOOL = os.path.join(BINARY_DIR, "tests", "onnx_export_tool")
WEIGHTS = os.path.join(SOURCE_DIR, "tests", "data", "model_b0_tiny.weights.h5")
SEED = 16
BYTE_MUTATIONS = FIELD_MUTATIONS = 100
# A raw control character on a terminal: C0 but newline, DEL, and C1 (U+0080..U+009F).
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f\x80-\x9f]")

ort.set_default_logger_severity(3)  # the mutants make onnxruntime warn a lot


def kao_check(path):
    r = subprocess.run([TOOL, "--check", path], capture_output=True)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def others_refuse(path):
    """Which of onnx.checker (full_check) and onnxruntime (load and one run) refuse path."""
    refusing = []
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
    except Exception:  # noqa: BLE001 (the checker raises several exception types)
        refusing.append("onnx.checker")
    try:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        x = session.get_inputs()[0]
        shape = [d if isinstance(d, int) else 2 for d in x.shape]
        session.run(None, {x.name: np.zeros(shape, np.float32)})
    except Exception:  # noqa: BLE001
        refusing.append("onnxruntime")
    return refusing


def one_line_refusal(rc, out, err, path):
    return rc == 1 and err.count("\n") == 1 and err.startswith(f"kao: error: {path}: ") and out == ""


# ---- one file per class of defect ---------------------------------------------------------------

def first(model, op):
    return next(n for n in model.graph.node if n.op_type == op)


def attribute(node, name):
    return next(a for a in node.attribute if a.name == name)


def misspelled_op(m):
    first(m, "Conv").op_type = "Cnov"


def unknown_attribute(m):
    attribute(first(m, "Conv"), "strides").name = "stride"


def wrong_attribute_type(m):
    attribute(first(m, "Conv"), "kernel_shape").type = onnx.AttributeProto.INT


def no_attribute_type(m):
    attribute(first(m, "Conv"), "pads").ClearField("type")


def missing_required_attribute(m):
    gemm = first(m, "Gemm")
    gemm.attribute.remove(attribute(gemm, "transB"))


def wrong_input_count(m):
    mul = first(m, "Mul")
    mul.input.append(mul.input[0])


def wrong_conv_weight_shape(m):
    w = next(t for t in m.graph.initializer if t.name == "conv_stem.fused.weight")
    w.dims[0], w.dims[1] = w.dims[1], w.dims[0]  # [8, 3, 3, 3] -> [3, 8, 3, 3]: same size


def undefined_input(m):
    first(m, "Sigmoid").input[0] = "nowhere"


def other_domain(m):
    first(m, "Add").domain = "com.example"


def output_declared_wrong(m):
    m.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 33


def duplicate_metadata_key(m):
    m.metadata_props.add(key="kao.mean", value="0,0,0")


def field_kao_does_not_write(m):
    attribute(first(m, "Conv"), "pads").doc_string = "AttributeProto.doc_string, field 13"


def control_characters_in_op_type(m):
    first(m, "Sigmoid").op_type = "Sig\x1b[2Jmoid"


DEFECTS = [
    # (what, edit, what kao's message holds, whether onnx.checker / onnxruntime refuse it too)
    ("misspelled op type", misspelled_op, "node 0 (Cnov 'conv_stem'): op type 'Cnov' is not one kao emits", True),
    ("unknown attribute name", unknown_attribute, "attribute 'stride' is not allowed", True),
    ("attribute of the wrong type", wrong_attribute_type, "'kernel_shape' is of type INT, not INTS", True),
    ("attribute without a type", no_attribute_type, "attribute 'pads' has no type", True),
    ("missing required attribute", missing_required_attribute, "(Gemm 'embedding'): attribute 'transB' is missing",
     True),
    ("wrong input count", wrong_input_count, "3 inputs (Mul takes 2)", True),
    ("wrong Conv weight shape", wrong_conv_weight_shape, "(Conv 'conv_stem'): input [batch, 3, 32, 32] does not fit "
     "weight [3, 8, 3, 3]", True),
    ("node input never defined", undefined_input, "input 0 'nowhere' is defined by nothing before it", True),
    ("op in another domain", other_domain, "domain 'com.example'", True),
    ("output declared with another shape", output_declared_wrong, "declared [batch, 33], computes [batch, 32]", True),
    ("duplicate metadata key", duplicate_metadata_key, "metadata key 'kao.mean' appears twice", True),
    ("an ONNX field kao does not write", field_kao_does_not_write, "AttributeProto field 13 is not one kao writes",
     False),
    ("control characters in an op type", control_characters_in_op_type, "op type 'Sig\\x1b[2Jmoid' is not one", True),
]


def defects(tmp, good):
    for what, edit, message, others_do in DEFECTS:
        m = onnx.load(good)
        edit(m)
        path = os.path.join(tmp, "defect.onnx")
        onnx.save(m, path)
        report(what, path, "not a kao export", message, others_do)

    # Not UTF-8: the onnx package writes only valid strings, so a byte edit of the same length.
    data = open(good, "rb").read()
    path = os.path.join(tmp, "defect.onnx")
    open(path, "wb").write(data.replace(b"conv_stem", b"conv\xffstem", 1))
    report("a name that is not UTF-8", path, "not a valid ONNX model", "NodeProto.input is not UTF-8 text", True)


def report(what, path, kind, message, others_do):
    rc, out, err = kao_check(path)
    refusing = others_refuse(path)
    print(f"  {what}: {err.strip()}\n    refused by: kao, {', '.join(refusing) or 'nothing else'}")
    check(one_line_refusal(rc, out, err, path) and f"{path}: {kind}: " in err and message in err,
          f"{what}: kao exit {rc}, stdout {out!r}, stderr {err!r} (expected '{message}')")
    check(not RAW_CONTROL.search(out + err), f"{what}: raw control character in {err!r}")
    if others_do:
        check(refusing, f"{what}: onnx.checker and onnxruntime both accept it")


def control_characters_printed(tmp, good):
    m = onnx.load(good)
    m.metadata_props[0].value = "evil\x1b]0;title\x07\x1b[31mred\x7f\u0085\u009b2J tab\tend"
    path = os.path.join(tmp, "escape.onnx")
    onnx.save(m, path)
    rc, out, err = kao_check(path)
    want = "signature = evil\\x1b]0;title\\x07\\x1b[31mred\\x7f\\u0085\\u009b2J tab\\x09end\n"
    check(rc == 0 and want in out, f"escaped metadata: exit {rc}, stdout {out!r}, stderr {err!r}")
    check(not RAW_CONTROL.search(out + err), f"raw control character printed: {out!r}")
    print(f"  control characters in metadata: printed as {want.strip()!r}; refused by: "
          f"{', '.join(others_refuse(path)) or 'nothing'}")


# ---- the mutation loop ----------------------------------------------------------------------------

def raw_data_spans(data, model):
    """(start, end) of every initializer's raw_data in the file, sorted."""
    return sorted((data.find(t.raw_data), data.find(t.raw_data) + len(t.raw_data)) for t in model.graph.initializer)


def byte_mutant(rng, data, structure):
    """1-3 byte edits, nine in ten in the bytes outside the weights (the model's structure)."""
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 3])):
        p = rng.choice(structure) if rng.random() < 0.9 else rng.randrange(len(b))
        kind = rng.randrange(5)
        if kind == 0:
            b[p] = rng.randrange(256)
        elif kind == 1:
            b[p] ^= 1 << rng.randrange(8)
        elif kind == 2:
            del b[p]
        elif kind == 3:
            b.insert(p, rng.randrange(256))
        else:
            b[p] = rng.choice([0, 0x1B, 0x7F, 0x80, 0xFF])
    return bytes(b)


def edit_string(rng, s):
    s = list(s) or ["x"]
    i = rng.randrange(len(s))
    kind = rng.randrange(3)
    if kind == 0:
        s[i] = rng.choice("abcxyzACX_.019")
    elif kind == 1:
        del s[i]
    else:
        s.insert(i, rng.choice("abcx_."))
    return "".join(s)


def edit_attribute(rng, node):
    a = rng.choice(node.attribute)
    kind = rng.randrange(5)
    if kind == 0:
        a.name = edit_string(rng, a.name)
    elif kind == 1:
        a.type = rng.randrange(9)
    elif kind == 2:
        a.ClearField("type")
    elif kind == 3 and a.ints:
        a.ints[rng.randrange(len(a.ints))] = rng.choice([-1, 0, 1, 2, 3, 5, 1 << 40])
    elif kind == 3:
        a.i = rng.choice([-1, 0, 1, 2, 3, 7])
    else:
        node.attribute.remove(a)


def edit_node(rng, m, node, names):
    kind = rng.randrange(9)
    if kind == 0:
        node.op_type = edit_string(rng, node.op_type)
    elif kind == 1 and node.attribute:
        edit_attribute(rng, node)
    elif kind == 2:
        node.attribute.append(helper.make_attribute(*rng.choice([
            ("group", 2), ("dilations", [1, 1]), ("dilations", [2, 2]), ("auto_pad", "VALID"), ("axis", 1),
            ("transA", 0), ("alpha", 1.0), ("p", 2), ("kernel_shape", [3, 3])])))
    elif kind == 3 and node.input:
        del node.input[rng.randrange(len(node.input))]
    elif kind == 4:
        node.input.append(rng.choice(names))
    elif kind == 5 and node.input:
        node.input[rng.randrange(len(node.input))] = rng.choice(names)
    elif kind == 6:
        node.output[0] = rng.choice(names)
    elif kind == 7:
        node.name = rng.choice(m.graph.node).name
    else:
        node.domain = rng.choice(["ai.onnx", "com.example"])


def edit_graph(rng, m, names):
    g = m.graph
    kind = rng.randrange(8)
    if kind == 0:
        t = rng.choice(g.initializer)
        dims = list(t.dims)
        rng.shuffle(dims)
        dims[rng.randrange(len(dims))] = rng.choice([0, 1, 2, dims[0]])
        t.ClearField("dims")
        t.dims.extend(dims)
    elif kind == 1:
        t = rng.choice(g.initializer)
        values = np.frombuffer(t.raw_data, np.float32).tolist()
        t.ClearField("raw_data")
        t.float_data.extend(values + [0.0] * rng.randrange(2))
    elif kind == 2:
        rng.choice(g.initializer).data_type = rng.choice([0, 7, 10, 11])
    elif kind == 3:
        value = rng.choice([g.input[0], g.output[0]])
        d = rng.choice(value.type.tensor_type.shape.dim)
        if rng.random() < 0.5:
            d.dim_value = rng.choice([0, 1, 3, 31, 32, 33])
        else:
            d.dim_param = rng.choice(["batch", "n", ""])
    elif kind == 4:
        m.opset_import[0].version = rng.choice([11, 13, 14, 17, 18, 21])
        m.ir_version = rng.choice([6, 7, 8, 9, 10])
    elif kind == 5:
        i = rng.randrange(len(g.node) - 1)
        a, b = copy.deepcopy(g.node[i]), copy.deepcopy(g.node[i + 1])
        g.node[i].CopyFrom(b)
        g.node[i + 1].CopyFrom(a)
    elif kind == 6:
        del g.node[rng.randrange(len(g.node))]
    else:
        entry = rng.choice(m.metadata_props)
        m.metadata_props.add(key=rng.choice([entry.key, "x"]), value="v")


def field_mutant(rng, model):
    m = copy.deepcopy(model)
    names = [m.graph.input[0].name] + [t.name for t in m.graph.initializer] + [n.output[0] for n in m.graph.node]
    for _ in range(rng.choice([1, 1, 2])):
        if rng.random() < 0.6:
            edit_node(rng, m, rng.choice(m.graph.node), names)
        else:
            edit_graph(rng, m, names)
    return m.SerializeToString()


def check_mutant(job):
    path, data = job
    open(path, "wb").write(data)
    return (path, *kao_check(path))


def mutation_loop(tmp, good):
    data = open(good, "rb").read()
    model = onnx.load(good)
    structure, start = [], 0
    for a, b in raw_data_spans(data, model):
        structure += range(start, a)
        start = b
    structure += range(start, len(data))

    rng = random.Random(SEED)
    kinds = ["byte"] * BYTE_MUTATIONS + ["field"] * FIELD_MUTATIONS
    counts = {k: [0, 0] for k in ("byte", "field")}  # accepted, refused
    disagreements = crashes = 0
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for chunk in range(0, len(kinds), 16):
            jobs = [(os.path.join(tmp, f"mutant{i}.onnx"),
                     byte_mutant(rng, data, structure) if kinds[i] == "byte" else field_mutant(rng, model))
                    for i in range(chunk, min(chunk + 16, len(kinds)))]
            for i, (path, rc, out, err) in enumerate(pool.map(check_mutant, jobs), chunk):
                kind = kinds[i]
                if rc not in (0, 1) or (rc == 1 and not one_line_refusal(rc, out, err, path)) or \
                        RAW_CONTROL.search(out + err):
                    crashes += 1
                    check(False, f"{kind} mutant {i}: exit {rc}, stdout {out[-300:]!r}, stderr {err[-1500:]!r}")
                    continue
                counts[kind][rc] += 1
                refusing = others_refuse(path) if rc == 0 else []
                if refusing:
                    disagreements += 1
                    keep = os.path.join(tempfile.gettempdir(), f"kao_check_disagreement_{kind}{i}.onnx")
                    shutil.copyfile(path, keep)
                    check(False, f"{kind} mutant {i}: kao accepts what {', '.join(refusing)} refuse(s) (kept: {keep})")
                os.remove(path)
    for kind, (accepted, refused) in counts.items():
        print(f"  {kind} mutations (seed {SEED}): kao accepts {accepted}, refuses {refused}")
    print(f"  accepted by kao but refused by onnx.checker or onnxruntime: {disagreements}; crashes: {crashes} "
          f"({time.time() - t0:.1f} s)")
    check(disagreements == 0 and crashes == 0, "mutation loop")
    check(all(a > 0 and r > 0 for a, r in counts.values()), f"mutation loop covers both answers: {counts}")


def main():
    tmp = tempfile.mkdtemp(prefix="kao_onnx_check_")
    try:
        good = os.path.join(tmp, "good.onnx")
        norm = os.path.join(tmp, "norm17.onnx")
        for path, args in ((good, []), (norm, ["--opset", "17", "--normalize"])):
            r = subprocess.run([TOOL, "--weights", WEIGHTS, "--out", path, "--size", "32", *args],
                               capture_output=True, text=True)
            check(r.returncode == 0, f"export {args}: {r.stderr}")
            t0 = time.time()
            rc, out, err = kao_check(path)
            seconds = time.time() - t0
            refusing = others_refuse(path)
            print(f"  good {os.path.basename(path)}: kao --check {seconds * 1000:.0f} ms (with start-up); "
                  f"refused by: {', '.join(refusing) or 'nothing'}")
            check(rc == 0 and out.startswith(f"{path}: ONNX model") and not refusing,
                  f"good {path}: exit {rc} {err!r}, refused by {refusing}")
        defects(tmp, good)
        control_characters_printed(tmp, good)
        mutation_loop(tmp, good)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish("test_onnx_check")


if __name__ == "__main__":
    main()
