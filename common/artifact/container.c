/* container.c — see container.h and docs/artifact-format.md. */
#include "container.h"

#include <errno.h>
#include <inttypes.h>
#include <lz4.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/mapfile.h"

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

static uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_le64(const uint8_t *p) {
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}
static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}
/* x rounded up to a multiple of 8; x must be <= UINT64_MAX - 7 */
static uint64_t align8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

static const uint8_t zeros8[8];

/* The header ends with this key and a msgpack uint32 (0xce + 4 bytes BE). */
static const char TRAILER_KEY[] = "\xaf" "header_checksum";
#define TRAILER_KEY_LEN 16
#define TRAILER_LEN (TRAILER_KEY_LEN + 5)

const char *art_dtype_name(ArtDtype dt) {
    switch (dt) {
    case ART_F32: return "f32";
    case ART_F16: return "f16";
    case ART_U8: return "u8";
    case ART_I32: return "i32";
    }
    return NULL;
}

size_t art_dtype_size(ArtDtype dt) {
    switch (dt) {
    case ART_F32: return 4;
    case ART_F16: return 2;
    case ART_U8: return 1;
    case ART_I32: return 4;
    }
    return 0;
}

int art_dtype_parse(const char *s, size_t len, ArtDtype *out) {
    static const ArtDtype all[] = {ART_F32, ART_F16, ART_U8, ART_I32};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *n = art_dtype_name(all[i]);
        if (strlen(n) == len && memcmp(n, s, len) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -1;
}

const char *art_codec_name(ArtCodec c) {
    switch (c) {
    case ART_CODEC_RAW: return "raw";
    case ART_CODEC_LZ4: return "lz4";
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), slicing-by-8.      */
/* crc_table[0][n] is the classic byte table; crc_table[k][n] =             */
/* (crc_table[k-1][n] >> 8) ^ crc_table[0][crc_table[k-1][n] & 0xff].       */
/* Generated once by a script; tests/test_container.c checks it against the */
/* bitwise definition.                                                      */

static const uint32_t crc_table[8][256] = {
    {
        0x00000000, 0x77073096, 0xee0e612c, 0x990951ba, 0x076dc419, 0x706af48f,
        0xe963a535, 0x9e6495a3, 0x0edb8832, 0x79dcb8a4, 0xe0d5e91e, 0x97d2d988,
        0x09b64c2b, 0x7eb17cbd, 0xe7b82d07, 0x90bf1d91, 0x1db71064, 0x6ab020f2,
        0xf3b97148, 0x84be41de, 0x1adad47d, 0x6ddde4eb, 0xf4d4b551, 0x83d385c7,
        0x136c9856, 0x646ba8c0, 0xfd62f97a, 0x8a65c9ec, 0x14015c4f, 0x63066cd9,
        0xfa0f3d63, 0x8d080df5, 0x3b6e20c8, 0x4c69105e, 0xd56041e4, 0xa2677172,
        0x3c03e4d1, 0x4b04d447, 0xd20d85fd, 0xa50ab56b, 0x35b5a8fa, 0x42b2986c,
        0xdbbbc9d6, 0xacbcf940, 0x32d86ce3, 0x45df5c75, 0xdcd60dcf, 0xabd13d59,
        0x26d930ac, 0x51de003a, 0xc8d75180, 0xbfd06116, 0x21b4f4b5, 0x56b3c423,
        0xcfba9599, 0xb8bda50f, 0x2802b89e, 0x5f058808, 0xc60cd9b2, 0xb10be924,
        0x2f6f7c87, 0x58684c11, 0xc1611dab, 0xb6662d3d, 0x76dc4190, 0x01db7106,
        0x98d220bc, 0xefd5102a, 0x71b18589, 0x06b6b51f, 0x9fbfe4a5, 0xe8b8d433,
        0x7807c9a2, 0x0f00f934, 0x9609a88e, 0xe10e9818, 0x7f6a0dbb, 0x086d3d2d,
        0x91646c97, 0xe6635c01, 0x6b6b51f4, 0x1c6c6162, 0x856530d8, 0xf262004e,
        0x6c0695ed, 0x1b01a57b, 0x8208f4c1, 0xf50fc457, 0x65b0d9c6, 0x12b7e950,
        0x8bbeb8ea, 0xfcb9887c, 0x62dd1ddf, 0x15da2d49, 0x8cd37cf3, 0xfbd44c65,
        0x4db26158, 0x3ab551ce, 0xa3bc0074, 0xd4bb30e2, 0x4adfa541, 0x3dd895d7,
        0xa4d1c46d, 0xd3d6f4fb, 0x4369e96a, 0x346ed9fc, 0xad678846, 0xda60b8d0,
        0x44042d73, 0x33031de5, 0xaa0a4c5f, 0xdd0d7cc9, 0x5005713c, 0x270241aa,
        0xbe0b1010, 0xc90c2086, 0x5768b525, 0x206f85b3, 0xb966d409, 0xce61e49f,
        0x5edef90e, 0x29d9c998, 0xb0d09822, 0xc7d7a8b4, 0x59b33d17, 0x2eb40d81,
        0xb7bd5c3b, 0xc0ba6cad, 0xedb88320, 0x9abfb3b6, 0x03b6e20c, 0x74b1d29a,
        0xead54739, 0x9dd277af, 0x04db2615, 0x73dc1683, 0xe3630b12, 0x94643b84,
        0x0d6d6a3e, 0x7a6a5aa8, 0xe40ecf0b, 0x9309ff9d, 0x0a00ae27, 0x7d079eb1,
        0xf00f9344, 0x8708a3d2, 0x1e01f268, 0x6906c2fe, 0xf762575d, 0x806567cb,
        0x196c3671, 0x6e6b06e7, 0xfed41b76, 0x89d32be0, 0x10da7a5a, 0x67dd4acc,
        0xf9b9df6f, 0x8ebeeff9, 0x17b7be43, 0x60b08ed5, 0xd6d6a3e8, 0xa1d1937e,
        0x38d8c2c4, 0x4fdff252, 0xd1bb67f1, 0xa6bc5767, 0x3fb506dd, 0x48b2364b,
        0xd80d2bda, 0xaf0a1b4c, 0x36034af6, 0x41047a60, 0xdf60efc3, 0xa867df55,
        0x316e8eef, 0x4669be79, 0xcb61b38c, 0xbc66831a, 0x256fd2a0, 0x5268e236,
        0xcc0c7795, 0xbb0b4703, 0x220216b9, 0x5505262f, 0xc5ba3bbe, 0xb2bd0b28,
        0x2bb45a92, 0x5cb36a04, 0xc2d7ffa7, 0xb5d0cf31, 0x2cd99e8b, 0x5bdeae1d,
        0x9b64c2b0, 0xec63f226, 0x756aa39c, 0x026d930a, 0x9c0906a9, 0xeb0e363f,
        0x72076785, 0x05005713, 0x95bf4a82, 0xe2b87a14, 0x7bb12bae, 0x0cb61b38,
        0x92d28e9b, 0xe5d5be0d, 0x7cdcefb7, 0x0bdbdf21, 0x86d3d2d4, 0xf1d4e242,
        0x68ddb3f8, 0x1fda836e, 0x81be16cd, 0xf6b9265b, 0x6fb077e1, 0x18b74777,
        0x88085ae6, 0xff0f6a70, 0x66063bca, 0x11010b5c, 0x8f659eff, 0xf862ae69,
        0x616bffd3, 0x166ccf45, 0xa00ae278, 0xd70dd2ee, 0x4e048354, 0x3903b3c2,
        0xa7672661, 0xd06016f7, 0x4969474d, 0x3e6e77db, 0xaed16a4a, 0xd9d65adc,
        0x40df0b66, 0x37d83bf0, 0xa9bcae53, 0xdebb9ec5, 0x47b2cf7f, 0x30b5ffe9,
        0xbdbdf21c, 0xcabac28a, 0x53b39330, 0x24b4a3a6, 0xbad03605, 0xcdd70693,
        0x54de5729, 0x23d967bf, 0xb3667a2e, 0xc4614ab8, 0x5d681b02, 0x2a6f2b94,
        0xb40bbe37, 0xc30c8ea1, 0x5a05df1b, 0x2d02ef8d,
    },
    {
        0x00000000, 0x191b3141, 0x32366282, 0x2b2d53c3, 0x646cc504, 0x7d77f445,
        0x565aa786, 0x4f4196c7, 0xc8d98a08, 0xd1c2bb49, 0xfaefe88a, 0xe3f4d9cb,
        0xacb54f0c, 0xb5ae7e4d, 0x9e832d8e, 0x87981ccf, 0x4ac21251, 0x53d92310,
        0x78f470d3, 0x61ef4192, 0x2eaed755, 0x37b5e614, 0x1c98b5d7, 0x05838496,
        0x821b9859, 0x9b00a918, 0xb02dfadb, 0xa936cb9a, 0xe6775d5d, 0xff6c6c1c,
        0xd4413fdf, 0xcd5a0e9e, 0x958424a2, 0x8c9f15e3, 0xa7b24620, 0xbea97761,
        0xf1e8e1a6, 0xe8f3d0e7, 0xc3de8324, 0xdac5b265, 0x5d5daeaa, 0x44469feb,
        0x6f6bcc28, 0x7670fd69, 0x39316bae, 0x202a5aef, 0x0b07092c, 0x121c386d,
        0xdf4636f3, 0xc65d07b2, 0xed705471, 0xf46b6530, 0xbb2af3f7, 0xa231c2b6,
        0x891c9175, 0x9007a034, 0x179fbcfb, 0x0e848dba, 0x25a9de79, 0x3cb2ef38,
        0x73f379ff, 0x6ae848be, 0x41c51b7d, 0x58de2a3c, 0xf0794f05, 0xe9627e44,
        0xc24f2d87, 0xdb541cc6, 0x94158a01, 0x8d0ebb40, 0xa623e883, 0xbf38d9c2,
        0x38a0c50d, 0x21bbf44c, 0x0a96a78f, 0x138d96ce, 0x5ccc0009, 0x45d73148,
        0x6efa628b, 0x77e153ca, 0xbabb5d54, 0xa3a06c15, 0x888d3fd6, 0x91960e97,
        0xded79850, 0xc7cca911, 0xece1fad2, 0xf5facb93, 0x7262d75c, 0x6b79e61d,
        0x4054b5de, 0x594f849f, 0x160e1258, 0x0f152319, 0x243870da, 0x3d23419b,
        0x65fd6ba7, 0x7ce65ae6, 0x57cb0925, 0x4ed03864, 0x0191aea3, 0x188a9fe2,
        0x33a7cc21, 0x2abcfd60, 0xad24e1af, 0xb43fd0ee, 0x9f12832d, 0x8609b26c,
        0xc94824ab, 0xd05315ea, 0xfb7e4629, 0xe2657768, 0x2f3f79f6, 0x362448b7,
        0x1d091b74, 0x04122a35, 0x4b53bcf2, 0x52488db3, 0x7965de70, 0x607eef31,
        0xe7e6f3fe, 0xfefdc2bf, 0xd5d0917c, 0xcccba03d, 0x838a36fa, 0x9a9107bb,
        0xb1bc5478, 0xa8a76539, 0x3b83984b, 0x2298a90a, 0x09b5fac9, 0x10aecb88,
        0x5fef5d4f, 0x46f46c0e, 0x6dd93fcd, 0x74c20e8c, 0xf35a1243, 0xea412302,
        0xc16c70c1, 0xd8774180, 0x9736d747, 0x8e2de606, 0xa500b5c5, 0xbc1b8484,
        0x71418a1a, 0x685abb5b, 0x4377e898, 0x5a6cd9d9, 0x152d4f1e, 0x0c367e5f,
        0x271b2d9c, 0x3e001cdd, 0xb9980012, 0xa0833153, 0x8bae6290, 0x92b553d1,
        0xddf4c516, 0xc4eff457, 0xefc2a794, 0xf6d996d5, 0xae07bce9, 0xb71c8da8,
        0x9c31de6b, 0x852aef2a, 0xca6b79ed, 0xd37048ac, 0xf85d1b6f, 0xe1462a2e,
        0x66de36e1, 0x7fc507a0, 0x54e85463, 0x4df36522, 0x02b2f3e5, 0x1ba9c2a4,
        0x30849167, 0x299fa026, 0xe4c5aeb8, 0xfdde9ff9, 0xd6f3cc3a, 0xcfe8fd7b,
        0x80a96bbc, 0x99b25afd, 0xb29f093e, 0xab84387f, 0x2c1c24b0, 0x350715f1,
        0x1e2a4632, 0x07317773, 0x4870e1b4, 0x516bd0f5, 0x7a468336, 0x635db277,
        0xcbfad74e, 0xd2e1e60f, 0xf9ccb5cc, 0xe0d7848d, 0xaf96124a, 0xb68d230b,
        0x9da070c8, 0x84bb4189, 0x03235d46, 0x1a386c07, 0x31153fc4, 0x280e0e85,
        0x674f9842, 0x7e54a903, 0x5579fac0, 0x4c62cb81, 0x8138c51f, 0x9823f45e,
        0xb30ea79d, 0xaa1596dc, 0xe554001b, 0xfc4f315a, 0xd7626299, 0xce7953d8,
        0x49e14f17, 0x50fa7e56, 0x7bd72d95, 0x62cc1cd4, 0x2d8d8a13, 0x3496bb52,
        0x1fbbe891, 0x06a0d9d0, 0x5e7ef3ec, 0x4765c2ad, 0x6c48916e, 0x7553a02f,
        0x3a1236e8, 0x230907a9, 0x0824546a, 0x113f652b, 0x96a779e4, 0x8fbc48a5,
        0xa4911b66, 0xbd8a2a27, 0xf2cbbce0, 0xebd08da1, 0xc0fdde62, 0xd9e6ef23,
        0x14bce1bd, 0x0da7d0fc, 0x268a833f, 0x3f91b27e, 0x70d024b9, 0x69cb15f8,
        0x42e6463b, 0x5bfd777a, 0xdc656bb5, 0xc57e5af4, 0xee530937, 0xf7483876,
        0xb809aeb1, 0xa1129ff0, 0x8a3fcc33, 0x9324fd72,
    },
    {
        0x00000000, 0x01c26a37, 0x0384d46e, 0x0246be59, 0x0709a8dc, 0x06cbc2eb,
        0x048d7cb2, 0x054f1685, 0x0e1351b8, 0x0fd13b8f, 0x0d9785d6, 0x0c55efe1,
        0x091af964, 0x08d89353, 0x0a9e2d0a, 0x0b5c473d, 0x1c26a370, 0x1de4c947,
        0x1fa2771e, 0x1e601d29, 0x1b2f0bac, 0x1aed619b, 0x18abdfc2, 0x1969b5f5,
        0x1235f2c8, 0x13f798ff, 0x11b126a6, 0x10734c91, 0x153c5a14, 0x14fe3023,
        0x16b88e7a, 0x177ae44d, 0x384d46e0, 0x398f2cd7, 0x3bc9928e, 0x3a0bf8b9,
        0x3f44ee3c, 0x3e86840b, 0x3cc03a52, 0x3d025065, 0x365e1758, 0x379c7d6f,
        0x35dac336, 0x3418a901, 0x3157bf84, 0x3095d5b3, 0x32d36bea, 0x331101dd,
        0x246be590, 0x25a98fa7, 0x27ef31fe, 0x262d5bc9, 0x23624d4c, 0x22a0277b,
        0x20e69922, 0x2124f315, 0x2a78b428, 0x2bbade1f, 0x29fc6046, 0x283e0a71,
        0x2d711cf4, 0x2cb376c3, 0x2ef5c89a, 0x2f37a2ad, 0x709a8dc0, 0x7158e7f7,
        0x731e59ae, 0x72dc3399, 0x7793251c, 0x76514f2b, 0x7417f172, 0x75d59b45,
        0x7e89dc78, 0x7f4bb64f, 0x7d0d0816, 0x7ccf6221, 0x798074a4, 0x78421e93,
        0x7a04a0ca, 0x7bc6cafd, 0x6cbc2eb0, 0x6d7e4487, 0x6f38fade, 0x6efa90e9,
        0x6bb5866c, 0x6a77ec5b, 0x68315202, 0x69f33835, 0x62af7f08, 0x636d153f,
        0x612bab66, 0x60e9c151, 0x65a6d7d4, 0x6464bde3, 0x662203ba, 0x67e0698d,
        0x48d7cb20, 0x4915a117, 0x4b531f4e, 0x4a917579, 0x4fde63fc, 0x4e1c09cb,
        0x4c5ab792, 0x4d98dda5, 0x46c49a98, 0x4706f0af, 0x45404ef6, 0x448224c1,
        0x41cd3244, 0x400f5873, 0x4249e62a, 0x438b8c1d, 0x54f16850, 0x55330267,
        0x5775bc3e, 0x56b7d609, 0x53f8c08c, 0x523aaabb, 0x507c14e2, 0x51be7ed5,
        0x5ae239e8, 0x5b2053df, 0x5966ed86, 0x58a487b1, 0x5deb9134, 0x5c29fb03,
        0x5e6f455a, 0x5fad2f6d, 0xe1351b80, 0xe0f771b7, 0xe2b1cfee, 0xe373a5d9,
        0xe63cb35c, 0xe7fed96b, 0xe5b86732, 0xe47a0d05, 0xef264a38, 0xeee4200f,
        0xeca29e56, 0xed60f461, 0xe82fe2e4, 0xe9ed88d3, 0xebab368a, 0xea695cbd,
        0xfd13b8f0, 0xfcd1d2c7, 0xfe976c9e, 0xff5506a9, 0xfa1a102c, 0xfbd87a1b,
        0xf99ec442, 0xf85cae75, 0xf300e948, 0xf2c2837f, 0xf0843d26, 0xf1465711,
        0xf4094194, 0xf5cb2ba3, 0xf78d95fa, 0xf64fffcd, 0xd9785d60, 0xd8ba3757,
        0xdafc890e, 0xdb3ee339, 0xde71f5bc, 0xdfb39f8b, 0xddf521d2, 0xdc374be5,
        0xd76b0cd8, 0xd6a966ef, 0xd4efd8b6, 0xd52db281, 0xd062a404, 0xd1a0ce33,
        0xd3e6706a, 0xd2241a5d, 0xc55efe10, 0xc49c9427, 0xc6da2a7e, 0xc7184049,
        0xc25756cc, 0xc3953cfb, 0xc1d382a2, 0xc011e895, 0xcb4dafa8, 0xca8fc59f,
        0xc8c97bc6, 0xc90b11f1, 0xcc440774, 0xcd866d43, 0xcfc0d31a, 0xce02b92d,
        0x91af9640, 0x906dfc77, 0x922b422e, 0x93e92819, 0x96a63e9c, 0x976454ab,
        0x9522eaf2, 0x94e080c5, 0x9fbcc7f8, 0x9e7eadcf, 0x9c381396, 0x9dfa79a1,
        0x98b56f24, 0x99770513, 0x9b31bb4a, 0x9af3d17d, 0x8d893530, 0x8c4b5f07,
        0x8e0de15e, 0x8fcf8b69, 0x8a809dec, 0x8b42f7db, 0x89044982, 0x88c623b5,
        0x839a6488, 0x82580ebf, 0x801eb0e6, 0x81dcdad1, 0x8493cc54, 0x8551a663,
        0x8717183a, 0x86d5720d, 0xa9e2d0a0, 0xa820ba97, 0xaa6604ce, 0xaba46ef9,
        0xaeeb787c, 0xaf29124b, 0xad6fac12, 0xacadc625, 0xa7f18118, 0xa633eb2f,
        0xa4755576, 0xa5b73f41, 0xa0f829c4, 0xa13a43f3, 0xa37cfdaa, 0xa2be979d,
        0xb5c473d0, 0xb40619e7, 0xb640a7be, 0xb782cd89, 0xb2cddb0c, 0xb30fb13b,
        0xb1490f62, 0xb08b6555, 0xbbd72268, 0xba15485f, 0xb853f606, 0xb9919c31,
        0xbcde8ab4, 0xbd1ce083, 0xbf5a5eda, 0xbe9834ed,
    },
    {
        0x00000000, 0xb8bc6765, 0xaa09c88b, 0x12b5afee, 0x8f629757, 0x37def032,
        0x256b5fdc, 0x9dd738b9, 0xc5b428ef, 0x7d084f8a, 0x6fbde064, 0xd7018701,
        0x4ad6bfb8, 0xf26ad8dd, 0xe0df7733, 0x58631056, 0x5019579f, 0xe8a530fa,
        0xfa109f14, 0x42acf871, 0xdf7bc0c8, 0x67c7a7ad, 0x75720843, 0xcdce6f26,
        0x95ad7f70, 0x2d111815, 0x3fa4b7fb, 0x8718d09e, 0x1acfe827, 0xa2738f42,
        0xb0c620ac, 0x087a47c9, 0xa032af3e, 0x188ec85b, 0x0a3b67b5, 0xb28700d0,
        0x2f503869, 0x97ec5f0c, 0x8559f0e2, 0x3de59787, 0x658687d1, 0xdd3ae0b4,
        0xcf8f4f5a, 0x7733283f, 0xeae41086, 0x525877e3, 0x40edd80d, 0xf851bf68,
        0xf02bf8a1, 0x48979fc4, 0x5a22302a, 0xe29e574f, 0x7f496ff6, 0xc7f50893,
        0xd540a77d, 0x6dfcc018, 0x359fd04e, 0x8d23b72b, 0x9f9618c5, 0x272a7fa0,
        0xbafd4719, 0x0241207c, 0x10f48f92, 0xa848e8f7, 0x9b14583d, 0x23a83f58,
        0x311d90b6, 0x89a1f7d3, 0x1476cf6a, 0xaccaa80f, 0xbe7f07e1, 0x06c36084,
        0x5ea070d2, 0xe61c17b7, 0xf4a9b859, 0x4c15df3c, 0xd1c2e785, 0x697e80e0,
        0x7bcb2f0e, 0xc377486b, 0xcb0d0fa2, 0x73b168c7, 0x6104c729, 0xd9b8a04c,
        0x446f98f5, 0xfcd3ff90, 0xee66507e, 0x56da371b, 0x0eb9274d, 0xb6054028,
        0xa4b0efc6, 0x1c0c88a3, 0x81dbb01a, 0x3967d77f, 0x2bd27891, 0x936e1ff4,
        0x3b26f703, 0x839a9066, 0x912f3f88, 0x299358ed, 0xb4446054, 0x0cf80731,
        0x1e4da8df, 0xa6f1cfba, 0xfe92dfec, 0x462eb889, 0x549b1767, 0xec277002,
        0x71f048bb, 0xc94c2fde, 0xdbf98030, 0x6345e755, 0x6b3fa09c, 0xd383c7f9,
        0xc1366817, 0x798a0f72, 0xe45d37cb, 0x5ce150ae, 0x4e54ff40, 0xf6e89825,
        0xae8b8873, 0x1637ef16, 0x048240f8, 0xbc3e279d, 0x21e91f24, 0x99557841,
        0x8be0d7af, 0x335cb0ca, 0xed59b63b, 0x55e5d15e, 0x47507eb0, 0xffec19d5,
        0x623b216c, 0xda874609, 0xc832e9e7, 0x708e8e82, 0x28ed9ed4, 0x9051f9b1,
        0x82e4565f, 0x3a58313a, 0xa78f0983, 0x1f336ee6, 0x0d86c108, 0xb53aa66d,
        0xbd40e1a4, 0x05fc86c1, 0x1749292f, 0xaff54e4a, 0x322276f3, 0x8a9e1196,
        0x982bbe78, 0x2097d91d, 0x78f4c94b, 0xc048ae2e, 0xd2fd01c0, 0x6a4166a5,
        0xf7965e1c, 0x4f2a3979, 0x5d9f9697, 0xe523f1f2, 0x4d6b1905, 0xf5d77e60,
        0xe762d18e, 0x5fdeb6eb, 0xc2098e52, 0x7ab5e937, 0x680046d9, 0xd0bc21bc,
        0x88df31ea, 0x3063568f, 0x22d6f961, 0x9a6a9e04, 0x07bda6bd, 0xbf01c1d8,
        0xadb46e36, 0x15080953, 0x1d724e9a, 0xa5ce29ff, 0xb77b8611, 0x0fc7e174,
        0x9210d9cd, 0x2aacbea8, 0x38191146, 0x80a57623, 0xd8c66675, 0x607a0110,
        0x72cfaefe, 0xca73c99b, 0x57a4f122, 0xef189647, 0xfdad39a9, 0x45115ecc,
        0x764dee06, 0xcef18963, 0xdc44268d, 0x64f841e8, 0xf92f7951, 0x41931e34,
        0x5326b1da, 0xeb9ad6bf, 0xb3f9c6e9, 0x0b45a18c, 0x19f00e62, 0xa14c6907,
        0x3c9b51be, 0x842736db, 0x96929935, 0x2e2efe50, 0x2654b999, 0x9ee8defc,
        0x8c5d7112, 0x34e11677, 0xa9362ece, 0x118a49ab, 0x033fe645, 0xbb838120,
        0xe3e09176, 0x5b5cf613, 0x49e959fd, 0xf1553e98, 0x6c820621, 0xd43e6144,
        0xc68bceaa, 0x7e37a9cf, 0xd67f4138, 0x6ec3265d, 0x7c7689b3, 0xc4caeed6,
        0x591dd66f, 0xe1a1b10a, 0xf3141ee4, 0x4ba87981, 0x13cb69d7, 0xab770eb2,
        0xb9c2a15c, 0x017ec639, 0x9ca9fe80, 0x241599e5, 0x36a0360b, 0x8e1c516e,
        0x866616a7, 0x3eda71c2, 0x2c6fde2c, 0x94d3b949, 0x090481f0, 0xb1b8e695,
        0xa30d497b, 0x1bb12e1e, 0x43d23e48, 0xfb6e592d, 0xe9dbf6c3, 0x516791a6,
        0xccb0a91f, 0x740cce7a, 0x66b96194, 0xde0506f1,
    },
    {
        0x00000000, 0x3d6029b0, 0x7ac05360, 0x47a07ad0, 0xf580a6c0, 0xc8e08f70,
        0x8f40f5a0, 0xb220dc10, 0x30704bc1, 0x0d106271, 0x4ab018a1, 0x77d03111,
        0xc5f0ed01, 0xf890c4b1, 0xbf30be61, 0x825097d1, 0x60e09782, 0x5d80be32,
        0x1a20c4e2, 0x2740ed52, 0x95603142, 0xa80018f2, 0xefa06222, 0xd2c04b92,
        0x5090dc43, 0x6df0f5f3, 0x2a508f23, 0x1730a693, 0xa5107a83, 0x98705333,
        0xdfd029e3, 0xe2b00053, 0xc1c12f04, 0xfca106b4, 0xbb017c64, 0x866155d4,
        0x344189c4, 0x0921a074, 0x4e81daa4, 0x73e1f314, 0xf1b164c5, 0xccd14d75,
        0x8b7137a5, 0xb6111e15, 0x0431c205, 0x3951ebb5, 0x7ef19165, 0x4391b8d5,
        0xa121b886, 0x9c419136, 0xdbe1ebe6, 0xe681c256, 0x54a11e46, 0x69c137f6,
        0x2e614d26, 0x13016496, 0x9151f347, 0xac31daf7, 0xeb91a027, 0xd6f18997,
        0x64d15587, 0x59b17c37, 0x1e1106e7, 0x23712f57, 0x58f35849, 0x659371f9,
        0x22330b29, 0x1f532299, 0xad73fe89, 0x9013d739, 0xd7b3ade9, 0xead38459,
        0x68831388, 0x55e33a38, 0x124340e8, 0x2f236958, 0x9d03b548, 0xa0639cf8,
        0xe7c3e628, 0xdaa3cf98, 0x3813cfcb, 0x0573e67b, 0x42d39cab, 0x7fb3b51b,
        0xcd93690b, 0xf0f340bb, 0xb7533a6b, 0x8a3313db, 0x0863840a, 0x3503adba,
        0x72a3d76a, 0x4fc3feda, 0xfde322ca, 0xc0830b7a, 0x872371aa, 0xba43581a,
        0x9932774d, 0xa4525efd, 0xe3f2242d, 0xde920d9d, 0x6cb2d18d, 0x51d2f83d,
        0x167282ed, 0x2b12ab5d, 0xa9423c8c, 0x9422153c, 0xd3826fec, 0xeee2465c,
        0x5cc29a4c, 0x61a2b3fc, 0x2602c92c, 0x1b62e09c, 0xf9d2e0cf, 0xc4b2c97f,
        0x8312b3af, 0xbe729a1f, 0x0c52460f, 0x31326fbf, 0x7692156f, 0x4bf23cdf,
        0xc9a2ab0e, 0xf4c282be, 0xb362f86e, 0x8e02d1de, 0x3c220dce, 0x0142247e,
        0x46e25eae, 0x7b82771e, 0xb1e6b092, 0x8c869922, 0xcb26e3f2, 0xf646ca42,
        0x44661652, 0x79063fe2, 0x3ea64532, 0x03c66c82, 0x8196fb53, 0xbcf6d2e3,
        0xfb56a833, 0xc6368183, 0x74165d93, 0x49767423, 0x0ed60ef3, 0x33b62743,
        0xd1062710, 0xec660ea0, 0xabc67470, 0x96a65dc0, 0x248681d0, 0x19e6a860,
        0x5e46d2b0, 0x6326fb00, 0xe1766cd1, 0xdc164561, 0x9bb63fb1, 0xa6d61601,
        0x14f6ca11, 0x2996e3a1, 0x6e369971, 0x5356b0c1, 0x70279f96, 0x4d47b626,
        0x0ae7ccf6, 0x3787e546, 0x85a73956, 0xb8c710e6, 0xff676a36, 0xc2074386,
        0x4057d457, 0x7d37fde7, 0x3a978737, 0x07f7ae87, 0xb5d77297, 0x88b75b27,
        0xcf1721f7, 0xf2770847, 0x10c70814, 0x2da721a4, 0x6a075b74, 0x576772c4,
        0xe547aed4, 0xd8278764, 0x9f87fdb4, 0xa2e7d404, 0x20b743d5, 0x1dd76a65,
        0x5a7710b5, 0x67173905, 0xd537e515, 0xe857cca5, 0xaff7b675, 0x92979fc5,
        0xe915e8db, 0xd475c16b, 0x93d5bbbb, 0xaeb5920b, 0x1c954e1b, 0x21f567ab,
        0x66551d7b, 0x5b3534cb, 0xd965a31a, 0xe4058aaa, 0xa3a5f07a, 0x9ec5d9ca,
        0x2ce505da, 0x11852c6a, 0x562556ba, 0x6b457f0a, 0x89f57f59, 0xb49556e9,
        0xf3352c39, 0xce550589, 0x7c75d999, 0x4115f029, 0x06b58af9, 0x3bd5a349,
        0xb9853498, 0x84e51d28, 0xc34567f8, 0xfe254e48, 0x4c059258, 0x7165bbe8,
        0x36c5c138, 0x0ba5e888, 0x28d4c7df, 0x15b4ee6f, 0x521494bf, 0x6f74bd0f,
        0xdd54611f, 0xe03448af, 0xa794327f, 0x9af41bcf, 0x18a48c1e, 0x25c4a5ae,
        0x6264df7e, 0x5f04f6ce, 0xed242ade, 0xd044036e, 0x97e479be, 0xaa84500e,
        0x4834505d, 0x755479ed, 0x32f4033d, 0x0f942a8d, 0xbdb4f69d, 0x80d4df2d,
        0xc774a5fd, 0xfa148c4d, 0x78441b9c, 0x4524322c, 0x028448fc, 0x3fe4614c,
        0x8dc4bd5c, 0xb0a494ec, 0xf704ee3c, 0xca64c78c,
    },
    {
        0x00000000, 0xcb5cd3a5, 0x4dc8a10b, 0x869472ae, 0x9b914216, 0x50cd91b3,
        0xd659e31d, 0x1d0530b8, 0xec53826d, 0x270f51c8, 0xa19b2366, 0x6ac7f0c3,
        0x77c2c07b, 0xbc9e13de, 0x3a0a6170, 0xf156b2d5, 0x03d6029b, 0xc88ad13e,
        0x4e1ea390, 0x85427035, 0x9847408d, 0x531b9328, 0xd58fe186, 0x1ed33223,
        0xef8580f6, 0x24d95353, 0xa24d21fd, 0x6911f258, 0x7414c2e0, 0xbf481145,
        0x39dc63eb, 0xf280b04e, 0x07ac0536, 0xccf0d693, 0x4a64a43d, 0x81387798,
        0x9c3d4720, 0x57619485, 0xd1f5e62b, 0x1aa9358e, 0xebff875b, 0x20a354fe,
        0xa6372650, 0x6d6bf5f5, 0x706ec54d, 0xbb3216e8, 0x3da66446, 0xf6fab7e3,
        0x047a07ad, 0xcf26d408, 0x49b2a6a6, 0x82ee7503, 0x9feb45bb, 0x54b7961e,
        0xd223e4b0, 0x197f3715, 0xe82985c0, 0x23755665, 0xa5e124cb, 0x6ebdf76e,
        0x73b8c7d6, 0xb8e41473, 0x3e7066dd, 0xf52cb578, 0x0f580a6c, 0xc404d9c9,
        0x4290ab67, 0x89cc78c2, 0x94c9487a, 0x5f959bdf, 0xd901e971, 0x125d3ad4,
        0xe30b8801, 0x28575ba4, 0xaec3290a, 0x659ffaaf, 0x789aca17, 0xb3c619b2,
        0x35526b1c, 0xfe0eb8b9, 0x0c8e08f7, 0xc7d2db52, 0x4146a9fc, 0x8a1a7a59,
        0x971f4ae1, 0x5c439944, 0xdad7ebea, 0x118b384f, 0xe0dd8a9a, 0x2b81593f,
        0xad152b91, 0x6649f834, 0x7b4cc88c, 0xb0101b29, 0x36846987, 0xfdd8ba22,
        0x08f40f5a, 0xc3a8dcff, 0x453cae51, 0x8e607df4, 0x93654d4c, 0x58399ee9,
        0xdeadec47, 0x15f13fe2, 0xe4a78d37, 0x2ffb5e92, 0xa96f2c3c, 0x6233ff99,
        0x7f36cf21, 0xb46a1c84, 0x32fe6e2a, 0xf9a2bd8f, 0x0b220dc1, 0xc07ede64,
        0x46eaacca, 0x8db67f6f, 0x90b34fd7, 0x5bef9c72, 0xdd7beedc, 0x16273d79,
        0xe7718fac, 0x2c2d5c09, 0xaab92ea7, 0x61e5fd02, 0x7ce0cdba, 0xb7bc1e1f,
        0x31286cb1, 0xfa74bf14, 0x1eb014d8, 0xd5ecc77d, 0x5378b5d3, 0x98246676,
        0x852156ce, 0x4e7d856b, 0xc8e9f7c5, 0x03b52460, 0xf2e396b5, 0x39bf4510,
        0xbf2b37be, 0x7477e41b, 0x6972d4a3, 0xa22e0706, 0x24ba75a8, 0xefe6a60d,
        0x1d661643, 0xd63ac5e6, 0x50aeb748, 0x9bf264ed, 0x86f75455, 0x4dab87f0,
        0xcb3ff55e, 0x006326fb, 0xf135942e, 0x3a69478b, 0xbcfd3525, 0x77a1e680,
        0x6aa4d638, 0xa1f8059d, 0x276c7733, 0xec30a496, 0x191c11ee, 0xd240c24b,
        0x54d4b0e5, 0x9f886340, 0x828d53f8, 0x49d1805d, 0xcf45f2f3, 0x04192156,
        0xf54f9383, 0x3e134026, 0xb8873288, 0x73dbe12d, 0x6eded195, 0xa5820230,
        0x2316709e, 0xe84aa33b, 0x1aca1375, 0xd196c0d0, 0x5702b27e, 0x9c5e61db,
        0x815b5163, 0x4a0782c6, 0xcc93f068, 0x07cf23cd, 0xf6999118, 0x3dc542bd,
        0xbb513013, 0x700de3b6, 0x6d08d30e, 0xa65400ab, 0x20c07205, 0xeb9ca1a0,
        0x11e81eb4, 0xdab4cd11, 0x5c20bfbf, 0x977c6c1a, 0x8a795ca2, 0x41258f07,
        0xc7b1fda9, 0x0ced2e0c, 0xfdbb9cd9, 0x36e74f7c, 0xb0733dd2, 0x7b2fee77,
        0x662adecf, 0xad760d6a, 0x2be27fc4, 0xe0beac61, 0x123e1c2f, 0xd962cf8a,
        0x5ff6bd24, 0x94aa6e81, 0x89af5e39, 0x42f38d9c, 0xc467ff32, 0x0f3b2c97,
        0xfe6d9e42, 0x35314de7, 0xb3a53f49, 0x78f9ecec, 0x65fcdc54, 0xaea00ff1,
        0x28347d5f, 0xe368aefa, 0x16441b82, 0xdd18c827, 0x5b8cba89, 0x90d0692c,
        0x8dd55994, 0x46898a31, 0xc01df89f, 0x0b412b3a, 0xfa1799ef, 0x314b4a4a,
        0xb7df38e4, 0x7c83eb41, 0x6186dbf9, 0xaada085c, 0x2c4e7af2, 0xe712a957,
        0x15921919, 0xdececabc, 0x585ab812, 0x93066bb7, 0x8e035b0f, 0x455f88aa,
        0xc3cbfa04, 0x089729a1, 0xf9c19b74, 0x329d48d1, 0xb4093a7f, 0x7f55e9da,
        0x6250d962, 0xa90c0ac7, 0x2f987869, 0xe4c4abcc,
    },
    {
        0x00000000, 0xa6770bb4, 0x979f1129, 0x31e81a9d, 0xf44f2413, 0x52382fa7,
        0x63d0353a, 0xc5a73e8e, 0x33ef4e67, 0x959845d3, 0xa4705f4e, 0x020754fa,
        0xc7a06a74, 0x61d761c0, 0x503f7b5d, 0xf64870e9, 0x67de9cce, 0xc1a9977a,
        0xf0418de7, 0x56368653, 0x9391b8dd, 0x35e6b369, 0x040ea9f4, 0xa279a240,
        0x5431d2a9, 0xf246d91d, 0xc3aec380, 0x65d9c834, 0xa07ef6ba, 0x0609fd0e,
        0x37e1e793, 0x9196ec27, 0xcfbd399c, 0x69ca3228, 0x582228b5, 0xfe552301,
        0x3bf21d8f, 0x9d85163b, 0xac6d0ca6, 0x0a1a0712, 0xfc5277fb, 0x5a257c4f,
        0x6bcd66d2, 0xcdba6d66, 0x081d53e8, 0xae6a585c, 0x9f8242c1, 0x39f54975,
        0xa863a552, 0x0e14aee6, 0x3ffcb47b, 0x998bbfcf, 0x5c2c8141, 0xfa5b8af5,
        0xcbb39068, 0x6dc49bdc, 0x9b8ceb35, 0x3dfbe081, 0x0c13fa1c, 0xaa64f1a8,
        0x6fc3cf26, 0xc9b4c492, 0xf85cde0f, 0x5e2bd5bb, 0x440b7579, 0xe27c7ecd,
        0xd3946450, 0x75e36fe4, 0xb044516a, 0x16335ade, 0x27db4043, 0x81ac4bf7,
        0x77e43b1e, 0xd19330aa, 0xe07b2a37, 0x460c2183, 0x83ab1f0d, 0x25dc14b9,
        0x14340e24, 0xb2430590, 0x23d5e9b7, 0x85a2e203, 0xb44af89e, 0x123df32a,
        0xd79acda4, 0x71edc610, 0x4005dc8d, 0xe672d739, 0x103aa7d0, 0xb64dac64,
        0x87a5b6f9, 0x21d2bd4d, 0xe47583c3, 0x42028877, 0x73ea92ea, 0xd59d995e,
        0x8bb64ce5, 0x2dc14751, 0x1c295dcc, 0xba5e5678, 0x7ff968f6, 0xd98e6342,
        0xe86679df, 0x4e11726b, 0xb8590282, 0x1e2e0936, 0x2fc613ab, 0x89b1181f,
        0x4c162691, 0xea612d25, 0xdb8937b8, 0x7dfe3c0c, 0xec68d02b, 0x4a1fdb9f,
        0x7bf7c102, 0xdd80cab6, 0x1827f438, 0xbe50ff8c, 0x8fb8e511, 0x29cfeea5,
        0xdf879e4c, 0x79f095f8, 0x48188f65, 0xee6f84d1, 0x2bc8ba5f, 0x8dbfb1eb,
        0xbc57ab76, 0x1a20a0c2, 0x8816eaf2, 0x2e61e146, 0x1f89fbdb, 0xb9fef06f,
        0x7c59cee1, 0xda2ec555, 0xebc6dfc8, 0x4db1d47c, 0xbbf9a495, 0x1d8eaf21,
        0x2c66b5bc, 0x8a11be08, 0x4fb68086, 0xe9c18b32, 0xd82991af, 0x7e5e9a1b,
        0xefc8763c, 0x49bf7d88, 0x78576715, 0xde206ca1, 0x1b87522f, 0xbdf0599b,
        0x8c184306, 0x2a6f48b2, 0xdc27385b, 0x7a5033ef, 0x4bb82972, 0xedcf22c6,
        0x28681c48, 0x8e1f17fc, 0xbff70d61, 0x198006d5, 0x47abd36e, 0xe1dcd8da,
        0xd034c247, 0x7643c9f3, 0xb3e4f77d, 0x1593fcc9, 0x247be654, 0x820cede0,
        0x74449d09, 0xd23396bd, 0xe3db8c20, 0x45ac8794, 0x800bb91a, 0x267cb2ae,
        0x1794a833, 0xb1e3a387, 0x20754fa0, 0x86024414, 0xb7ea5e89, 0x119d553d,
        0xd43a6bb3, 0x724d6007, 0x43a57a9a, 0xe5d2712e, 0x139a01c7, 0xb5ed0a73,
        0x840510ee, 0x22721b5a, 0xe7d525d4, 0x41a22e60, 0x704a34fd, 0xd63d3f49,
        0xcc1d9f8b, 0x6a6a943f, 0x5b828ea2, 0xfdf58516, 0x3852bb98, 0x9e25b02c,
        0xafcdaab1, 0x09baa105, 0xfff2d1ec, 0x5985da58, 0x686dc0c5, 0xce1acb71,
        0x0bbdf5ff, 0xadcafe4b, 0x9c22e4d6, 0x3a55ef62, 0xabc30345, 0x0db408f1,
        0x3c5c126c, 0x9a2b19d8, 0x5f8c2756, 0xf9fb2ce2, 0xc813367f, 0x6e643dcb,
        0x982c4d22, 0x3e5b4696, 0x0fb35c0b, 0xa9c457bf, 0x6c636931, 0xca146285,
        0xfbfc7818, 0x5d8b73ac, 0x03a0a617, 0xa5d7ada3, 0x943fb73e, 0x3248bc8a,
        0xf7ef8204, 0x519889b0, 0x6070932d, 0xc6079899, 0x304fe870, 0x9638e3c4,
        0xa7d0f959, 0x01a7f2ed, 0xc400cc63, 0x6277c7d7, 0x539fdd4a, 0xf5e8d6fe,
        0x647e3ad9, 0xc209316d, 0xf3e12bf0, 0x55962044, 0x90311eca, 0x3646157e,
        0x07ae0fe3, 0xa1d90457, 0x579174be, 0xf1e67f0a, 0xc00e6597, 0x66796e23,
        0xa3de50ad, 0x05a95b19, 0x34414184, 0x92364a30,
    },
    {
        0x00000000, 0xccaa009e, 0x4225077d, 0x8e8f07e3, 0x844a0efa, 0x48e00e64,
        0xc66f0987, 0x0ac50919, 0xd3e51bb5, 0x1f4f1b2b, 0x91c01cc8, 0x5d6a1c56,
        0x57af154f, 0x9b0515d1, 0x158a1232, 0xd92012ac, 0x7cbb312b, 0xb01131b5,
        0x3e9e3656, 0xf23436c8, 0xf8f13fd1, 0x345b3f4f, 0xbad438ac, 0x767e3832,
        0xaf5e2a9e, 0x63f42a00, 0xed7b2de3, 0x21d12d7d, 0x2b142464, 0xe7be24fa,
        0x69312319, 0xa59b2387, 0xf9766256, 0x35dc62c8, 0xbb53652b, 0x77f965b5,
        0x7d3c6cac, 0xb1966c32, 0x3f196bd1, 0xf3b36b4f, 0x2a9379e3, 0xe639797d,
        0x68b67e9e, 0xa41c7e00, 0xaed97719, 0x62737787, 0xecfc7064, 0x205670fa,
        0x85cd537d, 0x496753e3, 0xc7e85400, 0x0b42549e, 0x01875d87, 0xcd2d5d19,
        0x43a25afa, 0x8f085a64, 0x562848c8, 0x9a824856, 0x140d4fb5, 0xd8a74f2b,
        0xd2624632, 0x1ec846ac, 0x9047414f, 0x5ced41d1, 0x299dc2ed, 0xe537c273,
        0x6bb8c590, 0xa712c50e, 0xadd7cc17, 0x617dcc89, 0xeff2cb6a, 0x2358cbf4,
        0xfa78d958, 0x36d2d9c6, 0xb85dde25, 0x74f7debb, 0x7e32d7a2, 0xb298d73c,
        0x3c17d0df, 0xf0bdd041, 0x5526f3c6, 0x998cf358, 0x1703f4bb, 0xdba9f425,
        0xd16cfd3c, 0x1dc6fda2, 0x9349fa41, 0x5fe3fadf, 0x86c3e873, 0x4a69e8ed,
        0xc4e6ef0e, 0x084cef90, 0x0289e689, 0xce23e617, 0x40ace1f4, 0x8c06e16a,
        0xd0eba0bb, 0x1c41a025, 0x92cea7c6, 0x5e64a758, 0x54a1ae41, 0x980baedf,
        0x1684a93c, 0xda2ea9a2, 0x030ebb0e, 0xcfa4bb90, 0x412bbc73, 0x8d81bced,
        0x8744b5f4, 0x4beeb56a, 0xc561b289, 0x09cbb217, 0xac509190, 0x60fa910e,
        0xee7596ed, 0x22df9673, 0x281a9f6a, 0xe4b09ff4, 0x6a3f9817, 0xa6959889,
        0x7fb58a25, 0xb31f8abb, 0x3d908d58, 0xf13a8dc6, 0xfbff84df, 0x37558441,
        0xb9da83a2, 0x7570833c, 0x533b85da, 0x9f918544, 0x111e82a7, 0xddb48239,
        0xd7718b20, 0x1bdb8bbe, 0x95548c5d, 0x59fe8cc3, 0x80de9e6f, 0x4c749ef1,
        0xc2fb9912, 0x0e51998c, 0x04949095, 0xc83e900b, 0x46b197e8, 0x8a1b9776,
        0x2f80b4f1, 0xe32ab46f, 0x6da5b38c, 0xa10fb312, 0xabcaba0b, 0x6760ba95,
        0xe9efbd76, 0x2545bde8, 0xfc65af44, 0x30cfafda, 0xbe40a839, 0x72eaa8a7,
        0x782fa1be, 0xb485a120, 0x3a0aa6c3, 0xf6a0a65d, 0xaa4de78c, 0x66e7e712,
        0xe868e0f1, 0x24c2e06f, 0x2e07e976, 0xe2ade9e8, 0x6c22ee0b, 0xa088ee95,
        0x79a8fc39, 0xb502fca7, 0x3b8dfb44, 0xf727fbda, 0xfde2f2c3, 0x3148f25d,
        0xbfc7f5be, 0x736df520, 0xd6f6d6a7, 0x1a5cd639, 0x94d3d1da, 0x5879d144,
        0x52bcd85d, 0x9e16d8c3, 0x1099df20, 0xdc33dfbe, 0x0513cd12, 0xc9b9cd8c,
        0x4736ca6f, 0x8b9ccaf1, 0x8159c3e8, 0x4df3c376, 0xc37cc495, 0x0fd6c40b,
        0x7aa64737, 0xb60c47a9, 0x3883404a, 0xf42940d4, 0xfeec49cd, 0x32464953,
        0xbcc94eb0, 0x70634e2e, 0xa9435c82, 0x65e95c1c, 0xeb665bff, 0x27cc5b61,
        0x2d095278, 0xe1a352e6, 0x6f2c5505, 0xa386559b, 0x061d761c, 0xcab77682,
        0x44387161, 0x889271ff, 0x825778e6, 0x4efd7878, 0xc0727f9b, 0x0cd87f05,
        0xd5f86da9, 0x19526d37, 0x97dd6ad4, 0x5b776a4a, 0x51b26353, 0x9d1863cd,
        0x1397642e, 0xdf3d64b0, 0x83d02561, 0x4f7a25ff, 0xc1f5221c, 0x0d5f2282,
        0x079a2b9b, 0xcb302b05, 0x45bf2ce6, 0x89152c78, 0x50353ed4, 0x9c9f3e4a,
        0x121039a9, 0xdeba3937, 0xd47f302e, 0x18d530b0, 0x965a3753, 0x5af037cd,
        0xff6b144a, 0x33c114d4, 0xbd4e1337, 0x71e413a9, 0x7b211ab0, 0xb78b1a2e,
        0x39041dcd, 0xf5ae1d53, 0x2c8e0fff, 0xe0240f61, 0x6eab0882, 0xa201081c,
        0xa8c40105, 0x646e019b, 0xeae10678, 0x264b06e6,
    },
};

uint32_t art_crc32(uint32_t crc, const void *buf, size_t n) {
    const uint8_t *p = buf;
    crc = ~crc;
    while (n >= 8) {
        uint32_t a = crc ^ get_le32(p), b = get_le32(p + 4);
        crc = crc_table[7][a & 0xff] ^ crc_table[6][(a >> 8) & 0xff] ^ crc_table[5][(a >> 16) & 0xff] ^
              crc_table[4][a >> 24] ^ crc_table[3][b & 0xff] ^ crc_table[2][(b >> 8) & 0xff] ^
              crc_table[1][(b >> 16) & 0xff] ^ crc_table[0][b >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ------------------------------------------------------------------------ */
/* A structural MessagePack scanner. It checks, without allocating, that    */
/* p[0..n) starts with one complete object: every length inside the buffer, */
/* every container count at most the bytes left (each element takes at      */
/* least one byte, which bounds what msgpack-c will allocate) and at most   */
/* max_depth containers nested (msgpack-c's own limit is 32).               */

#define SCAN_MAX_DEPTH 32

int art_msgpack_scan(const uint8_t *p, size_t n, int max_depth, size_t *used, char *why, size_t whylen) {
    uint64_t left[SCAN_MAX_DEPTH + 1]; /* items still to read at each level */
    int depth = 0;
    size_t pos = 0;
    if (max_depth > SCAN_MAX_DEPTH) max_depth = SCAN_MAX_DEPTH;
    left[0] = 1;
    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        left[depth]--;
        if (pos >= n) goto truncated;
        size_t at = pos;
        uint8_t b = p[pos++];
        uint64_t len = 0, count = 0;
        int is_container = 0, lenbytes = 0;
        size_t fixed = 0; /* payload bytes after the type byte (and length) */
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            fixed = 0;
        } else if (b >= 0x80 && b <= 0x8f) {
            is_container = 1;
            count = 2 * (uint64_t)(b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            is_container = 1;
            count = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            len = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: lenbytes = 1; break;              /* bin8, str8 */
            case 0xc5: case 0xda: lenbytes = 2; break;              /* bin16, str16 */
            case 0xc6: case 0xdb: lenbytes = 4; break;              /* bin32, str32 */
            case 0xc7: lenbytes = 1; fixed = 1; break;              /* ext8 (+type) */
            case 0xc8: lenbytes = 2; fixed = 1; break;              /* ext16 */
            case 0xc9: lenbytes = 4; fixed = 1; break;              /* ext32 */
            case 0xca: fixed = 4; break;                            /* float32 */
            case 0xcb: fixed = 8; break;                            /* float64 */
            case 0xcc: case 0xd0: fixed = 1; break;
            case 0xcd: case 0xd1: fixed = 2; break;
            case 0xce: case 0xd2: fixed = 4; break;
            case 0xcf: case 0xd3: fixed = 8; break;
            case 0xd4: fixed = 2; break;                            /* fixext1..16 */
            case 0xd5: fixed = 3; break;
            case 0xd6: fixed = 5; break;
            case 0xd7: fixed = 9; break;
            case 0xd8: fixed = 17; break;
            case 0xdc: is_container = 1; lenbytes = 2; break;       /* array16 */
            case 0xdd: is_container = 1; lenbytes = 4; break;       /* array32 */
            case 0xde: is_container = 2; lenbytes = 2; break;       /* map16 */
            case 0xdf: is_container = 2; lenbytes = 4; break;       /* map32 */
            default:
                snprintf(why, whylen, "invalid MessagePack type byte 0x%02x at byte %zu", b, at);
                return -1;
            }
        }
        if (lenbytes) {
            if (n - pos < (size_t)lenbytes) goto truncated;
            uint64_t v = get_be(p + pos, lenbytes);
            pos += (size_t)lenbytes;
            if (is_container == 1) count = v;
            else if (is_container == 2) count = 2 * v;
            else len = v;
        }
        if (is_container) {
            if (depth + 1 > max_depth) {
                snprintf(why, whylen, "containers nested deeper than %d at byte %zu", max_depth, at);
                return -1;
            }
            if (count > n - pos) {
                snprintf(why, whylen, "container at byte %zu claims %" PRIu64 " elements, more than the %zu bytes left",
                         at, count, n - pos);
                return -1;
            }
            if (count > 0) left[++depth] = count;
            continue;
        }
        if (n - pos < fixed || n - pos - fixed < len) goto truncated;
        pos += fixed + (size_t)len;
    }
    *used = pos;
    return 0;
truncated:
    snprintf(why, whylen, "MessagePack data ends in the middle of an object (%zu bytes)", n);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* growable byte buffer with a sticky out-of-memory flag (msgpack writer)   */

typedef struct {
    uint8_t *data;
    size_t len, cap;
    int oom;
} Buf;

static int buf_append(Buf *b, const void *p, size_t n) {
    if (b->oom) return -1;
    if (n > SIZE_MAX - b->len) {
        b->oom = 1;
        return -1;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *nd = realloc(b->data, cap);
        if (!nd) {
            b->oom = 1;
            return -1;
        }
        b->data = nd;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static int buf_write_cb(void *data, const char *p, size_t n) { return buf_append(data, p, n); }

int art_pack_str(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    if (msgpack_pack_str(pk, n) != 0) return -1;
    return msgpack_pack_str_body(pk, s, n);
}

void art_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v) {
    art_pack_str(pk, k);
    msgpack_pack_int64(pk, v);
}

void art_pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v) {
    art_pack_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

void art_pack_kv_double(msgpack_packer *pk, const char *k, double v) {
    art_pack_str(pk, k);
    msgpack_pack_double(pk, v);
}

void art_pack_kv_str(msgpack_packer *pk, const char *k, const char *v) {
    art_pack_str(pk, k);
    art_pack_str(pk, v);
}

void art_pack_kv_doubles(msgpack_packer *pk, const char *k, const double *v, int n) {
    art_pack_str(pk, k);
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++) msgpack_pack_double(pk, v[i]);
}

/* ------------------------------------------------------------------------ */
/* section codecs                                                           */

/* LZ4 framing: chunks of u32 raw_len, u32 stored_len (LE), stored_len bytes;
 * stored_len == raw_len: the chunk is verbatim, stored_len < raw_len: an LZ4
 * block. Returns 1 (and nothing allocated) when the result would not be
 * smaller than raw. */
static int lz4_encode(const uint8_t *src, uint64_t raw, size_t chunk, uint8_t **out, uint64_t *out_n,
                      QErr *err) {
    *out = NULL;
    *out_n = 0;
    uint64_t nchunks = (raw + chunk - 1) / chunk;
    if (raw >= SIZE_MAX / 2 || nchunks > (SIZE_MAX / 2 - raw) / 8)
        return qerr_set(err, "%" PRIu64 " bytes are too many to compress", raw);
    size_t cap = (size_t)(raw + 8 * nchunks);
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) return qerr_set(err, "out of memory (%zu bytes) compressing", cap);
    size_t pos = 0;
    for (uint64_t off = 0; off < raw; off += chunk) {
        size_t len = (size_t)(raw - off < chunk ? raw - off : chunk);
        /* capacity len-1: LZ4 gives up (returns 0) unless it saves a byte */
        int c = len > 1 ? LZ4_compress_default((const char *)src + off, (char *)buf + pos + 8, (int)len,
                                               (int)len - 1)
                        : 0;
        size_t sl = c > 0 ? (size_t)c : len;
        if (c <= 0) memcpy(buf + pos + 8, src + off, len);
        put_le32(buf + pos, (uint32_t)len);
        put_le32(buf + pos + 4, (uint32_t)sl);
        pos += 8 + sl;
    }
    if (pos >= raw) {
        free(buf);
        return 1;
    }
    uint8_t *shrunk = realloc(buf, pos ? pos : 1);
    *out = shrunk ? shrunk : buf;
    *out_n = pos;
    return 0;
}

/* Decodes into dst, or chunk by chunk into *scratch when dst is NULL (to
 * check a section without holding it whole). */
static int decode_impl(const uint8_t *src, uint64_t stored, ArtCodec codec, uint8_t *dst, uint64_t raw,
                       uint8_t **scratch, size_t *scratch_cap, QErr *err) {
    if (codec == ART_CODEC_RAW) {
        if (stored != raw)
            return qerr_set(err, "raw section has %" PRIu64 " stored bytes but %" PRIu64 " raw bytes", stored, raw);
        if (dst && raw) memcpy(dst, src, (size_t)raw);
        return 0;
    }
    if (codec != ART_CODEC_LZ4) return qerr_set(err, "unknown codec %d", (int)codec);
    uint64_t pos = 0, out = 0;
    while (pos < stored) {
        if (stored - pos < 8)
            return qerr_set(err, "LZ4 chunk header at stored byte %" PRIu64 " is cut off (%" PRIu64 " bytes left)",
                            pos, stored - pos);
        uint32_t rl = get_le32(src + pos), sl = get_le32(src + pos + 4);
        if (rl == 0 || rl > LZ4_MAX_INPUT_SIZE)
            return qerr_set(err, "LZ4 chunk at stored byte %" PRIu64 ": raw length %" PRIu32 " not in 1..%d", pos,
                            rl, LZ4_MAX_INPUT_SIZE);
        if (sl > rl)
            return qerr_set(err, "LZ4 chunk at stored byte %" PRIu64 ": stored length %" PRIu32
                                 " exceeds its raw length %" PRIu32, pos, sl, rl);
        if (sl > stored - pos - 8)
            return qerr_set(err, "LZ4 chunk at stored byte %" PRIu64 ": %" PRIu32 " bytes run past the section end",
                            pos, sl);
        if (rl > raw - out)
            return qerr_set(err, "LZ4 chunks decode to more than the %" PRIu64 " raw bytes", raw);
        const uint8_t *cs = src + pos + 8;
        uint8_t *cd;
        if (dst) {
            cd = dst + out;
        } else {
            if (!*scratch || *scratch_cap < rl) {
                uint8_t *ns = realloc(*scratch, rl);
                if (!ns) return qerr_set(err, "out of memory (%" PRIu32 " bytes) checking a chunk", rl);
                *scratch = ns;
                *scratch_cap = rl;
            }
            cd = *scratch;
        }
        if (sl == rl) {
            memcpy(cd, cs, rl);
        } else {
            int d = LZ4_decompress_safe((const char *)cs, (char *)cd, (int)sl, (int)rl);
            if (d != (int)rl)
                return qerr_set(err, "LZ4 chunk at stored byte %" PRIu64 " is corrupt (decoder returned %d, expected %"
                                     PRIu32 " bytes)", pos, d, rl);
        }
        pos += 8 + (uint64_t)sl;
        out += rl;
    }
    if (out != raw)
        return qerr_set(err, "LZ4 chunks decode to %" PRIu64 " bytes, expected %" PRIu64, out, raw);
    return 0;
}

int art_decode(const uint8_t *src, uint64_t stored, ArtCodec codec, void *dst, uint64_t raw, QErr *err) {
    if (!dst && raw) return qerr_set(err, "no destination buffer");
    uint8_t dummy;
    return decode_impl(src, stored, codec, dst ? dst : &dummy, raw, NULL, NULL, err);
}

/* ------------------------------------------------------------------------ */
/* writer                                                                   */

typedef struct {
    char *name;
    ArtDtype dtype;
    int ndim;
    int64_t shape[ART_MAX_DIMS];
    uint64_t raw, stored;
    ArtCodec codec;
    uint32_t crc;
    uint8_t *bytes; /* stored bytes */
} WTensor;

struct ArtWriter {
    Buf meta;
    msgpack_packer pk;
    WTensor *t;
    int n, cap;
    size_t chunk;
};

ArtWriter *art_writer_new(QErr *err) {
    ArtWriter *w = calloc(1, sizeof *w);
    if (!w) {
        qerr_set(err, "out of memory creating an artifact writer");
        return NULL;
    }
    msgpack_packer_init(&w->pk, &w->meta, buf_write_cb);
    w->chunk = ART_LZ4_CHUNK_DEFAULT;
    return w;
}

void art_writer_free(ArtWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].bytes);
    }
    free(w->t);
    free(w->meta.data);
    free(w);
}

msgpack_packer *art_writer_meta(ArtWriter *w) { return &w->pk; }

int art_writer_n_tensors(const ArtWriter *w) { return w->n; }

int art_writer_set_chunk_size(ArtWriter *w, size_t bytes, QErr *err) {
    if (bytes < 1 || bytes > LZ4_MAX_INPUT_SIZE)
        return qerr_set(err, "LZ4 chunk size %zu not in 1..%d", bytes, LZ4_MAX_INPUT_SIZE);
    w->chunk = bytes;
    return 0;
}

int art_writer_add(ArtWriter *w, const char *name, ArtDtype dt, int ndim, const int64_t *shape,
                   const void *data, int compress, QErr *err) {
    if (!name) return qerr_set(err, "artifact tensor without a name");
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > ART_MAX_NAME)
        return qerr_set(err, "tensor \"%.64s\": name must be 1..%d bytes (is %zu)", name, ART_MAX_NAME, nlen);
    size_t esize = art_dtype_size(dt);
    if (esize == 0) return qerr_set(err, "tensor \"%s\": unknown dtype %d", name, (int)dt);
    if (ndim < 0 || ndim > ART_MAX_DIMS)
        return qerr_set(err, "tensor \"%s\": %d dimensions (0..%d allowed)", name, ndim, ART_MAX_DIMS);
    int64_t numel = 1;
    int any_zero = 0;
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0) any_zero = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return qerr_set(err, "tensor \"%s\": dimension %d is negative (%" PRId64 ")", name, d, shape[d]);
        if (any_zero) continue;
        if (numel > INT64_MAX / shape[d]) return qerr_set(err, "tensor \"%s\": shape product overflows", name);
        numel *= shape[d];
    }
    if (any_zero) numel = 0;
    if ((uint64_t)numel > (uint64_t)INT64_MAX / esize || (uint64_t)numel * esize > SIZE_MAX / 2)
        return qerr_set(err, "tensor \"%s\": %" PRId64 " elements are too many bytes", name, numel);
    uint64_t raw = (uint64_t)numel * esize;
    if (raw && !data) return qerr_set(err, "tensor \"%s\": no data for %" PRIu64 " bytes", name, raw);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0) return qerr_set(err, "tensor \"%s\" added twice", name);
    if (w->n == w->cap) {
        if (w->cap > (1 << 28)) return qerr_set(err, "too many tensors");
        int cap = w->cap ? 2 * w->cap : 64;
        WTensor *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt) return qerr_set(err, "out of memory adding tensor \"%s\"", name);
        w->t = nt;
        w->cap = cap;
    }
    WTensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = ndim;
    for (int d = 0; d < ndim; d++) t.shape[d] = shape[d];
    t.raw = raw;
    t.name = malloc(nlen + 1);
    if (!t.name) return qerr_set(err, "out of memory adding tensor \"%s\"", name);
    memcpy(t.name, name, nlen + 1);
    int use_raw = 1;
    if (compress && raw > 0) {
        int rc = lz4_encode(data, raw, w->chunk, &t.bytes, &t.stored, err);
        if (rc < 0) {
            free(t.name);
            return qerr_wrap(err, "tensor \"%s\"", name);
        }
        use_raw = rc == 1;
    }
    if (use_raw) {
        t.codec = ART_CODEC_RAW;
        t.stored = raw;
        t.bytes = malloc(raw ? (size_t)raw : 1);
        if (!t.bytes) {
            free(t.name);
            return qerr_set(err, "out of memory (%" PRIu64 " bytes) adding tensor \"%s\"", raw, name);
        }
        if (raw) memcpy(t.bytes, data, (size_t)raw);
    } else {
        t.codec = ART_CODEC_LZ4;
    }
    t.crc = art_crc32(0, t.bytes, (size_t)t.stored);
    w->t[w->n++] = t;
    return 0;
}

/* The header: everything but the data section. */
static int build_header(ArtWriter *w, Buf *h, QErr *err) {
    static const uint8_t empty_map = 0x80;
    const uint8_t *meta = w->meta.data;
    size_t meta_len = w->meta.len;
    if (w->meta.oom) return qerr_set(err, "out of memory while packing the metadata");
    if (meta_len == 0) {
        meta = &empty_map;
        meta_len = 1;
    } else {
        char why[160];
        size_t used = 0;
        if (art_msgpack_scan(meta, meta_len, ART_MAX_META_DEPTH, &used, why, sizeof why) != 0)
            return qerr_set(err, "metadata: %s", why);
        if (used != meta_len)
            return qerr_set(err, "metadata must be exactly one MessagePack object (%zu bytes follow the first)",
                            meta_len - used);
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, h, buf_write_cb);
    msgpack_pack_map(&pk, 4);
    art_pack_str(&pk, "version");
    msgpack_pack_uint32(&pk, ART_FORMAT_VERSION);
    art_pack_str(&pk, "meta");
    buf_append(h, meta, meta_len);
    art_pack_str(&pk, "tensors");
    msgpack_pack_array(&pk, (size_t)w->n);
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const WTensor *t = &w->t[i];
        msgpack_pack_map(&pk, 8);
        art_pack_str(&pk, "name");
        art_pack_str(&pk, t->name);
        art_pack_str(&pk, "dtype");
        art_pack_str(&pk, art_dtype_name(t->dtype));
        art_pack_str(&pk, "shape");
        msgpack_pack_array(&pk, (size_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) msgpack_pack_uint64(&pk, (uint64_t)t->shape[d]);
        art_pack_str(&pk, "offset");
        msgpack_pack_uint64(&pk, off);
        art_pack_str(&pk, "stored");
        msgpack_pack_uint64(&pk, t->stored);
        art_pack_str(&pk, "raw");
        msgpack_pack_uint64(&pk, t->raw);
        art_pack_str(&pk, "codec");
        art_pack_str(&pk, art_codec_name(t->codec));
        art_pack_str(&pk, "checksum");
        msgpack_pack_uint32(&pk, t->crc);
        off = align8(off + t->stored);
    }
    uint32_t crc = art_crc32(0, h->data, h->len);
    uint8_t trailer[TRAILER_LEN];
    memcpy(trailer, TRAILER_KEY, TRAILER_KEY_LEN);
    trailer[TRAILER_KEY_LEN] = 0xce;
    for (int i = 0; i < 4; i++) trailer[TRAILER_KEY_LEN + 1 + i] = (uint8_t)(crc >> (24 - 8 * i));
    buf_append(h, trailer, sizeof trailer);
    if (h->oom) return qerr_set(err, "out of memory building the artifact header");
    if (h->len > ART_MAX_HEADER)
        return qerr_set(err, "artifact header is %zu bytes, more than the %u a reader accepts", h->len,
                        (unsigned)ART_MAX_HEADER);
    return 0;
}

int art_writer_write(ArtWriter *w, const char *path, QErr *err) {
    Buf h = {0};
    if (build_header(w, &h, err) != 0) {
        free(h.data);
        return qerr_wrap(err, "%s", path);
    }
    uint8_t pre[ART_PREAMBLE_BYTES];
    memcpy(pre, ART_MAGIC, 8);
    put_le32(pre + 8, ART_FORMAT_VERSION);
    put_le32(pre + 12, 0);
    put_le64(pre + 16, h.len);
    uint64_t hend = ART_PREAMBLE_BYTES + (uint64_t)h.len;
    AtomicFile *af = atomic_open(path, err);
    if (!af) {
        free(h.data);
        return -1;
    }
    int rc = atomic_write(af, pre, sizeof pre, err);
    if (rc == 0) rc = atomic_write(af, h.data, h.len, err);
    if (rc == 0) rc = atomic_write(af, zeros8, (size_t)(align8(hend) - hend), err);
    uint64_t pos = 0;
    for (int i = 0; rc == 0 && i < w->n; i++) {
        const WTensor *t = &w->t[i];
        rc = atomic_write(af, zeros8, (size_t)(align8(pos) - pos), err);
        if (rc == 0) rc = atomic_write(af, t->bytes, (size_t)t->stored, err);
        pos = align8(pos) + t->stored;
    }
    free(h.data);
    if (rc != 0) {
        atomic_abort(af);
        return -1;
    }
    return atomic_commit(af, err);
}

/* ------------------------------------------------------------------------ */
/* reader                                                                   */

typedef struct {
    const char *name;
    int idx;
} NameIdx;

struct ArtReader {
    MappedFile mf;
    int mapped;
    const uint8_t *buf;
    size_t size;
    char name[512];
    const uint8_t *data; /* data section */
    uint64_t data_size;
    msgpack_unpacked unp;
    int unp_init;
    const msgpack_object *meta;
    ArtTensorInfo *t;
    int n;
    NameIdx *sorted;
};

static int rerr(const ArtReader *r, QErr *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rerr(const ArtReader *r, QErr *err, const char *fmt, ...) {
    char msg[QERR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qerr_set(err, "%s: %s", r->name, msg);
}

static int key_is(const msgpack_object *k, const char *s) {
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, s, n) == 0;
}

const char *art_obj_type_name(const msgpack_object *o) {
    if (!o) return "nothing";
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "unsigned integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "negative integer";
    case MSGPACK_OBJECT_FLOAT32: return "float32";
    case MSGPACK_OBJECT_FLOAT64: return "float64";
    case MSGPACK_OBJECT_STR: return "string";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_BIN: return "binary";
    case MSGPACK_OBJECT_EXT: return "ext";
    }
    return "unknown";
}

/* an unsigned field of a tensor entry */
static int field_u64(const ArtReader *r, int i, const char *tname, const char *key, const msgpack_object *o,
                     uint64_t max, uint64_t *out, QErr *err) {
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return rerr(r, err, "tensor %d \"%s\": field \"%s\" is negative (%" PRId64 ")", i, tname, key, o->via.i64);
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return rerr(r, err, "tensor %d \"%s\": field \"%s\" must be an unsigned integer, got %s", i, tname, key,
                    art_obj_type_name(o));
    if (o->via.u64 > max)
        return rerr(r, err, "tensor %d \"%s\": field \"%s\" is %" PRIu64 ", more than %" PRIu64, i, tname, key,
                    o->via.u64, max);
    *out = o->via.u64;
    return 0;
}

enum { F_NAME, F_DTYPE, F_SHAPE, F_OFFSET, F_STORED, F_RAW, F_CODEC, F_CHECKSUM, F_COUNT };
static const char *const FIELD_NAMES[F_COUNT] = {"name", "dtype", "shape", "offset", "stored", "raw", "codec", "checksum"};

static int parse_tensor(ArtReader *r, int i, const msgpack_object *e, QErr *err) {
    ArtTensorInfo *t = &r->t[i];
    if (e->type != MSGPACK_OBJECT_MAP)
        return rerr(r, err, "tensor %d: entry must be a map, got %s", i, art_obj_type_name(e));
    const msgpack_object *f[F_COUNT] = {0};
    for (uint32_t k = 0; k < e->via.map.size; k++) {
        const msgpack_object *key = &e->via.map.ptr[k].key;
        int which = -1;
        for (int j = 0; j < F_COUNT; j++)
            if (key_is(key, FIELD_NAMES[j])) which = j;
        if (which < 0) {
            if (key->type == MSGPACK_OBJECT_STR)
                return rerr(r, err, "tensor %d: unknown field \"%.*s\"", i, (int)(key->via.str.size > 64 ? 64 : key->via.str.size),
                            key->via.str.ptr);
            return rerr(r, err, "tensor %d: field key must be a string, got %s", i, art_obj_type_name(key));
        }
        if (f[which]) return rerr(r, err, "tensor %d: field \"%s\" appears twice", i, FIELD_NAMES[which]);
        f[which] = &e->via.map.ptr[k].val;
    }
    for (int j = 0; j < F_COUNT; j++)
        if (!f[j]) return rerr(r, err, "tensor %d: missing field \"%s\"", i, FIELD_NAMES[j]);

    /* name first, so every later message can name the tensor */
    const msgpack_object *o = f[F_NAME];
    if (o->type != MSGPACK_OBJECT_STR)
        return rerr(r, err, "tensor %d: field \"name\" must be a string, got %s", i, art_obj_type_name(o));
    if (o->via.str.size == 0 || o->via.str.size > ART_MAX_NAME)
        return rerr(r, err, "tensor %d: name must be 1..%d bytes (is %" PRIu32 ")", i, ART_MAX_NAME, o->via.str.size);
    if (memchr(o->via.str.ptr, 0, o->via.str.size))
        return rerr(r, err, "tensor %d: name contains a NUL byte", i);
    char *nm = malloc(o->via.str.size + 1);
    if (!nm) return rerr(r, err, "out of memory");
    memcpy(nm, o->via.str.ptr, o->via.str.size);
    nm[o->via.str.size] = '\0';
    t->name = nm;

    o = f[F_DTYPE];
    if (o->type != MSGPACK_OBJECT_STR || art_dtype_parse(o->via.str.ptr, o->via.str.size, &t->dtype) != 0) {
        if (o->type == MSGPACK_OBJECT_STR)
            return rerr(r, err, "tensor %d \"%s\": unknown dtype \"%.*s\" (f32, f16, u8, i32)", i, nm,
                        (int)(o->via.str.size > 32 ? 32 : o->via.str.size), o->via.str.ptr);
        return rerr(r, err, "tensor %d \"%s\": field \"dtype\" must be a string, got %s", i, nm, art_obj_type_name(o));
    }

    o = f[F_SHAPE];
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return rerr(r, err, "tensor %d \"%s\": field \"shape\" must be an array, got %s", i, nm, art_obj_type_name(o));
    if (o->via.array.size > ART_MAX_DIMS)
        return rerr(r, err, "tensor %d \"%s\": shape has %" PRIu32 " dimensions (at most %d)", i, nm,
                    o->via.array.size, ART_MAX_DIMS);
    t->ndim = (int)o->via.array.size;
    int any_zero = 0;
    for (int d = 0; d < t->ndim; d++) {
        const msgpack_object *dim = &o->via.array.ptr[d];
        if (dim->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return rerr(r, err, "tensor %d \"%s\": shape[%d] is negative (%" PRId64 ")", i, nm, d, dim->via.i64);
        if (dim->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return rerr(r, err, "tensor %d \"%s\": shape[%d] must be an unsigned integer, got %s", i, nm, d,
                        art_obj_type_name(dim));
        if (dim->via.u64 > (uint64_t)INT64_MAX)
            return rerr(r, err, "tensor %d \"%s\": shape[%d] = %" PRIu64 " is too large", i, nm, d, dim->via.u64);
        t->shape[d] = (int64_t)dim->via.u64;
        if (t->shape[d] == 0) any_zero = 1;
    }
    size_t esize = art_dtype_size(t->dtype);
    int64_t numel = 1;
    for (int d = 0; d < t->ndim && !any_zero; d++) {
        if (numel > INT64_MAX / t->shape[d])
            return rerr(r, err, "tensor %d \"%s\": shape product overflows", i, nm);
        numel *= t->shape[d];
    }
    if (any_zero) numel = 0;
    if ((uint64_t)numel > (uint64_t)INT64_MAX / esize)
        return rerr(r, err, "tensor %d \"%s\": shape product %" PRId64 " x %zu bytes overflows", i, nm, numel, esize);
    t->numel = numel;

    if (field_u64(r, i, nm, "offset", f[F_OFFSET], UINT64_MAX, &t->offset, err) != 0) return -1;
    if (field_u64(r, i, nm, "stored", f[F_STORED], UINT64_MAX, &t->stored_bytes, err) != 0) return -1;
    if (field_u64(r, i, nm, "raw", f[F_RAW], UINT64_MAX, &t->raw_bytes, err) != 0) return -1;
    uint64_t ck;
    if (field_u64(r, i, nm, "checksum", f[F_CHECKSUM], UINT32_MAX, &ck, err) != 0) return -1;
    t->checksum = (uint32_t)ck;
    uint64_t expect_raw = (uint64_t)numel * esize;
    if (t->raw_bytes != expect_raw)
        return rerr(r, err, "tensor %d \"%s\": field \"raw\" is %" PRIu64 " bytes but the shape and dtype %s give %" PRIu64,
                    i, nm, t->raw_bytes, art_dtype_name(t->dtype), expect_raw);

    o = f[F_CODEC];
    if (key_is(o, "raw")) {
        t->codec = ART_CODEC_RAW;
        if (t->stored_bytes != t->raw_bytes)
            return rerr(r, err, "tensor %d \"%s\": codec \"raw\" but stored %" PRIu64 " != raw %" PRIu64 " bytes", i, nm,
                        t->stored_bytes, t->raw_bytes);
    } else if (key_is(o, "lz4")) {
        t->codec = ART_CODEC_LZ4;
        if ((t->raw_bytes == 0) != (t->stored_bytes == 0))
            return rerr(r, err, "tensor %d \"%s\": codec \"lz4\" with stored %" PRIu64 " and raw %" PRIu64 " bytes", i,
                        nm, t->stored_bytes, t->raw_bytes);
    } else if (o->type == MSGPACK_OBJECT_STR) {
        return rerr(r, err, "tensor %d \"%s\": unknown codec \"%.*s\" (raw, lz4)", i, nm,
                    (int)(o->via.str.size > 32 ? 32 : o->via.str.size), o->via.str.ptr);
    } else {
        return rerr(r, err, "tensor %d \"%s\": field \"codec\" must be a string, got %s", i, nm, art_obj_type_name(o));
    }
    return 0;
}

static int cmp_nameidx(const void *a, const void *b) {
    return strcmp(((const NameIdx *)a)->name, ((const NameIdx *)b)->name);
}

static int all_zero(const uint8_t *p, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static int parse_file(ArtReader *r, QErr *err) {
    const uint8_t *b = r->buf;
    size_t size = r->size;
    if (size < 8) {
        if (size == 0 || memcmp(b, ART_MAGIC, size) == 0)
            return rerr(r, err, "file is truncated (%zu bytes; the fixed preamble alone is %u)", size,
                        ART_PREAMBLE_BYTES);
        return rerr(r, err, "not a quept artifact (bad magic)");
    }
    if (memcmp(b, ART_MAGIC, 8) != 0) return rerr(r, err, "not a quept artifact (bad magic)");
    if (size < ART_PREAMBLE_BYTES)
        return rerr(r, err, "file is truncated (%zu bytes; the fixed preamble alone is %u)", size, ART_PREAMBLE_BYTES);
    uint32_t version = get_le32(b + 8), reserved = get_le32(b + 12);
    uint64_t hlen = get_le64(b + 16);
    if (version > ART_FORMAT_VERSION)
        return rerr(r, err, "written by a newer quept (format %" PRIu32 ", this build reads %u)", version,
                    ART_FORMAT_VERSION);
    if (version != ART_FORMAT_VERSION)
        return rerr(r, err, "unsupported format version %" PRIu32 " (this build reads %u)", version, ART_FORMAT_VERSION);
    if (reserved != 0) return rerr(r, err, "reserved preamble field is %" PRIu32 ", must be 0", reserved);
    if (hlen > size - ART_PREAMBLE_BYTES)
        return rerr(r, err, "header length %" PRIu64 " runs past the end of the file (%zu bytes): truncated?", hlen,
                    size);
    if (hlen > ART_MAX_HEADER)
        return rerr(r, err, "header length %" PRIu64 " exceeds the limit of %u bytes", hlen, (unsigned)ART_MAX_HEADER);
    if (hlen < TRAILER_LEN + 1) return rerr(r, err, "header length %" PRIu64 " is too short", hlen);
    const uint8_t *h = b + ART_PREAMBLE_BYTES;
    size_t hn = (size_t)hlen;
    const uint8_t *tr = h + hn - TRAILER_LEN;
    if (memcmp(tr, TRAILER_KEY, TRAILER_KEY_LEN) != 0 || tr[TRAILER_KEY_LEN] != 0xce)
        return rerr(r, err, "header does not end with the \"header_checksum\" field (corrupt or truncated header)");
    uint32_t want = (uint32_t)get_be(tr + TRAILER_KEY_LEN + 1, 4);
    uint32_t got = art_crc32(0, h, hn - TRAILER_LEN);
    if (want != got)
        return rerr(r, err, "header checksum mismatch (header says %08" PRIx32 ", bytes give %08" PRIx32 "): corrupt header",
                    want, got);

    char why[200];
    size_t used = 0;
    if (art_msgpack_scan(h, hn, 1 + ART_MAX_META_DEPTH, &used, why, sizeof why) != 0)
        return rerr(r, err, "header: %s", why);
    if (used != hn) return rerr(r, err, "header: %zu stray bytes after the header map", hn - used);
    msgpack_unpacked_init(&r->unp);
    r->unp_init = 1;
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&r->unp, (const char *)h, hn, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != hn)
        return rerr(r, err, "header is not valid MessagePack (%s)",
                    ur == MSGPACK_UNPACK_NOMEM_ERROR ? "out of memory" : "parse error");
    const msgpack_object *top = &r->unp.data;
    static const char *const TOP_KEYS[4] = {"version", "meta", "tensors", "header_checksum"};
    if (top->type != MSGPACK_OBJECT_MAP || top->via.map.size != 4)
        return rerr(r, err, "header must be a map of 4 fields (version, meta, tensors, header_checksum)");
    for (int k = 0; k < 4; k++)
        if (!key_is(&top->via.map.ptr[k].key, TOP_KEYS[k]))
            return rerr(r, err, "header field %d must be \"%s\"", k, TOP_KEYS[k]);
    const msgpack_object *v = &top->via.map.ptr[0].val;
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 != ART_FORMAT_VERSION)
        return rerr(r, err, "header field \"version\" must be %u (as in the preamble)", ART_FORMAT_VERSION);
    r->meta = &top->via.map.ptr[1].val;
    const msgpack_object *tl = &top->via.map.ptr[2].val;
    if (tl->type != MSGPACK_OBJECT_ARRAY)
        return rerr(r, err, "header field \"tensors\" must be an array, got %s", art_obj_type_name(tl));
    if (tl->via.array.size > (uint32_t)(INT32_MAX / 2))
        return rerr(r, err, "header field \"tensors\" lists too many tensors");
    int n = (int)tl->via.array.size;
    r->t = calloc(n ? (size_t)n : 1, sizeof *r->t);
    r->sorted = calloc(n ? (size_t)n : 1, sizeof *r->sorted);
    if (!r->t || !r->sorted) return rerr(r, err, "out of memory for %d tensor entries", n);
    r->n = n;
    for (int i = 0; i < n; i++)
        if (parse_tensor(r, i, &tl->via.array.ptr[i], err) != 0) return -1;

    /* names unique */
    for (int i = 0; i < n; i++) {
        r->sorted[i].name = r->t[i].name;
        r->sorted[i].idx = i;
    }
    qsort(r->sorted, (size_t)n, sizeof *r->sorted, cmp_nameidx);
    for (int i = 1; i < n; i++)
        if (strcmp(r->sorted[i - 1].name, r->sorted[i].name) == 0)
            return rerr(r, err, "tensor name \"%s\" appears twice (tensors %d and %d)", r->sorted[i].name,
                        r->sorted[i - 1].idx, r->sorted[i].idx);

    /* layout: header padding, then sections packed in order at 8-byte
     * alignment, and nothing after the last one */
    uint64_t hend = ART_PREAMBLE_BYTES + hlen, dstart = align8(hend);
    if (dstart > size)
        return rerr(r, err, "file is truncated: the data section starts at byte %" PRIu64 " but the file has %zu bytes",
                    dstart, size);
    if (!all_zero(b + hend, dstart - hend)) return rerr(r, err, "padding after the header is not zero");
    r->data = b + dstart;
    r->data_size = size - dstart;
    uint64_t end = 0;
    for (int i = 0; i < n; i++) {
        const ArtTensorInfo *t = &r->t[i];
        uint64_t want_off = align8(end);
        if (t->offset != want_off)
            return rerr(r, err, "tensor %d \"%s\": offset %" PRIu64 ", expected %" PRIu64
                                " (sections follow each other in header order at 8-byte alignment)",
                        i, t->name, t->offset, want_off);
        if (t->offset > r->data_size || t->stored_bytes > r->data_size - t->offset)
            return rerr(r, err, "tensor %d \"%s\": section [%" PRIu64 ", +%" PRIu64 ") runs past the end of the data section (%"
                                PRIu64 " bytes): file truncated?",
                        i, t->name, t->offset, t->stored_bytes, r->data_size);
        if (!all_zero(r->data + end, t->offset - end))
            return rerr(r, err, "tensor %d \"%s\": padding before the section is not zero", i, t->name);
        end = t->offset + t->stored_bytes;
        if (end > UINT64_MAX - 8) return rerr(r, err, "tensor %d \"%s\": section end overflows", i, t->name);
    }
    if (end != r->data_size)
        return rerr(r, err, "%" PRIu64 " unexpected bytes after the last section (the file should end at byte %" PRIu64 ")",
                    r->data_size - end, dstart + end);
    return 0;
}

static int open_common(ArtReader *r, QErr *err) {
    if (parse_file(r, err) != 0) return -1;
    return 0;
}

int art_open(ArtReader **out, const char *path, QErr *err) {
    *out = NULL;
    ArtReader *r = calloc(1, sizeof *r);
    if (!r) return qerr_set(err, "%s: out of memory", path);
    snprintf(r->name, sizeof r->name, "%s", path);
    if (mapfile_open(&r->mf, path, err) != 0) {
        free(r);
        return -1;
    }
    r->mapped = 1;
    r->buf = r->mf.data;
    r->size = r->mf.size;
    if (open_common(r, err) != 0) {
        art_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

int art_open_buffer(ArtReader **out, const void *data, size_t size, const char *name, QErr *err) {
    *out = NULL;
    ArtReader *r = calloc(1, sizeof *r);
    if (!r) return qerr_set(err, "%s: out of memory", name);
    snprintf(r->name, sizeof r->name, "%s", name ? name : "(buffer)");
    r->buf = data;
    r->size = data ? size : 0;
    if (open_common(r, err) != 0) {
        art_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

void art_close(ArtReader *r) {
    if (!r) return;
    if (r->t)
        for (int i = 0; i < r->n; i++) free((char *)r->t[i].name);
    free(r->t);
    free(r->sorted);
    if (r->unp_init) msgpack_unpacked_destroy(&r->unp);
    if (r->mapped) mapfile_close(&r->mf);
    free(r);
}

const char *art_name(const ArtReader *r) { return r->name; }
const msgpack_object *art_meta(const ArtReader *r) { return r->meta; }
int art_n_tensors(const ArtReader *r) { return r->n; }

const ArtTensorInfo *art_tensor_info(const ArtReader *r, int i) {
    if (i < 0 || i >= r->n) return NULL;
    return &r->t[i];
}

int art_find(const ArtReader *r, const char *name) {
    if (!name || r->n == 0) return -1;
    NameIdx key = {name, -1};
    const NameIdx *hit = bsearch(&key, r->sorted, (size_t)r->n, sizeof *r->sorted, cmp_nameidx);
    return hit ? hit->idx : -1;
}

const uint8_t *art_stored_ptr(const ArtReader *r, int i) {
    if (i < 0 || i >= r->n) return NULL;
    return r->data + r->t[i].offset;
}

static int check_sum(const ArtReader *r, int i, QErr *err) {
    const ArtTensorInfo *t = &r->t[i];
    uint32_t got = art_crc32(0, r->data + t->offset, (size_t)t->stored_bytes);
    if (got != t->checksum)
        return rerr(r, err, "tensor %d \"%s\": checksum mismatch (header says %08" PRIx32 ", stored bytes give %08" PRIx32
                            "): corrupt data",
                    i, t->name, t->checksum, got);
    return 0;
}

int art_read(const ArtReader *r, int i, void *dst, size_t dst_bytes, QErr *err) {
    if (i < 0 || i >= r->n) return rerr(r, err, "no tensor %d (the file has %d)", i, r->n);
    const ArtTensorInfo *t = &r->t[i];
    if ((uint64_t)dst_bytes != t->raw_bytes)
        return rerr(r, err, "tensor %d \"%s\": destination holds %zu bytes, the tensor has %" PRIu64, i, t->name,
                    dst_bytes, t->raw_bytes);
    if (!dst && dst_bytes) return rerr(r, err, "tensor %d \"%s\": no destination buffer", i, t->name);
    if (check_sum(r, i, err) != 0) return -1;
    uint8_t dummy;
    if (decode_impl(r->data + t->offset, t->stored_bytes, t->codec, dst ? dst : &dummy, t->raw_bytes, NULL, NULL,
                    err) != 0)
        return qerr_wrap(err, "%s: tensor %d \"%s\"", r->name, i, t->name);
    return 0;
}

const void *art_view(const ArtReader *r, int i, QErr *err) {
    if (i < 0 || i >= r->n) {
        rerr(r, err, "no tensor %d (the file has %d)", i, r->n);
        return NULL;
    }
    const ArtTensorInfo *t = &r->t[i];
    if (t->codec != ART_CODEC_RAW) {
        rerr(r, err, "tensor %d \"%s\": stored with codec %s, cannot be viewed in place", i, t->name,
             art_codec_name(t->codec));
        return NULL;
    }
    if (check_sum(r, i, err) != 0) return NULL;
    return r->data + t->offset;
}

/* One section: checksum, then a full decode into scratch (grown as needed). */
static int verify_one(const ArtReader *r, int i, uint8_t **scratch, size_t *cap, QErr *err) {
    const ArtTensorInfo *t = &r->t[i];
    if (check_sum(r, i, err) != 0) return -1;
    if (decode_impl(r->data + t->offset, t->stored_bytes, t->codec, NULL, t->raw_bytes, scratch, cap, err) != 0)
        return qerr_wrap(err, "%s: tensor %d \"%s\"", r->name, i, t->name);
    return 0;
}

int art_verify_all(const ArtReader *r, QErr *err) {
    uint8_t *scratch = NULL;
    size_t cap = 0;
    int rc = 0;
    for (int i = 0; i < r->n && rc == 0; i++) rc = verify_one(r, i, &scratch, &cap, err);
    free(scratch);
    return rc;
}

int art_verify_section(const ArtReader *r, int i, QErr *err) {
    if (i < 0 || i >= r->n) return qerr_set(err, "%s: no tensor %d", r->name, i);
    uint8_t *scratch = NULL;
    size_t cap = 0;
    int rc = verify_one(r, i, &scratch, &cap, err);
    free(scratch);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* typed metadata access                                                    */

const msgpack_object *art_meta_get(const msgpack_object *map, const char *key) {
    if (!map || map->type != MSGPACK_OBJECT_MAP || !key) return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (key_is(&map->via.map.ptr[i].key, key)) return &map->via.map.ptr[i].val;
    return NULL;
}

int art_obj_int(const msgpack_object *o, const char *what, int64_t *out, QErr *err) {
    if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 0;
    }
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return qerr_set(err, "%s: %" PRIu64 " is out of the integer range", what, o->via.u64);
        *out = (int64_t)o->via.u64;
        return 0;
    }
    return qerr_set(err, "%s: expected an integer, got %s", what, art_obj_type_name(o));
}

int art_obj_float(const msgpack_object *o, const char *what, double *out, QErr *err) {
    if (o && (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)) {
        *out = o->via.f64;
        return 0;
    }
    if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = (double)o->via.i64;
        return 0;
    }
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = (double)o->via.u64;
        return 0;
    }
    return qerr_set(err, "%s: expected a number, got %s", what, art_obj_type_name(o));
}

int art_obj_bool(const msgpack_object *o, const char *what, int *out, QErr *err) {
    if (o && o->type == MSGPACK_OBJECT_BOOLEAN) {
        *out = o->via.boolean ? 1 : 0;
        return 0;
    }
    return qerr_set(err, "%s: expected a boolean, got %s", what, art_obj_type_name(o));
}

int art_obj_str(const msgpack_object *o, const char *what, char *buf, size_t bufsize, QErr *err) {
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return qerr_set(err, "%s: expected a string, got %s", what, art_obj_type_name(o));
    size_t n = o->via.str.size;
    if (n >= bufsize) return qerr_set(err, "%s: string of %zu bytes is too long (at most %zu)", what, n,
                                      bufsize ? bufsize - 1 : 0);
    if (n && memchr(o->via.str.ptr, 0, n)) return qerr_set(err, "%s: string contains a NUL byte", what);
    if (n) memcpy(buf, o->via.str.ptr, n);
    buf[n] = '\0';
    return 0;
}

/* Looks key up; on a miss fills err. what gets "key \"<key>\"". */
static const msgpack_object *meta_lookup(const msgpack_object *map, const char *key, char *what, size_t wn,
                                         QErr *err) {
    snprintf(what, wn, "key \"%s\"", key);
    if (!map || map->type != MSGPACK_OBJECT_MAP) {
        qerr_set(err, "%s: looked up in %s, not a map", what, art_obj_type_name(map));
        return NULL;
    }
    const msgpack_object *o = art_meta_get(map, key);
    if (!o) qerr_set(err, "%s: missing", what);
    return o;
}

#define META_GETTER(fn, objfn, T)                                                              \
    int fn(const msgpack_object *map, const char *key, T *out, QErr *err) {                   \
        char what[200];                                                                        \
        const msgpack_object *o = meta_lookup(map, key, what, sizeof what, err);               \
        if (!o) return -1;                                                                     \
        return objfn(o, what, out, err);                                                       \
    }
META_GETTER(art_meta_int, art_obj_int, int64_t)
META_GETTER(art_meta_float, art_obj_float, double)
META_GETTER(art_meta_bool, art_obj_bool, int)

int art_meta_str(const msgpack_object *map, const char *key, char *buf, size_t bufsize, QErr *err) {
    char what[200];
    const msgpack_object *o = meta_lookup(map, key, what, sizeof what, err);
    if (!o) return -1;
    return art_obj_str(o, what, buf, bufsize, err);
}

static int meta_typed(const msgpack_object *map, const char *key, msgpack_object_type ty, const char *tyname,
                      const msgpack_object **out, QErr *err) {
    char what[200];
    *out = NULL;
    const msgpack_object *o = meta_lookup(map, key, what, sizeof what, err);
    if (!o) return -1;
    if (o->type != ty) return qerr_set(err, "%s: expected %s, got %s", what, tyname, art_obj_type_name(o));
    *out = o;
    return 0;
}

int art_meta_doubles(const msgpack_object *map, const char *key, double *out, int n, QErr *err) {
    const msgpack_object *a;
    if (art_meta_array(map, key, &a, err) != 0) return -1;
    if ((int)a->via.array.size != n)
        return qerr_set(err, "key \"%s\": expected %d numbers, got %u", key, n, a->via.array.size);
    for (int i = 0; i < n; i++)
        if (art_obj_float(&a->via.array.ptr[i], key, &out[i], err) != 0) return -1;
    return 0;
}

int art_meta_array(const msgpack_object *map, const char *key, const msgpack_object **out, QErr *err) {
    return meta_typed(map, key, MSGPACK_OBJECT_ARRAY, "an array", out, err);
}

int art_meta_map(const msgpack_object *map, const char *key, const msgpack_object **out, QErr *err) {
    return meta_typed(map, key, MSGPACK_OBJECT_MAP, "a map", out, err);
}
