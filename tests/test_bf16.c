/* test_bf16.c — base/bf16.h: fp32 -> bf16 rounding (nearest, ties to even)
 * and bf16 -> fp32, scalar and n-at-a-time, against hand-computed bit
 * patterns: ties both ways, the top of the range (rounds to inf), ±inf,
 * ±0, denormals, NaN (quieted, sign and payload's upper bits kept, never
 * inf); and every one of the 65536 bf16 values round-trips. */
#include <stdint.h>
#include <string.h>

#include "base/bf16.h"
#include "check.h"
#include "fixtures.h"

static const struct {
    uint32_t in;
    uint16_t out;
} CASES[] = {
    {0x3f800000u, 0x3f80}, /* 1.0 */
    {0x3f808000u, 0x3f80}, /* 1 + 2^-8: tie, 0x3f80 even -> down */
    {0x3f818000u, 0x3f82}, /* tie, 0x3f81 odd -> up */
    {0x3f808001u, 0x3f81}, /* just above the tie */
    {0x3f807fffu, 0x3f80}, /* just below */
    {0xbf818000u, 0xbf82}, /* negative tie, odd -> away from zero */
    {0xbf808000u, 0xbf80}, /* negative tie, even -> toward zero */
    {0x7f7f7fffu, 0x7f7f}, /* below the top tie */
    {0x7f7f8000u, 0x7f80}, /* tie at the top, 0x7f7f odd -> inf */
    {0x7f7fffffu, 0x7f80}, /* FLT_MAX -> inf */
    {0xff7fffffu, 0xff80}, /* -FLT_MAX -> -inf */
    {0x7f800000u, 0x7f80}, /* inf */
    {0xff800000u, 0xff80}, /* -inf */
    {0x00000000u, 0x0000}, /* +0 */
    {0x80000000u, 0x8000}, /* -0 */
    {0x00000001u, 0x0000}, /* smallest denormal -> +0 */
    {0x80000001u, 0x8000}, /* -smallest denormal -> -0 */
    {0x00008000u, 0x0000}, /* denormal tie -> even 0 */
    {0x00018000u, 0x0002}, /* denormal tie, odd -> up */
    {0x00010000u, 0x0001}, /* smallest bf16 denormal, exact */
    {0x007fffffu, 0x0080}, /* largest denormal -> smallest normal */
    {0x007f7fffu, 0x007f}, /* largest denormal below the tie stays denormal */
    {0x3dcccccdu, 0x3dcd}, /* 0.1f */
    {0x7f800001u, 0x7fc0}, /* signalling NaN -> quiet, not inf */
    {0x7fbfffffu, 0x7fff}, /* NaN whose rounding would carry into the sign: stays NaN */
    {0xffc00000u, 0xffc0}, /* -qNaN */
    {0x7fc12345u, 0x7fc1}, /* qNaN: upper payload bits kept */
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static void test_scalar(void) {
    for (size_t i = 0; i < N_CASES; i++) {
        uint16_t h = bf16_from_f32(fbits(CASES[i].in));
        CHECK_MSG(h == CASES[i].out, "bf16_from_f32(0x%08x) = 0x%04x, want 0x%04x", CASES[i].in, h,
                  CASES[i].out);
    }
    CHECK(bitsf(bf16_to_f32(0x0001)) == 0x00010000u);
    CHECK(bitsf(bf16_to_f32(0xbf80)) == 0xbf800000u);
    CHECK(bitsf(bf16_to_f32(0x7fc0)) == 0x7fc00000u);
    CHECK(bitsf(bf16_to_f32(0x8000)) == 0x80000000u);
}

/* The array versions the activation streams use: same bits as the scalar
 * ones, at every position (vectorised body and remainder). */
static void test_arrays(void) {
    enum { N = 3 * N_CASES + 5 };
    float x[N], back[N];
    uint16_t y[N];
    for (size_t i = 0; i < N; i++) x[i] = fbits(CASES[i % N_CASES].in);
    bf16_from_f32_n(x, y, N);
    bf16_to_f32_n(y, back, N);
    for (size_t i = 0; i < N; i++) {
        CHECK_MSG(y[i] == CASES[i % N_CASES].out, "bf16_from_f32_n[%zu] = 0x%04x, want 0x%04x", i, y[i],
                  CASES[i % N_CASES].out);
        CHECK_MSG(bitsf(back[i]) == (uint32_t)CASES[i % N_CASES].out << 16, "bf16_to_f32_n[%zu] = 0x%08x", i,
                  bitsf(back[i]));
    }
}

static void test_round_trip(void) {
    static uint16_t h[0x10000], h2[0x10000];
    static float f[0x10000];
    for (uint32_t i = 0; i < 0x10000u; i++) h[i] = (uint16_t)i;
    bf16_to_f32_n(h, f, 0x10000);
    bf16_from_f32_n(f, h2, 0x10000);
    int bad = 0;
    for (uint32_t i = 0; i < 0x10000u; i++) {
        int nan = (i & 0x7f80u) == 0x7f80u && (i & 0x7fu);
        /* NaNs come back quieted (bit 6 set), everything else exactly */
        uint16_t want = nan ? (uint16_t)(i | 0x40u) : (uint16_t)i;
        if (h2[i] != want || bf16_from_f32(f[i]) != want) bad++;
    }
    CHECK_MSG(bad == 0, "%d bf16 values do not round-trip", bad);
}

int main(void) {
    test_scalar();
    test_arrays();
    test_round_trip();
    CHECK_DONE();
}
