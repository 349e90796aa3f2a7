/* calibrate.h — the single-process calibration pipeline: every block in
 * order through recon_block (or a baseline), merged into one artifact. */
#ifndef QUEPT_CALIBRATE_H
#define QUEPT_CALIBRATE_H

#include "../artifact/elastic.h"

typedef struct {
    const char *model_path, *data_path, *out_path;
    int max_seqs; /* 0 = all */
    int quiet;
} CalibJob;

int calibrate_run(const CalibJob *job, const QuantConfig *qc, QErr *err);

#endif
