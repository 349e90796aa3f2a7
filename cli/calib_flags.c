/* calib_flags.c — the calibration flags of `quept calibrate` and `quept coordinator`. */
#include "calib_flags.h"

#include <string.h>

const char CALIB_FLAGS_HELP[] =
    "  --method X          quept (default) | rtn | gptq\n"
    "  --bits LIST         bit widths, e.g. 2-8 (default) or 2,3,4\n"
    "  --epochs E          epochs per block (default 15)\n"
    "  --batch B           sequences per step (default 2)\n"
    "  --seed S            job seed (default 0): same job, same bytes\n"
    "  --max-seqs N        use the first N sequences of F\n"
    "  --lr-lwc X          clipping learning rate (default 2e-2)\n"
    "  --lr-adapter X      adapter learning rate (default 7e-4)\n"
    "  --group-low G       group size for 2-4 bits (default 128; 0 = per channel)\n"
    "  --group-high G      group size for 5-8 bits (default 0 = per channel)\n"
    "  --rank-low R        adapter rank for 2-4 bits (default 192)\n"
    "  --rank-mid R        adapter rank for 5-6 bits (default 128)\n"
    "  --rank-high R       adapter rank for 7-8 bits (default 64)\n"
    "  --rank-ref-width W  scale ranks by min(in,out)/W (default 4096; 0: absolute)\n"
    "  --rank-cap X        rank <= X * min(in,out) (default 1.0)\n"
    "  --adapter-mode N    0: adapter before quantization (default), 1: after scaling\n"
    "  --no-lwc            turn learnable clipping off\n"
    "  --lwc-init-low X    initial clipping logit for 2-4 bits (default 4.0)\n"
    "  --lwc-init-high X   initial clipping logit for 5-8 bits (default 8.0)\n"
    "  --loss l1|l2        reconstruction loss (default l1)\n"
    "  --merge-keep X      MB-ToMe: share of tokens kept from the highest bit (0.5)\n"
    "  --stream S          quantized input stream: per-bit (default) | per-group |\n"
    "                      merged (the reference's MB-ToMe stream) | fp\n"
    "  --normalize-loss    divide each bit's loss by its starting loss\n"
    "  --prefix-grad-stop / --no-prefix-grad-stop\n"
    "                      lower bit groups do not train higher groups' ranks\n"
    "                      (default on; off with --reference-method)\n"
    "  --reference-method  the faithful QuEPT reference settings (merged stream,\n"
    "                      absolute ranks, logits 4.0, shared-rank gradients, no\n"
    "                      fallback) before the flags above apply\n"
    "  --fallback / --no-fallback  per block and bit, keep the trained adapters,\n"
    "                      drop them, or fall back to RTN, by the held-out loss\n"
    "                      (default on; off with --reference-method)\n"
    "  --holdout X         share of calibration sequences held out of training\n"
    "                      to judge the fallback (default 0.125)\n"
    "  --format F          weight codes: int (default) | pot (sign + exponent,\n"
    "                      value ±s·2^E, bits 2-5, default --bits 2-5): data-free\n"
    "                      scales, refined (Γ in place of the clipping logits,\n"
    "                      --lr-lwc, default 3e-4 for pot) by --method quept;\n"
    "                      --method rtn or --epochs 0: data-free only; groups of\n"
    "                      128 at every width unless --group-high is given\n"
    "  --pot-l2 X          pot: L2 penalty X·ΣΓ² on the scale refinements (1e-4)\n"
    "  --teq               TEQ: train a positive per-input-channel scale for each\n"
    "                      group of linears sharing an input, with the block, shared\n"
    "                      by all widths, folded into the base weights at the end\n"
    "                      (any --method; rtn/gptq train the scales alone)\n"
    "  --teq-placement P   norm (q/k/v, gate/up; into the RMSNorms; default) |\n"
    "                      wide (also o into v's rows, down into up's rows);\n"
    "                      implies --teq\n"
    "  --lr-teq X          TEQ scale learning rate (default 1e-3)\n"
    "  --bf16-activations  store the calibration activation streams (full-precision\n"
    "                      and quantized) in bf16, half the memory; the engine\n"
    "                      still computes in fp32 (workers hold their shard's\n"
    "                      input in bf16 too)\n"
    "  --quiet             no progress lines\n";

static const CliOpt CALIB_OPTS[] = {
    {"teq", 0, 0},
    {"teq-placement", 1, 0},
    {"lr-teq", 1, 0},
    {"format", 1, 0},
    {"pot-l2", 1, 0},
    {"method", 1, 0},
    {"bits", 1, 0},
    {"epochs", 1, 0},
    {"batch", 1, 0},
    {"seed", 1, 0},
    {"max-seqs", 1, 0},
    {"lr-lwc", 1, 0},
    {"lr-adapter", 1, 0},
    {"group-low", 1, 0},
    {"group-high", 1, 0},
    {"rank-low", 1, 0},
    {"rank-mid", 1, 0},
    {"rank-high", 1, 0},
    {"rank-ref-width", 1, 0},
    {"rank-cap", 1, 0},
    {"adapter-mode", 1, 0},
    {"no-lwc", 0, 0},
    {"loss", 1, 0},
    {"merge-keep", 1, 0},
    {"stream", 1, 0},
    {"normalize-loss", 0, 0},
    {"prefix-grad-stop", 0, 0},
    {"no-prefix-grad-stop", 0, 0},
    {"reference-method", 0, 0},
    {"lwc-init-low", 1, 0},
    {"lwc-init-high", 1, 0},
    {"holdout", 1, 0},
    {"no-fallback", 0, 0},
    {"fallback", 0, 0},
    {"bf16-activations", 0, 0},
};

int calib_opts_add(CliOpt *o, int n) {
    int k = (int)(sizeof CALIB_OPTS / sizeof CALIB_OPTS[0]);
    memcpy(o + n, CALIB_OPTS, sizeof CALIB_OPTS);
    return n + k;
}

int calib_opts_config(const CliOpt *o, int no, QuantConfig *qc, int *max_seqs, QErr *err) {
    if (cli_get(o, no, "reference-method")) quant_config_reference(qc);
    else quant_config_default(qc);
    const char *s;
    if ((s = cli_get(o, no, "method"))) {
        if (strcmp(s, "quept") == 0) qc->method = METHOD_QUEPT;
        else if (strcmp(s, "rtn") == 0) qc->method = METHOD_RTN;
        else if (strcmp(s, "gptq") == 0) qc->method = METHOD_GPTQ;
        else return qerr_set(err, "--method: expected quept, rtn or gptq, got '%s'", s);
    }
    if ((s = cli_get(o, no, "stream"))) {
        if (strcmp(s, "merged") == 0) qc->stream = STREAM_MERGED;
        else if (strcmp(s, "per-group") == 0) qc->stream = STREAM_PER_GROUP;
        else if (strcmp(s, "fp") == 0) qc->stream = STREAM_FP;
        else if (strcmp(s, "per-bit") == 0) qc->stream = STREAM_PER_BIT;
        else return qerr_set(err, "--stream: expected per-group, per-bit, merged or fp, got '%s'", s);
    }
    if ((s = cli_get(o, no, "loss"))) {
        if (strcmp(s, "l1") && strcmp(s, "l2")) return qerr_set(err, "--loss: expected l1 or l2, got '%s'", s);
        qc->loss_l2 = strcmp(s, "l2") == 0;
    }
    if ((s = cli_get(o, no, "format"))) {
        if (quant_parse_format(s, &qc->format, err) != 0) return -1;
        if (qc->format == QFORMAT_POT) quant_config_set_pot(qc); /* its widths, groups, Γ's lr */
    }
    if (cli_get(o, no, "teq")) qc->teq = TEQ_NORM;
    if ((s = cli_get(o, no, "teq-placement")) && quant_parse_teq(s, &qc->teq, err) != 0) return -1;
    double lr_teq;
    if (cli_get_float(o, no, "lr-teq", qc->lr_teq, 0, 10, &lr_teq, err)) return -1;
    qc->lr_teq = (float)lr_teq;
    double pot_l2;
    if (cli_get_float(o, no, "pot-l2", qc->pot_l2, 0, 1e6, &pot_l2, err)) return -1;
    qc->pot_l2 = (float)pot_l2;
    int seed, glo, ghi, rlo, rmid, rhi;
    double lr1, lr2, cap, keep, li_lo, li_hi, hold;
    glo = qc->group[2], ghi = qc->group[8];
    if (((s = cli_get(o, no, "bits")) && quant_parse_bits(qc, s, err)) ||
        cli_get_int(o, no, "epochs", qc->epochs, 0, 100000, &qc->epochs, err) ||
        cli_get_int(o, no, "batch", qc->batch, 1, 4096, &qc->batch, err) ||
        cli_get_int(o, no, "seed", 0, 0, 0x7fffffff, &seed, err) ||
        cli_get_int(o, no, "max-seqs", 0, 0, 1 << 30, max_seqs, err) ||
        cli_get_float(o, no, "lr-lwc", qc->lr_lwc, 0, 10, &lr1, err) ||
        cli_get_float(o, no, "lr-adapter", qc->lr_adapter, 0, 10, &lr2, err) ||
        cli_get_int(o, no, "group-low", glo, 0, 1 << 20, &glo, err) ||
        cli_get_int(o, no, "group-high", ghi, 0, 1 << 20, &ghi, err) ||
        cli_get_int(o, no, "rank-low", qc->rank[2], 0, 1 << 16, &rlo, err) ||
        cli_get_int(o, no, "rank-mid", qc->rank[5], 0, 1 << 16, &rmid, err) ||
        cli_get_int(o, no, "rank-high", qc->rank[7], 0, 1 << 16, &rhi, err) ||
        cli_get_int(o, no, "rank-ref-width", qc->rank_ref_width, 0, 1 << 20, &qc->rank_ref_width, err) ||
        cli_get_float(o, no, "rank-cap", qc->rank_cap, 0, 1, &cap, err) ||
        cli_get_int(o, no, "adapter-mode", qc->adapter_mode, 0, 1, &qc->adapter_mode, err) ||
        cli_get_float(o, no, "merge-keep", qc->merge_keep, 0, 1, &keep, err) ||
        cli_get_float(o, no, "lwc-init-low", qc->lwc_init[2], -30, 30, &li_lo, err) ||
        cli_get_float(o, no, "lwc-init-high", qc->lwc_init[8], -30, 30, &li_hi, err) ||
        cli_get_float(o, no, "holdout", qc->holdout, 0, 0.9, &hold, err))
        return -1;
    qc->seed = (uint64_t)seed;
    qc->lr_lwc = (float)lr1;
    qc->lr_adapter = (float)lr2;
    qc->rank_cap = (float)cap;
    qc->merge_keep = (float)keep;
    for (int b = QBITS_MIN; b <= QBITS_MAX; b++) {
        qc->group[b] = b <= 4 ? glo : ghi;
        qc->rank[b] = b <= 4 ? rlo : b <= 6 ? rmid : rhi;
        qc->lwc_init[b] = (float)(b <= 4 ? li_lo : li_hi);
    }
    qc->holdout = (float)hold;
    if (cli_get(o, no, "fallback")) qc->fallback = 1;
    if (cli_get(o, no, "no-fallback")) qc->fallback = 0;
    if (qc->fallback && qc->holdout == 0.0f && cli_get(o, no, "fallback") && !cli_get(o, no, "holdout")) qc->holdout = 0.125f;
    if (cli_get(o, no, "no-lwc")) qc->lwc = 0;
    if (cli_get(o, no, "normalize-loss")) qc->normalize_loss = 1;
    if (cli_get(o, no, "prefix-grad-stop")) qc->prefix_grad_stop = 1;
    if (cli_get(o, no, "no-prefix-grad-stop")) qc->prefix_grad_stop = 0;
    if (cli_get(o, no, "bf16-activations")) qc->act_bf16 = 1;
    return 0;
}
