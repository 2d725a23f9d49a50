/* ArcFace loss against pytorch-metric-learning 2.8.1 (tests/data/loss_reference.h5, written by
 * tools/gen_loss_reference.py in float64 from float32 inputs) and against central finite
 * differences of an independent double-precision forward (written as pytorch-metric-learning
 * computes it: the angle θ, then cos(θ + m); the angle by Kahan's formula, exact at θ = 0 and π).
 *
 * Tolerances. kao computes the cosines with float GEMMs: each carries a relative error of a few
 * 2⁻²⁴ (~1e-7), the logits s·cos an absolute error ~s·1e-7, so probabilities and the loss are
 * good to ~s·1e-7 relative (6e-6 at s = 64). Checked: loss within 1e-5 relative (the s = 1e4
 * case too: its probabilities are near one-hot and its loss large); gradients |kao − ref| <=
 * 1e-4·|ref| + 1e-5·max|ref| (the absolute floor covers elements that are sums of cancelling
 * terms); cosines within 1e-6 absolute, probabilities within 1e-8 + 1e-4 relative. Achieved
 * (printed as "max violation", the fraction of the tolerance used): loss errors <= 5e-8
 * relative, gradients <= 0.05 of the tolerance.
 * The finite differences use h = 1e-6 on the double forward: truncation h²·|f'''|/6 < 1e-7 for
 * s <= 64 and rounding 1e-16·|L|/h < 1e-8, so they are exact at the tolerances above.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kao/arcface.h"
#include "kao/rng.h"
#include "kao/util.h"

typedef struct {
    int B, E, C;
    double margin_deg, scale;
    float *emb, *W; /* (B, E), (E, C) */
    int *labels;    /* (B) */
} problem;

static bool all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

/* kao's loss, d_emb and dW (dW accumulated twice from zero to check +=, then halved). */
static float run_kao(float *d_emb, float *dW, kao_arcface_acts *acts, const problem *p) {
    kao_arcface_cfg cfg = {.margin_deg = p->margin_deg, .scale = p->scale};
    size_t BE = (size_t)p->B * p->E, EC = (size_t)p->E * p->C;
    float loss = kao_arcface_forward(acts, p->emb, p->W, p->labels, p->B, p->E, p->C, &cfg);
    for (size_t i = 0; i < BE; i++) d_emb[i] = NAN; /* overwritten, not accumulated */
    memset(dW, 0, EC * sizeof *dW);
    kao_arcface_backward(d_emb, dW, acts, p->labels, p->B, p->E, p->C, &cfg);
    float *once = malloc(EC * sizeof *once);
    memcpy(once, dW, EC * sizeof *once);
    kao_arcface_backward(d_emb, dW, acts, p->labels, p->B, p->E, p->C, &cfg);
    size_t bad = 0;
    for (size_t i = 0; i < EC; i++) bad += dW[i] != 2 * once[i];
    CHECK(bad == 0, "dW accumulates: %zu of %zu elements are not twice the first backward", bad, EC);
    memcpy(dW, once, EC * sizeof *once);
    free(once);
    return loss;
}

/* Largest |got − want| / (rtol·|want| + floor·max|want|) over the elements where want is finite
 * (PyTorch's NaN/inf at cos = ±1 are skipped and counted in *skipped). */
static double grad_violation(const float *got, const double *want, size_t n, double rtol,
                             double floor_rel, size_t *skipped, size_t *worst) {
    double max_ref = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(want[i])) max_ref = fmax(max_ref, fabs(want[i]));
    double atol = floor_rel * max_ref + 1e-30, v = 0;
    *skipped = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(want[i])) {
            (*skipped)++;
            continue;
        }
        double e = fabs((double)got[i] - want[i]) / (atol + rtol * fabs(want[i]));
        if (!(e <= v)) {
            v = isnan(e) ? INFINITY : e;
            *worst = i;
        }
    }
    return v;
}

#define CHECK_GRAD(what, got, want, n)                                                             \
    do {                                                                                           \
        size_t skipped_ = 0, worst_ = 0;                                                           \
        double v_ = grad_violation((got), (want), (n), 1e-4, 1e-5, &skipped_, &worst_);            \
        CHECK(v_ <= 1.0, "%s: element %zu is %.9g, expected %.9g (violation %.3g)", (what),        \
              worst_, (double)(got)[worst_], (want)[worst_], v_);                                  \
        printf("  %-36s max violation %.3f", (what), v_);                                      \
        if (skipped_) printf(" (%zu elements not finite in PyTorch, finite in kao)", skipped_);   \
        printf("\n");                                                                            \
    } while (0)

static void check_reference_case(const kao_h5_file *f, const char *name) {
    problem p;
    p.B = (int)ref_attr(f, name, "B");
    p.E = (int)ref_attr(f, name, "E");
    p.C = (int)ref_attr(f, name, "C");
    p.margin_deg = ref_attr(f, name, "margin_deg");
    p.scale = ref_attr(f, name, "scale");
    size_t BE = (size_t)p.B * p.E, EC = (size_t)p.E * p.C, BC = (size_t)p.B * p.C;
    p.emb = ref_f32(f, name, "emb", BE);
    p.W = ref_f32(f, name, "W", EC);
    p.labels = ref_int(f, name, "labels", (size_t)p.B);
    double want_loss = ref_scalar(f, name, "loss");
    double *want_demb = ref_f64(f, name, "d_emb", BE), *want_dW = ref_f64(f, name, "dW", EC);
    float *want_cos = ref_f32(f, name, "cosine", BC), *want_probs = ref_f32(f, name, "probs", BC);
    int torch32_finite = (int)ref_attr(f, name, "torch_float32_grads_finite");

    kao_arcface_acts acts;
    kao_arcface_acts_create(&acts, p.B, p.E, p.C);
    float *d_emb = malloc(BE * sizeof *d_emb), *dW = malloc(EC * sizeof *dW);
    float loss = run_kao(d_emb, dW, &acts, &p);

    double rel = fabs(loss - want_loss) / fabs(want_loss);
    printf("%-14s loss %.7g (PyTorch %.7g, rel err %.2g)%s\n", name, loss, want_loss, rel,
           torch32_finite ? "" : "; PyTorch float32 gives non-finite gradients here");
    CHECK(rel <= 1e-5, "%s: loss %.9g, PyTorch %.9g", name, loss, want_loss);
    char what[128];
    snprintf(what, sizeof what, "%s cosine", name);
    CHECK_CLOSE(what, acts.cosine, want_cos, BC, 1e-6, 0);
    snprintf(what, sizeof what, "%s probs", name);
    CHECK_CLOSE(what, acts.probs, want_probs, BC, 1e-4 * 1e-4, 1e-4);
    snprintf(what, sizeof what, "%s d_emb", name);
    CHECK_GRAD(what, d_emb, want_demb, BE);
    snprintf(what, sizeof what, "%s dW", name);
    CHECK_GRAD(what, dW, want_dW, EC);
    CHECK(all_finite(d_emb, BE) && all_finite(dW, EC), "%s: kao's gradients are finite", name);

    /* the arg-max count, against the reference cosines */
    int want_correct = 0;
    for (int b = 0; b < p.B; b++) {
        int best = 0;
        for (int j = 1; j < p.C; j++)
            if (want_cos[(size_t)b * p.C + j] > want_cos[(size_t)b * p.C + best]) best = j;
        want_correct += best == p.labels[b];
    }
    CHECK(kao_arcface_correct(acts.cosine, p.labels, p.B, p.C) == want_correct, "%s: correct", name);

    kao_arcface_acts_free(&acts);
    free(d_emb), free(dW), free(p.emb), free(p.W), free(p.labels);
    free(want_demb), free(want_dW), free(want_cos), free(want_probs);
}

/* ---- finite differences of an independent double forward -------------------------------- */

/* The angle by Kahan's formula θ = 2·atan2(‖â − b̂‖, ‖â + b̂‖), accurate near 0 and π where
 * acos of a rounded cosine is not (finite differences at cos = ±1 need it). */
static double oracle_angle(const double *x, const double *W, int E, int C, int y, double nx, double nw) {
    double d2 = 0, s2 = 0;
    for (int e = 0; e < E; e++) {
        double a = x[e] / nx, b = W[e * C + y] / nw;
        d2 += (a - b) * (a - b);
        s2 += (a + b) * (a + b);
    }
    return 2 * atan2(sqrt(d2), sqrt(s2));
}

static double oracle_loss(const double *x, const double *W, const problem *p) {
    const int B = p->B, E = p->E, C = p->C;
    const double m = p->margin_deg * M_PI / 180.0, s = p->scale;
    double total = 0;
    double *logits = malloc((size_t)C * sizeof *logits), *nw = malloc((size_t)C * sizeof *nw);
    for (int c = 0; c < C; c++) {
        nw[c] = 0;
        for (int e = 0; e < E; e++) nw[c] += W[e * C + c] * W[e * C + c];
        nw[c] = fmax(sqrt(nw[c]), 1e-12);
    }
    for (int b = 0; b < B; b++) {
        const double *xb = x + (size_t)b * E;
        double nx = 0;
        for (int e = 0; e < E; e++) nx += xb[e] * xb[e];
        nx = fmax(sqrt(nx), 1e-12);
        for (int c = 0; c < C; c++) {
            double dot = 0;
            for (int e = 0; e < E; e++) dot += xb[e] * W[e * C + c];
            logits[c] = dot / (nx * nw[c]);
        }
        int y = p->labels[b];
        double theta = oracle_angle(xb, W, E, C, y, nx, nw[y]);
        logits[y] = theta <= M_PI - m ? cos(theta + m) : cos(theta) - m * sin(m);
        double max = -INFINITY, sum = 0;
        for (int c = 0; c < C; c++) max = fmax(max, s * logits[c]);
        for (int c = 0; c < C; c++) sum += exp(s * logits[c] - max);
        total += max + log(sum) - s * logits[y];
    }
    free(logits), free(nw);
    return total / B;
}

static void fd_check(const char *name, const problem *p) {
    const size_t BE = (size_t)p->B * p->E, EC = (size_t)p->E * p->C;
    const double h = 1e-6;
    double *x = malloc(BE * sizeof *x), *W = malloc(EC * sizeof *W);
    double *fd_emb = malloc(BE * sizeof *fd_emb), *fd_W = malloc(EC * sizeof *fd_W);
    for (size_t i = 0; i < BE; i++) x[i] = p->emb[i];
    for (size_t i = 0; i < EC; i++) W[i] = p->W[i];
    for (size_t i = 0; i < BE + EC; i++) {
        double *v = i < BE ? &x[i] : &W[i - BE], keep = *v;
        *v = keep + h;
        double lp = oracle_loss(x, W, p);
        *v = keep - h;
        double lm = oracle_loss(x, W, p);
        *v = keep;
        *(i < BE ? &fd_emb[i] : &fd_W[i - BE]) = (lp - lm) / (2 * h);
    }
    kao_arcface_acts acts;
    kao_arcface_acts_create(&acts, p->B, p->E, p->C);
    float *d_emb = malloc(BE * sizeof *d_emb), *dW = malloc(EC * sizeof *dW);
    float loss = run_kao(d_emb, dW, &acts, p);
    double want = oracle_loss(x, W, p);
    printf("%-14s loss %.7g (double forward %.7g): finite differences\n", name, loss, want);
    CHECK(fabs(loss - want) <= 1e-5 * fabs(want), "%s: loss %.9g, double forward %.9g", name, loss, want);
    char what[128];
    snprintf(what, sizeof what, "%s d_emb vs finite differences", name);
    CHECK_GRAD(what, d_emb, fd_emb, BE);
    snprintf(what, sizeof what, "%s dW vs finite differences", name);
    CHECK_GRAD(what, dW, fd_W, EC);
    CHECK(all_finite(d_emb, BE) && all_finite(dW, EC), "%s: finite gradients", name);
    kao_arcface_acts_free(&acts);
    free(x), free(W), free(fd_emb), free(fd_W), free(d_emb), free(dW);
}

/* Random problem; optional rows pinned to the edges with exactly representable unit vectors:
 * row 0 = 3 × its class column (1, 1, 1, 1, 0, …): cos = 1 exactly in float and double;
 * row 1 = −(its column (0, 0, 1, −1, 1, 1, 0, …)): cos = −1 exactly;
 * row 2 = −(its column) + noise: cos ≈ −0.95, the branch θ > π − m. */
static problem make_problem(int B, int E, int C, double scale, bool edges, uint64_t seed) {
    problem p = {.B = B, .E = E, .C = C, .margin_deg = 28.6, .scale = scale};
    p.emb = malloc((size_t)B * E * sizeof *p.emb);
    p.W = malloc((size_t)E * C * sizeof *p.W);
    p.labels = malloc((size_t)B * sizeof *p.labels);
    kao_rng r;
    kao_rng_seed(&r, seed, 0);
    kao_arcface_init_weight(p.W, E, C, &r);
    for (int i = 0; i < B * E; i++) p.emb[i] = kao_rng_normal(&r);
    for (int b = 0; b < B; b++) p.labels[b] = (int)kao_rng_below(&r, (uint32_t)C);
    if (edges) {
        KAO_ASSERT(B >= 3 && E >= 6 && C >= 3, "edge rows need room");
        p.labels[0] = 0, p.labels[1] = 1, p.labels[2] = 2;
        for (int e = 0; e < E; e++) {
            p.W[e * C + 0] = e < 4 ? 1.0f : 0.0f;
            p.W[e * C + 1] = e >= 2 && e < 6 ? (e == 3 ? -1.0f : 1.0f) : 0.0f;
            p.emb[0 * E + e] = 3 * p.W[e * C + 0];
            p.emb[1 * E + e] = -p.W[e * C + 1];
            p.emb[2 * E + e] = -p.W[e * C + 2] + 0.1f * p.emb[2 * E + e];
        }
    }
    return p;
}

static void free_problem(problem *p) { free(p->emb), free(p->W), free(p->labels); }

int main(void) {
    kao_h5_file f;
    ref_open(&f, "loss_reference.h5");
    const char *cases[] = {"default", "margin0", "absent_class", "edge_scale64", "edge_scale1",
                           "huge_scale", "larger"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_reference_case(&f, cases[i]);
    kao_h5_close(&f);

    problem a = make_problem(5, 7, 6, 64.0, false, 1);
    fd_check("fd_scale64", &a);
    free_problem(&a);
    problem b = make_problem(4, 6, 5, 64.0, true, 2);
    fd_check("fd_edges64", &b);
    free_problem(&b);
    problem c = make_problem(4, 8, 5, 1.0, true, 3);
    fd_check("fd_edges1", &c);
    /* exact cos = ±1, with the default margin and with none (where θ = π sits on the branch
     * boundary: dt must still be 1, the derivative of cos θ, not 0/0) */
    for (int k = 0; k < 2; k++) {
        kao_arcface_cfg cfg = {.margin_deg = k ? 0.0 : c.margin_deg, .scale = c.scale};
        kao_arcface_acts acts;
        kao_arcface_acts_create(&acts, c.B, c.E, c.C);
        float loss = kao_arcface_forward(&acts, c.emb, c.W, c.labels, c.B, c.E, c.C, &cfg);
        float *d_emb = malloc((size_t)c.B * c.E * sizeof(float)), *dW = calloc((size_t)c.E * c.C, sizeof(float));
        kao_arcface_backward(d_emb, dW, &acts, c.labels, c.B, c.E, c.C, &cfg);
        CHECK(acts.cosine[0] == 1.0f && acts.cosine[1 * c.C + 1] == -1.0f,
              "edge rows: cos %.9g and %.9g", acts.cosine[0], acts.cosine[c.C + 1]);
        CHECK(acts.dtarget[0] == 0.0f, "margin %g: dt at cos = 1 is 0 (symmetric subgradient): %g", cfg.margin_deg,
              acts.dtarget[0]);
        CHECK(acts.dtarget[1] == 1.0f, "margin %g: dt at cos = -1 is 1: %g", cfg.margin_deg, acts.dtarget[1]);
        CHECK(isfinite(loss) && all_finite(d_emb, (size_t)c.B * c.E) && all_finite(dW, (size_t)c.E * c.C),
              "margin %g at cos = ±1: loss %g, gradients finite: %d %d", cfg.margin_deg, loss,
              all_finite(d_emb, (size_t)c.B * c.E), all_finite(dW, (size_t)c.E * c.C));
        free(d_emb), free(dW);
        kao_arcface_acts_free(&acts);
    }
    free_problem(&c);

    /* the default config is pytorch-metric-learning's */
    kao_arcface_cfg d = kao_arcface_default_cfg();
    CHECK(d.margin_deg == 28.6 && d.scale == 64.0, "defaults %g %g", d.margin_deg, d.scale);
    CHECK(kao_arcface_cfg_check(&d) == KAO_OK, "defaults are valid");
    d.scale = 0;
    CHECK(kao_arcface_cfg_check(&d) == KAO_ERR && strstr(kao_last_error(), "scale"), "%s", kao_last_error());
    d = (kao_arcface_cfg){.margin_deg = 180, .scale = 64};
    CHECK(kao_arcface_cfg_check(&d) == KAO_ERR && strstr(kao_last_error(), "margin"), "%s", kao_last_error());
    return check_summary("test_arcface");
}
