/* recon_stats_codec.c — see recon_stats_codec.h. */
#include "recon_stats_codec.h"

void recon_stats_pack(msgpack_packer *pk, const ReconStats *s, int n) {
    mp_pack_kv_doubles(pk, "rtn", s->loss_rtn, n);
    mp_pack_kv_doubles(pk, "init", s->loss_init, n);
    mp_pack_kv_doubles(pk, "final", s->loss_final, n);
    mp_pack_kv_doubles(pk, "hold_rtn", s->hold_rtn, n);
    mp_pack_kv_doubles(pk, "hold_final", s->hold_final, n);
    mp_pack_str(pk, "choice");
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++) msgpack_pack_int64(pk, s->choice[i]);
    mp_pack_kv_double(pk, "seconds", s->seconds);
}

int recon_stats_parse(const msgpack_object *map, ReconStats *s, int n, QErr *err) {
    if (mp_map_doubles(map, "rtn", s->loss_rtn, n, err) ||
        mp_map_doubles(map, "init", s->loss_init, n, err) ||
        mp_map_doubles(map, "final", s->loss_final, n, err) ||
        mp_map_doubles(map, "hold_rtn", s->hold_rtn, n, err) ||
        mp_map_doubles(map, "hold_final", s->hold_final, n, err) ||
        mp_map_float(map, "seconds", &s->seconds, err))
        return -1;
    const msgpack_object *c;
    if (mp_map_array(map, "choice", &c, err) != 0) return -1;
    if ((int)c->via.array.size != n) return qerr_set(err, "key \"choice\": expected %d entries", n);
    for (int i = 0; i < n; i++) {
        int64_t v;
        if (mp_obj_int(&c->via.array.ptr[i], "choice", &v, err) != 0) return -1;
        if (v < QB_TRAINED || v > QB_GPTQ)
            return qerr_set(err, "key \"choice\": %lld is not 0, 1, 2 or 3", (long long)v);
        s->choice[i] = (int)v;
    }
    return 0;
}
