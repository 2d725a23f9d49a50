"""README.ja.md keeps up with README.md: both name the same kao commands, options and config keys.

From the code (fenced blocks and `inline spans`) of each file it collects:
  - subcommands: `kao X` / `build/kao X`;
  - options: every `--option`;
  - config keys: `section.key` tokens that src/config.c declares (so that file names such as
    train.log or model.onnx are not taken for keys);
  - ONNX metadata keys: `kao.xxx`;
  - the repository's configs and scripts: `configs/X.ini`, `scripts/X.sh`;
and checks that the two sets are equal, naming what one file has and the other lacks. Prose is
not searched: a term counts only where it is written as code, as a reader would copy it.

The check is shown to bite: README.ja.md with every mention of one of its options removed (and,
separately, with one subcommand removed, and README.md with an option added) must differ. Also:
each file links to the other in its first lines, and docs/deploy.md and docs/deploy.ja.md link
each other. Prints "N passed, N failed".
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import SOURCE_DIR, check, finish  # noqa: E402

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def code_parts(text):
    """The fenced blocks' bodies and the inline code spans outside them."""
    parts = FENCE.findall(text)
    parts += re.findall(r"`([^`\n]+)`", FENCE.sub("", text))
    return parts


def config_keys():
    src = open(os.path.join(SOURCE_DIR, "src", "config.c"), encoding="utf-8").read()
    return set(re.findall(r'"((?:[a-z_]+)\.[a-z][a-z0-9_]*)"', src))


KEYS = config_keys()


def terms(text):
    out = set()
    for s in code_parts(text):
        out |= {"kao " + c for c in re.findall(r"(?:^|[\s/(])kao\s+([a-z][a-z-]*)", s, re.M)}
        out |= set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", s))
        out |= set(re.findall(r"(?<![\w./])[a-z_]+\.[a-z][a-z0-9_]*", s)) & KEYS
        out |= set(re.findall(r"(?<![\w.])kao\.[a-z][a-z0-9_.-]*[a-z0-9]", s))
        out |= set(re.findall(r"(?:configs|scripts)/[a-z0-9_]+\.(?:ini|sh)", s))
    return out


def compare(en, ja, what):
    """Checks terms(en) == terms(ja); returns whether they were equal."""
    a, b = terms(en), terms(ja)
    return check(a == b, f"{what}: only in README.md: {sorted(a - b)}; only in README.ja.md: {sorted(b - a)}")


def read(*parts):
    with open(os.path.join(SOURCE_DIR, *parts), encoding="utf-8") as f:
        return f.read()


en, ja = read("README.md"), read("README.ja.md")
en_terms, ja_terms = terms(en), terms(ja)
print(f"README.md: {len(en_terms)} terms, README.ja.md: {len(ja_terms)} terms")
check(len(en_terms) >= 40 and any(t.startswith("kao ") for t in en_terms) and "--init" in en_terms and
      "data.min_images" in en_terms and "kao.threshold_eer" in en_terms, f"too few terms found: {sorted(en_terms)}")
compare(en, ja, "README.md vs README.ja.md")

# The check bites: one option's mentions removed from README.ja.md, one subcommand's, one option added.
option = "--resume" if "--resume" in ja_terms else sorted(t for t in ja_terms if t.startswith("--"))[0]
cut = re.sub(re.escape(option) + r"(?![a-z0-9-])", "", ja)
check(option not in terms(cut) and terms(cut) != en_terms,
      f"removing {option} from README.ja.md went unnoticed")
cut = re.sub(r"kao convert\b", "kao", ja)
check("kao convert" not in terms(cut) and terms(cut) != en_terms, "removing `kao convert` went unnoticed")
added = en + "\n`kao train --some-new-option`\n"
check(terms(added) - en_terms == {"--some-new-option"} and terms(added) != ja_terms, "an option added to README.md went unnoticed")
# ... and a key only in prose does not count, nor a file name that looks like a key.
check("train.log" not in en_terms and "model.onnx" not in en_terms, "file names taken for config keys")

# Each links to the other at the top.
check("README.ja.md" in "\n".join(en.splitlines()[:6]), "README.md links README.ja.md in its first lines")
check("README.md" in "\n".join(ja.splitlines()[:6]), "README.ja.md links README.md in its first lines")
dep, dep_ja = read("docs", "deploy.md"), read("docs", "deploy.ja.md")
check("deploy.ja.md" in "\n".join(dep.splitlines()[:6]) and "deploy.md" in "\n".join(dep_ja.splitlines()[:6]),
      "docs/deploy.md and docs/deploy.ja.md link each other")
check("docs/deploy.ja.md" in ja, "README.ja.md points to docs/deploy.ja.md")
finish("test_readme_ja")
