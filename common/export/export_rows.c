/* export_rows.c — q/k row order of exported linears (see export.h).
 *
 * llama2.c checkpoints rotate interleaved pairs (2i, 2i+1) and HF ones rotate
 * halves (i, i + head_dim/2) with q/k rows permuted to match; the model keeps
 * its source's order (cfg.rope_halves). Within each head of head_dim rows:
 *   HF row i       <- interleaved row 2i (i < h) or 2(i-h)+1 (i >= h)
 *   interleaved i  <- HF row i/2 (i even) or h + (i-1)/2 (i odd),  h = head_dim/2 */
#include "export.h"

int export_src_row(const ModelConfig *c, int l, int r, int want_halves) {
    if ((l != LIN_Q && l != LIN_K) || c->rope_halves == want_halves || c->head_dim % 2) return r;
    int hd = c->head_dim, h = hd / 2, head = r / hd, i = r % hd, s;
    if (want_halves)
        s = i < h ? 2 * i : 2 * (i - h) + 1;
    else
        s = (i % 2 == 0) ? i / 2 : h + (i - 1) / 2;
    return head * hd + s;
}
