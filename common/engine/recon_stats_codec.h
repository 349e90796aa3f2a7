/* recon_stats_codec.h — a block's ReconStats in MessagePack, the layout the
 * checkpoint journal (block-J.qckp) and the wire (params and result
 * messages) share: n entries (the job's bit count) of each array, as the map
 * entries
 *   "rtn", "init", "final", "hold_rtn", "hold_final"   [n doubles]
 *   "choice"                                           [n ints, QB_*]
 *   "seconds"                                          double
 * Each container puts its own entries around them in the same map (the
 * journal "block" before; the wire "n" before and "tps" after), so the
 * caller packs the map header, counting RECON_STATS_ENTRIES for these. */
#ifndef QUEPT_RECON_STATS_CODEC_H
#define QUEPT_RECON_STATS_CODEC_H

#include "../base/msgpack_util.h"
#include "recon.h"

#define RECON_STATS_ENTRIES 7

void recon_stats_pack(msgpack_packer *pk, const ReconStats *s, int n);
/* Reads the entries from map into s (other fields untouched); errors name
 * the key. */
int recon_stats_parse(const msgpack_object *map, ReconStats *s, int n, QErr *err);

#endif
