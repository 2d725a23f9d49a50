"""Reference data for kao's verification metrics (src/metrics.c), computed by scikit-learn and NumPy.

Run from the repository root with the tools' python:
    $(bash scripts/setup_python.sh) tools/gen_metrics_reference.py
It rewrites tests/data/metrics_reference.h5 (about 100 KB), read by tests/test_metrics.c.
Seeded: a rerun writes the same numbers (numpy 1.x/2.x default_rng, scikit-learn 1.x).

Definitions (include/kao/metrics.h), each computed here without kao's ROC walk:
  fpr, tpr       sklearn.metrics.roc_curve(same, scores, drop_intermediate=False)
  auc            sklearn.metrics.roc_auc_score(same, scores)
  counts         numpy: accept = scores >= threshold
  best_*         brute force over every distinct score as threshold: the highest balanced accuracy
                 (TPR + TNR) / 2, ties to the highest threshold (reject-all, +inf, is no candidate)
  eer            the crossing of the ROC polyline with FPR = 1 - TPR, found by scipy's brentq on
                 the polyline parametrised by segment index (f(t) = FPR(t) + TPR(t) - 1 grows
                 strictly); eer_threshold: the thresholds interpolated at the same t, roc_curve's
                 first threshold (+inf) replaced by the highest score
  tar_at_far     max(tpr[fpr <= far]) for far 1e-2 and 1e-3
  far_1e3_threshold  brute force: the lowest distinct score t with mean(diff scores >= t) <= 1e-3,
                 else numpy.nextafter(max score, inf) in float32

Layout: root attr num_cases; group /case<k> (k = 0..num_cases-1) with attr name (string) and
  threshold (f64); datasets scores (n) f32, same (n) i32 0/1, fpr (m) f64, tpr (m) f64, and
  attrs auc, eer, eer_threshold, tar_at_far_1e2, tar_at_far_1e3, far_1e3_threshold, best_threshold,
  best_balanced_accuracy, accuracy (f64), tp, fp, tn, fn, same_pairs, diff_pairs (int).
"""
import os

import h5py
import numpy as np
from scipy.optimize import brentq
from sklearn.metrics import roc_auc_score, roc_curve

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "metrics_reference.h5")


def reference(scores, same, threshold):
    s = scores.astype(np.float64)  # exact: the float32 scores kao reads
    y = same.astype(bool)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    assert np.isinf(thr[0]) or thr[0] > s.max()  # sklearn's "reject all" point
    r = {"fpr": fpr, "tpr": tpr, "auc": roc_auc_score(y, s)}

    accept = s >= threshold
    r["tp"] = int(np.sum(accept & y))
    r["fp"] = int(np.sum(accept & ~y))
    r["tn"] = int(np.sum(~accept & ~y))
    r["fn"] = int(np.sum(~accept & y))
    r["accuracy"] = float(np.mean(accept == y))

    best_acc, best_t = -1.0, None
    for t in sorted(set(s.tolist()), reverse=True):
        acc = 0.5 * (float(np.mean(s[y] >= t)) + float(np.mean(s[~y] < t)))
        if acc > best_acc + 1e-15:
            best_acc, best_t = acc, t
    r["best_balanced_accuracy"], r["best_threshold"] = best_acc, best_t

    within = [t for t in set(s.tolist()) if np.mean(s[~y] >= t) <= 1e-3]
    r["far_1e3_threshold"] = (float(min(within)) if within
                              else float(np.nextafter(np.float32(s.max()), np.float32(np.inf))))

    thr_interp = thr.astype(np.float64).copy()
    thr_interp[0] = s.max()
    t_axis = np.arange(len(fpr), dtype=np.float64)

    def f(t):
        return np.interp(t, t_axis, fpr) + np.interp(t, t_axis, tpr) - 1.0

    t_star = brentq(f, 0.0, len(fpr) - 1.0, xtol=1e-14, rtol=4 * np.finfo(float).eps)
    r["eer"] = float(np.interp(t_star, t_axis, fpr))
    r["eer_threshold"] = float(np.interp(t_star, t_axis, thr_interp))

    for far, key in ((1e-2, "tar_at_far_1e2"), (1e-3, "tar_at_far_1e3")):
        r[key] = float(np.max(tpr[fpr <= far]))
    r["same_pairs"], r["diff_pairs"] = int(y.sum()), int((~y).sum())
    return r


def cases():
    rng = np.random.default_rng(20240605)
    # Hand-made: a few mistakes around the middle.
    yield "hand", [0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4, 0.3, 0.2, 0.1], [1, 1, 0, 1, 0, 1, 0, 0, 1, 0], 0.4
    # Scores equal to the threshold count as accepted; ties across kinds.
    yield "ties_at_threshold", [0.4, 0.4, 0.4, 0.5, 0.3, 0.3, 0.7], [1, 0, 1, 0, 1, 0, 1], 0.4
    yield "all_equal", [0.5] * 10, [1, 0, 0, 1, 0, 0, 0, 1, 0, 0], 0.4
    yield "separable", [0.95, 0.9, 0.85, 0.8, 0.3, 0.2, 0.1, 0.0, -0.1], [1, 1, 1, 1, 0, 0, 0, 0, 0], 0.4
    yield "inverted", [0.9, 0.8, 0.7, 0.3, 0.2], [0, 0, 0, 1, 1], 0.4
    yield "minimal", [0.2, 0.6], [1, 0], 0.4
    # Random: gaussian same/different scores like a trained model's, kao's default threshold.
    n_same, n_diff = 150, 850
    s = np.concatenate([rng.normal(0.6, 0.15, n_same), rng.normal(0.1, 0.15, n_diff)])
    y = np.concatenate([np.ones(n_same), np.zeros(n_diff)])
    perm = rng.permutation(len(s))
    yield "random_gauss", np.clip(s[perm], -1, 1), y[perm], 0.4
    # Heavy ties: scores on a 1/8 grid.
    s = np.round(rng.uniform(-1, 1, 400) * 8) / 8
    y = (rng.uniform(0, 1, 400) < 0.3 + 0.4 * (s > 0)).astype(int)
    yield "random_grid_ties", s, y, 0.25
    # FAR boundaries hit exactly: with 100 and 1000 different pairs, FAR 1e-2 and 1e-3 are whole false-accept counts.
    for n_diff, name in ((100, "far_boundary_100"), (1000, "far_boundary_1000")):
        s = np.concatenate([rng.normal(0.5, 0.2, 50), rng.normal(0.0, 0.2, n_diff)])
        y = np.concatenate([np.ones(50), np.zeros(n_diff)])
        yield name, s, y, 0.3
    # Crossing in the first ROC segment: the top score group holds both kinds.
    yield "first_segment", [0.9, 0.9, 0.9, 0.1, 0.0], [1, 1, 0, 0, 0], 0.5
    # Few same pairs among many different ones, overlapping: rejecting every pair has the best
    # plain accuracy (0.975), the best balanced accuracy needs a real threshold.
    s = np.concatenate([rng.normal(0.3, 0.1, 5), rng.normal(0.1, 0.1, 200)])
    y = np.concatenate([np.ones(5), np.zeros(200)])
    yield "imbalanced", s, y, 0.4
    # 3000 different pairs: FAR 1e-3 allows 3 false accepts.
    s = np.concatenate([rng.normal(0.5, 0.2, 300), rng.normal(0.0, 0.2, 3000)])
    y = np.concatenate([np.ones(300), np.zeros(3000)])
    yield "far_3000", s, y, 0.4


def main():
    with h5py.File(OUT, "w") as f:
        k = 0
        for name, scores, same, threshold in cases():
            scores = np.asarray(scores, dtype=np.float32)
            same = np.asarray(same, dtype=np.int32)
            r = reference(scores, same, threshold)
            g = f.create_group(f"case{k}")
            g.attrs["name"] = name
            g.attrs["threshold"] = float(threshold)
            g.create_dataset("scores", data=scores)
            g.create_dataset("same", data=same)
            g.create_dataset("fpr", data=r.pop("fpr"))
            g.create_dataset("tpr", data=r.pop("tpr"))
            for key, value in r.items():
                g.attrs[key] = value
            print(f"case{k} {name}: n={len(scores)} auc={r['auc']:.6f} eer={r['eer']:.6f} "
                  f"@{r['eer_threshold']:.4f} best={r['best_balanced_accuracy']:.4f}@{r['best_threshold']} "
                  f"far1e-3@{r['far_1e3_threshold']:.6f}")
            k += 1
        f.attrs["num_cases"] = k
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
