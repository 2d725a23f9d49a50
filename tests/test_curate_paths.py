"""kao curate's whole path, quickly enough for the sanitizer pass: the planted tree of
test_curate.py judged with a network trained for two epochs, checking only what holds for any
weights (every image judged, an exact copy is a near-duplicate, the dry run changes nothing, the
cache embeds 0 images on a rerun and 1 after one is added, --apply then --undo gives the tree
back). test_curate.py scores the verdicts of a network trained longer; it is labelled slow (five
minutes under ASan), so this test is what runs the analysis code under the sanitizers.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_curate  # noqa: E402
import train_common as t  # noqa: E402

test_curate.run(t.TINY.replace("epochs = 4", "epochs = 2"), False, "test_curate_paths")
