// crc32_fold.c - CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320: the one RoCEv2's ICRC and
// zlib's crc32 use) by carry-less multiplication (PCLMULQDQ) where the CPU has it: four 128-bit
// lanes fold 64 bytes per step, then one lane folds the rest 16 bytes at a time, and a Barrett
// reduction turns the 128-bit remainder into the 32-bit register. Elsewhere, and for the bytes
// after the last 16-byte block, a slice-by-8 table walk. Same results as zlib.crc32 (the test
// suite compares them on random buffers, lengths and seeds).
#include "crc32_fold.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint32_t table[8][256];
static int have_clmul = -1;

static void init_tables(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    table[0][n] = c;
  }
  for (uint32_t n = 0; n < 256; n++)
    for (int t = 1; t < 8; t++) table[t][n] = (table[t - 1][n] >> 8) ^ table[0][table[t - 1][n] & 0xff];
}

/** The register (not inverted) after feeding len bytes, eight at a time through the tables. */
static uint32_t slice8(uint32_t c, const uint8_t *p, size_t len) {
  while (len >= 8) {
    uint32_t lo, hi;
    memcpy(&lo, p, 4);
    memcpy(&hi, p + 4, 4);
    lo ^= c; // little-endian hosts (x86-64, arm64)
    c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
        table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^ table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  while (len--) c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

// x^n mod P for the folding distances, bit-reflected and shifted as the reflected algorithm wants:
// 4 lanes (512 bits) apart, 1 lane (128 bits) apart, 64 bits, and the Barrett pair (mu, P).
#define K1 0x154442bd4ull
#define K2 0x1c6e41596ull
#define K3 0x1751997d0ull
#define K4 0x0ccaa009eull
#define K5 0x163cd6124ull
#define MU 0x1f7011641ull
#define POLY 0x1db710641ull

__attribute__((target("pclmul,sse4.1"))) static inline __m128i fold(__m128i x, __m128i k, __m128i data) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), data);
}

/** The register after len bytes (len >= 64, a multiple of 16). */
__attribute__((target("pclmul,sse4.1"))) static uint32_t clmul_blocks(uint32_t c, const uint8_t *p, size_t len) {
  __m128i x0 = _mm_loadu_si128((const __m128i *)p);
  __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 16));
  __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32));
  __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 48));
  x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)c));
  p += 64;
  len -= 64;
  const __m128i k12 = _mm_set_epi64x(K2, K1);
  while (len >= 64) {
    x0 = fold(x0, k12, _mm_loadu_si128((const __m128i *)p));
    x1 = fold(x1, k12, _mm_loadu_si128((const __m128i *)(p + 16)));
    x2 = fold(x2, k12, _mm_loadu_si128((const __m128i *)(p + 32)));
    x3 = fold(x3, k12, _mm_loadu_si128((const __m128i *)(p + 48)));
    p += 64;
    len -= 64;
  }
  const __m128i k34 = _mm_set_epi64x(K4, K3);
  x0 = fold(x0, k34, x1);
  x0 = fold(x0, k34, x2);
  x0 = fold(x0, k34, x3);
  while (len >= 16) {
    x0 = fold(x0, k34, _mm_loadu_si128((const __m128i *)p));
    p += 16;
    len -= 16;
  }
  // 128 bits to 64: the low half times x^64 mod P, plus the high half
  x0 = _mm_xor_si128(_mm_clmulepi64_si128(x0, k34, 0x10), _mm_srli_si128(x0, 8));
  // 64 bits to 32
  const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);
  __m128i t = _mm_clmulepi64_si128(_mm_and_si128(x0, mask32), _mm_set_epi64x(0, K5), 0x00);
  x0 = _mm_xor_si128(_mm_srli_si128(x0, 4), t);
  // Barrett reduction
  const __m128i up = _mm_set_epi64x(MU, POLY);
  t = _mm_clmulepi64_si128(_mm_and_si128(x0, mask32), up, 0x10);
  t = _mm_clmulepi64_si128(_mm_and_si128(t, mask32), up, 0x00);
  x0 = _mm_xor_si128(x0, t);
  return (uint32_t)_mm_extract_epi32(x0, 1);
}
#endif

void crc32_fold_init(void) {
  if (have_clmul >= 0) return;
  init_tables();
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  have_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
#else
  have_clmul = 0;
#endif
}

int crc32_fold_accelerated(void) {
  return have_clmul > 0;
}

uint32_t crc32_fold(uint32_t crc, const uint8_t *p, size_t len) {
  uint32_t c = ~crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (have_clmul > 0 && len >= 64) {
    size_t blocks = len & ~(size_t)15;
    c = clmul_blocks(c, p, blocks);
    p += blocks;
    len -= blocks;
  }
#endif
  return ~slice8(c, p, len);
}
