/* crc32.h — CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the
 * checksum of the artifact's sections, the journal's entries and the wire
 * protocol's tensor frames. */
#ifndef QUEPT_CRC32_H
#define QUEPT_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* zlib-compatible chaining: crc = crc32_ieee(0, a, na); crc = crc32_ieee(crc, b, nb); */
uint32_t crc32_ieee(uint32_t crc, const void *buf, size_t n);

#endif
