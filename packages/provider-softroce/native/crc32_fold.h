// crc32_fold.h - CRC-32 (IEEE, reflected; zlib's crc32 and RoCEv2's ICRC) for the helper.
#ifndef CRC32_FOLD_H
#define CRC32_FOLD_H
#include <stddef.h>
#include <stdint.h>

/** Builds the tables and looks for PCLMULQDQ; call once before crc32_fold. */
void crc32_fold_init(void);
/** 1 when crc32_fold uses carry-less multiplication. */
int crc32_fold_accelerated(void);
/** zlib's crc32(crc, p, len): `crc` is the running value (0 to start), the result the CRC. */
uint32_t crc32_fold(uint32_t crc, const uint8_t *p, size_t len);
#endif
