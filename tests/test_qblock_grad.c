/* test_qblock_grad.c — the gradients of a WHOLE quantized decoder block's
 * training step (recon_step_bit: fake-quantized block forward, reconstruction
 * loss, block_backward, fq_backward of all seven linears) against an
 * independent PyTorch autograd reference of the same math
 * (tests/ref/qblock_ref.py → tests/data/qblock_golden.bin; format at the top
 * of the .py). Per case: loss, block output, dgamma/dbeta of the case's bit
 * and dBd/dBu of every linear.
 *
 * Cases (dim 48 / hidden 80 / 4 query heads on 2 kv heads / head_dim 12,
 * B=2, T=5): bits 2, 8 and 4; adapter modes 0 and 1; RoPE pairs and halves;
 * with and without q/k/v biases; L1 and L2 loss; groups with a partial last
 * group (48 → 32+16, 80 → 32+32+16; 48 → 20+20+8) and per channel; rank < R.
 *
 * Tolerances. The golden is the float64 math of the file's float32 inputs;
 * C runs in float32. The generator keeps every quantizer input away from
 * its discontinuities (round of u and z: >= 2e-3 from .5; the 1e-5 floor on
 * s; max/min top-2 gaps) and every |out - target| >= 2e-3 (the L1 sign), and
 * checks that float32 torch gives the same codes. So float32 and float64
 * take the same branches everywhere, and the only difference is float32
 * rounding: ~1e-7 relative per operation, accumulated through the block's
 * forward and backward (dot products of <= 80 terms, softmax, RMSNorm) and
 * the quantizer's group sums (ds = sum dy*(round(u)-u), up to 48 terms with
 * cancellation). Expected relative error: ~1e-7 for the loss and the
 * output, ~1e-6 for the gradient arrays (observed, OpenBLAS: loss <= 5e-8,
 * output <= 2e-7, gradients <= 1.1e-6; printed per array). We require
 *   loss            |c - ref| / |ref|                  <= 1e-5
 *   out             ||c - ref|| / ||ref||              <= 1e-5
 *   every gradient  ||c - ref|| / ||ref||              <= 1e-4
 *                   max|c - ref| / max|ref|            <= 1e-4
 * i.e. ~100x the observed float32 error, so another BLAS kernel's summation
 * order cannot fail the test, while a single rounding flip (one code off by
 * one step: tried in the reference, once in each linear of case 0) moves the
 * worst gradient array by 2e-3 to 0.3, and a wrong term in any backward
 * moves it by far more. Checked by mutation (in a scratch copy): each of
 * these fails the test, with the worst gradient error between 1.6e-2 and 26:
 * dropping the mode-0 arg-max gradient, flipping the arg-min sign, fb
 * instead of fb*(1-fb) in dbeta, xmin instead of xmax in dgamma, ds ignoring
 * the clamp, no clamp mask in the mode-1 dA, Bd read with stride rank
 * instead of R in dBu, the RoPE backward rotating the wrong way, the softmax
 * backward missing the diagonal, query head h reading kv head h % NKV in the
 * backward, no scale on dK, the RMSNorm backward without its mean term,
 * sig(g) as the SiLU derivative, no residual into dh1, L2 without its factor
 * 2; forward bugs (no k bias, rope_halves ignored, RoPE freq theta^(-i/hd),
 * a zero padded into the min/max of a partial group) fail the loss and
 * output checks as well. Exactly 0 is required where nothing may learn: dBd
 * columns / dBu rows >= rank, and the LWC logits of the bits other than the
 * case's. */
#include <stdint.h>
#include <string.h>

#include "base/mapfile.h"
#include "check.h"
#include "engine/qblock.h"
#include "engine/recon_step.h"
#include "golden.h"

#define TOL_LOSS_REL    1e-5
#define TOL_OUT_RELNORM 1e-5
#define TOL_G_RELNORM   1e-4
#define TOL_G_MAXREL    1e-4

static double worst_grad = 0.0, worst_out = 0.0, worst_loss = 0.0;

/* Checks one gradient array; returns its relnorm (for the per-case line). */
static double check_grad(int ci, const char *lin, const char *what, const float *c, const float *ref,
                         size_t n) {
    double rn, mr;
    rel_err(c, ref, n, &rn, &mr);
    CHECK_MSG(rn <= TOL_G_RELNORM, "case %d %s %s: relnorm %.3g > %g", ci, lin, what, rn, TOL_G_RELNORM);
    CHECK_MSG(mr <= TOL_G_MAXREL, "case %d %s %s: max err / max|ref| %.3g > %g", ci, lin, what, mr,
              TOL_G_MAXREL);
    double ref2 = 0;
    for (size_t i = 0; i < n; i++) ref2 += (double)ref[i] * ref[i];
    CHECK_MSG(ref2 > 0, "case %d %s %s: the reference gradient is all zero (path inactive)", ci, lin, what);
    if (rn > worst_grad) worst_grad = rn;
    if (mr > worst_grad) worst_grad = mr;
    return rn > mr ? rn : mr;
}

/* One golden case; returns -1 on a read or setup error. */
static int run_case(Reader *r, const GoldenModel *m, int ci) {
    int32_t h[7];
    if (rd_bytes(r, h, sizeof h) != 0) return -1;
    const int halves = h[0], bias = h[1], l2 = h[2], mode = h[3], lwc = h[4], n_bits = h[5], bi = h[6];
    int32_t bits[QMAX_NBITS], group[QMAX_NBITS], rank[QMAX_NBITS];
    QuantConfig qc;
    if (golden_read_widths(r, n_bits, bi, bits, group, rank, &qc) != 0) return -1;

    ModelConfig c = golden_block_config(m, halves, bias);
    qc.adapter_mode = mode;
    qc.lwc = lwc;
    qc.loss_l2 = l2;
    qc.prefix_grad_stop = 0; /* the reference has no gradient stop */
    BlockWeights w;
    QBlockParams p;
    if (golden_block_init(m, &c, &qc, ci, &w, &p) != 0) return -1;
    /* The file's shapes, from the format's own rules; qblock must agree. */
    int ok = 1, R[N_LIN], ng[N_LIN][QMAX_NBITS];
    for (int l = 0; l < N_LIN; l++) {
        const QLinear *q = &p.lin[l];
        int out, in;
        qblock_linear_shape(&c, l, &out, &in);
        R[l] = 0;
        for (int j = 0; j < n_bits; j++) {
            int g = group[j] <= 0 || group[j] > in ? in : group[j];
            int rk = rank[j] < (out < in ? out : in) ? rank[j] : (out < in ? out : in);
            ng[l][j] = (in + g - 1) / g;
            if (rk > R[l]) R[l] = rk;
            const FqSpec *sp = &q->spec[j];
            ok = ok && sp->group == g && sp->rank == rk && sp->bits == bits[j] && sp->mode == mode &&
                 sp->lwc == lwc;
        }
        ok = ok && q->out == out && q->in == in && q->R == R[l];
    }
    CHECK_MSG(ok, "case %d: qblock's layer specs differ from the golden file's", ci);

    /* inputs: overwrite the initialised parameters with the file's (the
     * shapes, just checked, are qblock's) */
    size_t NC = (size_t)m->B * m->T * m->C;
    GoldenIO io = {0};
    ok = ok && golden_read_params(r, &p, n_bits) == 0 && golden_read_io(r, NC, &io) == 0;
    GoldenGrads ref = {0};
    ok = ok && golden_read_grads(r, &p, bi, 1, &ref) == 0;

    ReconStep st;
    QErr err;
    if (ok && recon_step_init(&st, &c, &p, m->B, m->T, &err) != 0) {
        fprintf(stderr, "case %d: %s\n", ci, err.msg);
        ok = 0;
    }
    if (ok) {
        memset(st.g_lwc, 0, p.n_lwc * sizeof(float));
        memset(st.g_adapter, 0, p.n_adapter * sizeof(float));
        double loss = recon_step_bit(&c, &qc, &p, &w, &st, bi, io.x, io.target, 1.0f), le, oe;
        char case_name[32];
        snprintf(case_name, sizeof case_name, "case %d", ci);
        golden_check_step(case_name, loss, st.out, &io, NC, TOL_LOSS_REL, TOL_OUT_RELNORM, &le, &oe);
        if (le > worst_loss) worst_loss = le;
        if (oe > worst_out) worst_out = oe;
        printf("case %d: bit %d (bits", ci, bits[bi]);
        for (int j = 0; j < n_bits; j++) printf(" %d", bits[j]);
        printf(") group %d rank %d/%d mode %d rope %s%s %s: loss %.6f rel err %.2g, out %.2g\n", group[bi],
               rank[bi], R[LIN_Q], mode, halves ? "halves" : "pairs", bias ? " qkv-bias" : "",
               l2 ? "L2" : "L1", loss, le, oe);

        size_t untouched = 0, covered_lwc = 0, covered_ad = 0;
        for (int l = 0; l < N_LIN; l++) {
            const QLinear *q = &p.lin[l];
            const int rk = q->spec[bi].rank;
            size_t n = (size_t)q->out * ng[l][bi];
            double e[4];
            e[0] = check_grad(ci, LIN_NAMES[l], "dgamma", st.g_lwc + q->off_gamma[bi], ref.dg[l], n);
            e[1] = check_grad(ci, LIN_NAMES[l], "dbeta", st.g_lwc + q->off_beta[bi], ref.db[l], n);
            e[2] = check_grad(ci, LIN_NAMES[l], "dBd", st.g_adapter + q->off_Bd, ref.dBd[l],
                              (size_t)q->out * R[l]);
            e[3] = check_grad(ci, LIN_NAMES[l], "dBu", st.g_adapter + q->off_Bu, ref.dBu[l],
                              (size_t)R[l] * q->in);
            printf("    %-6s (%2d x %2d, groups %d, rank %d/%d)  rel err  dgamma %.2g  dbeta %.2g"
                   "  dBd %.2g  dBu %.2g\n",
                   LIN_NAMES[l], q->out, q->in, ng[l][bi], rk, R[l], e[0], e[1], e[2], e[3]);
            /* nothing may learn outside the bit's ranks and its own logits */
            for (int o = 0; o < q->out; o++)
                for (int k = rk; k < R[l]; k++)
                    untouched += st.g_adapter[q->off_Bd + (size_t)o * R[l] + k] != 0.0f;
            for (size_t i = (size_t)rk * q->in; i < (size_t)R[l] * q->in; i++)
                untouched += st.g_adapter[q->off_Bu + i] != 0.0f;
            for (int j = 0; j < n_bits; j++) {
                size_t nj = (size_t)q->out * ng[l][j];
                covered_lwc += 2 * nj;
                if (j == bi) continue;
                for (size_t i = 0; i < nj; i++)
                    untouched +=
                        (st.g_lwc[q->off_gamma[j] + i] != 0.0f) + (st.g_lwc[q->off_beta[j] + i] != 0.0f);
            }
            covered_ad += (size_t)(q->out + q->in) * R[l];
        }
        CHECK_MSG(untouched == 0,
                  "case %d: %zu gradient entries outside the bit's ranks/logits "
                  "are nonzero",
                  ci, untouched);
        CHECK_MSG(covered_lwc == p.n_lwc && covered_ad == p.n_adapter,
                  "case %d: the file's arrays do not cover the parameter layout", ci);

        /* recon_step_bit accumulates, scaled by grad_scale: a second call with
         * 0.5 gives 1.5x (0.5 is a power of two, so the second call's
         * gradients are exactly half the first's unless something underflows;
         * 1e-6 relative is allowed for that). */
        float *g1 = zalloc(p.n_adapter), *l1 = zalloc(p.n_lwc);
        CHECK(g1 && l1);
        memcpy(g1, st.g_adapter, p.n_adapter * sizeof(float));
        memcpy(l1, st.g_lwc, p.n_lwc * sizeof(float));
        double loss2 = recon_step_bit(&c, &qc, &p, &w, &st, bi, io.x, io.target, 0.5f);
        CHECK_MSG(loss2 == loss, "case %d: the loss changed between two identical steps", ci);
        size_t nacc = 0;
        for (size_t i = 0; i < p.n_adapter; i++)
            nacc += fabsf(st.g_adapter[i] - 1.5f * g1[i]) > 1e-6f * fabsf(g1[i]);
        for (size_t i = 0; i < p.n_lwc; i++) nacc += fabsf(st.g_lwc[i] - 1.5f * l1[i]) > 1e-6f * fabsf(l1[i]);
        CHECK_MSG(nacc == 0, "case %d: %zu gradients did not accumulate as g + 0.5 g", ci, nacc);
        free(g1);
        free(l1);
        recon_step_free(&st);
    }

    golden_free_grads(&ref);
    golden_free_io(&io);
    qblock_params_free(&p);
    block_weights_free(&w);
    return ok ? 0 : -1;
}

int main(void) {
    Reader r;
    uint32_t n;
    if (golden_open(&r, "qblock_golden.bin", "QBKG", "qblock_ref.py", 5, &n) != 0) CHECK_DONE();
    GoldenModel m;
    memset(&m, 0, sizeof m);
    golden_block_cases(&r, &m, n, run_case, "case");
    printf("worst: loss rel %.2g (tol %g), output relnorm %.2g (tol %g), gradient %.2g (tol %g)\n",
           worst_loss, TOL_LOSS_REL, worst_out, TOL_OUT_RELNORM, worst_grad, TOL_G_RELNORM);
    golden_free_model(&m);
    golden_close(&r);
    CHECK_DONE();
}
