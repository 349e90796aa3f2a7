/* calibrate.h — the single-process calibration pipeline: every block in
 * order through recon_block (or a baseline), merged into one artifact. */
#ifndef QUEPT_CALIBRATE_H
#define QUEPT_CALIBRATE_H

#include "pipeline.h"

int calibrate_run(const CalibJob *job, const QuantConfig *qc, QErr *err);

#endif
