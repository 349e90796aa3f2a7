/* crc32.h — CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the
 * checksum of the tensor container's header and sections (artifact/container.h),
 * and so of the artifact and of the checkpoint journal's files. */
#ifndef QUEPT_CRC32_H
#define QUEPT_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* zlib-compatible chaining: crc = crc32_ieee(0, a, na); crc = crc32_ieee(crc, b, nb); */
uint32_t crc32_ieee(uint32_t crc, const void *buf, size_t n);

#endif
