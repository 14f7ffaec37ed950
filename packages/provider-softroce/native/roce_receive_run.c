// roce_receive_run.c - the receive side of runs: consecutive in-order middle (and a last) packets
// of one RC WRITE or SEND, read in one recvmmsg batch (GRO aggregates split by the receiver), are
// checked and placed here instead of one by one in JavaScript.
//
//   receiveRun(slab, meta, first, end, params, seeds, targets, out) -> packets consumed
//
// Datagram i (first <= i < end) is slab[meta[i*8 + 7], + meta[i*8]) from the source in
// meta[i*8 + 1 .. 6]. The run takes datagrams from `first` on while each one:
//   - has the same source as datagram `first` (the caller checked that one against the QP's peer),
//   - is 16..8192 bytes, a multiple of 4, BTH transport version 0, default P_Key (low 15 bits set),
//   - has opcode params[OP_MIDDLE], or params[OP_LAST] (any value > 255: no last taken),
//   - names QPN params[DQPN] and PSN params[PSN] + k (24 bits) for its place k in the run,
//   - middle: exactly 12 + pmtu + 4 bytes, pad 0; last: payload (room - pad) <= pmtu and, with
//     params[EXACT], exactly the bytes left in the target, else at most those,
//   - has a valid ICRC: CRC-32 seeded with seeds[0] (middle datagram length) or seeds[1] (the
//     length params[LAST_LEN] of the expected last) over the BTH (byte 4 masked) and the rest;
//     IPv4 (params[V4]): the difference to the stored ICRC may be any combination of the 16 ID
//     bits' differences (seeds[2..17] middle, seeds[18..33] last): the IP ID is not seen here,
//   - fits the target: its payload goes at params[OFFSET] + the bytes placed so far into the
//     concatenation of `targets` (Uint8Arrays: the WRITE's MR range, or a receive's SGEs).
// A last packet ends the run. The first datagram that does not qualify stops it (the caller
// handles that one and the rest on its per-packet path, with its own checks and counters).
// out (Int32Array >= 8): consumed, bytes placed, IPv4 packets whose ICRC needed a non-zero ID,
// packets with AckReq, 1 if a last packet was consumed, datagram bytes consumed, why it stopped
// (STOP_*), the index it stopped at.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include "crc32_fold.h"
#include "roce_receive_run.h"

#define META 8
#define BTH 12
#define ICRC 4
#define MAX_DATAGRAM 8192
#define MAX_TARGETS 256

enum { P_DQPN, P_PSN, P_OP_MIDDLE, P_OP_LAST, P_PMTU, P_OFFSET, P_EXACT, P_V4, P_LAST_LEN, P_COUNT };
enum { STOP_END, STOP_LENGTH, STOP_SOURCE, STOP_HEADER, STOP_PSN, STOP_ICRC, STOP_BOUNDS, STOP_LAST };

static void throw_rr(napi_env env, const char *msg) { napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg); }

static bool typed_arr(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, len, data, &ab, &off) != napi_ok) return false;
  return t == want;
}

// The span of 16 ID-bit differences in reduced echelon form: diff is in the span iff it reduces to 0.
typedef struct {
  uint32_t vec[16], pivot[16];
  int rows;
} span_t;

static void span_build(span_t *s, const uint32_t *basis) {
  s->rows = 0;
  for (int b = 0; b < 16; b++) {
    uint32_t v = basis[b];
    for (int r = 0; r < s->rows; r++)
      if (v & s->pivot[r]) v ^= s->vec[r];
    if (v == 0) continue;
    uint32_t p = 0x80000000u >> __builtin_clz(v);
    for (int r = 0; r < s->rows; r++)
      if (s->vec[r] & p) s->vec[r] ^= v;
    s->vec[s->rows] = v, s->pivot[s->rows] = p, s->rows++;
  }
}

static bool span_has(const span_t *s, uint32_t v) {
  for (int r = 0; r < s->rows; r++)
    if (v & s->pivot[r]) v ^= s->vec[r];
  return v == 0;
}

static uint32_t get_le32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

typedef struct {
  uint8_t *p;
  size_t len;
} view_t;

// Copies n bytes to position `at` of the views' concatenation (the caller checked the total).
static void place(view_t *v, uint32_t nv, size_t at, const uint8_t *src, size_t n) {
  for (uint32_t i = 0; i < nv && n > 0; i++) {
    if (at >= v[i].len) {
      at -= v[i].len;
      continue;
    }
    size_t take = v[i].len - at < n ? v[i].len - at : n;
    memcpy(v[i].p + at, src, take);
    src += take, n -= take, at = 0;
  }
}

napi_value roce_receive_run(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  void *p;
  size_t n;
  if (argc < 8) return throw_rr(env, "receiveRun: expected (slab, meta, first, end, params, seeds, targets, out)"), NULL;
  if (!typed_arr(env, argv[0], napi_uint8_array, &p, &n)) return throw_rr(env, "receiveRun: slab must be a Uint8Array"), NULL;
  const uint8_t *slab = p;
  size_t slab_len = n;
  if (!typed_arr(env, argv[1], napi_int32_array, &p, &n)) return throw_rr(env, "receiveRun: meta must be an Int32Array"), NULL;
  const int32_t *meta = p;
  size_t entries = n / META;
  uint32_t first, end;
  if (napi_get_value_uint32(env, argv[2], &first) != napi_ok || napi_get_value_uint32(env, argv[3], &end) != napi_ok ||
      first > end || end > entries)
    return throw_rr(env, "receiveRun: first and end must be meta entries, first <= end"), NULL;
  if (!typed_arr(env, argv[4], napi_uint32_array, &p, &n) || n < P_COUNT) return throw_rr(env, "receiveRun: params must be a Uint32Array(9)"), NULL;
  const uint32_t *prm = p;
  if (!typed_arr(env, argv[5], napi_uint32_array, &p, &n) || n < 34) return throw_rr(env, "receiveRun: seeds must be a Uint32Array(34)"), NULL;
  const uint32_t *seeds = p;
  bool is_array = false;
  uint32_t nv = 0;
  if (napi_is_array(env, argv[6], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[6], &nv) != napi_ok ||
      nv > MAX_TARGETS)
    return throw_rr(env, "receiveRun: targets must be an array of at most 256 Uint8Arrays"), NULL;
  view_t views[MAX_TARGETS];
  size_t total = 0;
  for (uint32_t i = 0; i < nv; i++) {
    napi_value e;
    if (napi_get_element(env, argv[6], i, &e) != napi_ok || !typed_arr(env, e, napi_uint8_array, &p, &n))
      return throw_rr(env, "receiveRun: targets must be an array of at most 256 Uint8Arrays"), NULL;
    views[i].p = p, views[i].len = n, total += n;
  }
  if (!typed_arr(env, argv[7], napi_int32_array, &p, &n) || n < 8) return throw_rr(env, "receiveRun: out must be an Int32Array(8)"), NULL;
  int32_t *out = p;
  uint32_t pmtu = prm[P_PMTU], op_mid = prm[P_OP_MIDDLE], op_last = prm[P_OP_LAST], dqpn = prm[P_DQPN] & 0xffffff;
  uint32_t mid_len = BTH + pmtu + ICRC, last_len = prm[P_LAST_LEN];
  bool v4 = prm[P_V4] != 0, exact = prm[P_EXACT] != 0;
  if (pmtu == 0 || pmtu > MAX_DATAGRAM || (pmtu & 3) != 0 || op_mid > 255 || prm[P_OFFSET] > total)
    return throw_rr(env, "receiveRun: pmtu must be a multiple of 4 up to 8192, the opcode a byte, the offset inside the targets"), NULL;

  span_t span_mid, span_last;
  if (v4) span_build(&span_mid, seeds + 2), span_build(&span_last, seeds + 18);
  size_t at = prm[P_OFFSET];
  uint32_t k = 0, solved = 0, acks = 0, ended = 0, stop = STOP_END, i = first;
  uint64_t bytes_in = 0;
  const int32_t *src = meta + (size_t)first * META;
  for (; i < end; i++, k++) {
    const int32_t *m = meta + (size_t)i * META;
    int32_t len = m[0], off = m[7];
    if (len < BTH + ICRC || len > MAX_DATAGRAM || (len & 3) != 0 || off < 0 || (size_t)off + (size_t)len > slab_len) {
      stop = STOP_LENGTH;
      break;
    }
    if (memcmp(m + 1, src + 1, 6 * sizeof(int32_t)) != 0) {
      stop = STOP_SOURCE;
      break;
    }
    const uint8_t *d = slab + off;
    uint32_t op = d[0], pad = (d[1] >> 4) & 3;
    bool last = op == op_last && op_last <= 255;
    if ((op != op_mid && !last) || (d[1] & 0x0f) != 0 || (d[3] & 0xff) != 0xff || (d[2] & 0x7f) != 0x7f ||
        (((uint32_t)d[5] << 16) | ((uint32_t)d[6] << 8) | d[7]) != dqpn) {
      stop = STOP_HEADER;
      break;
    }
    if ((((uint32_t)d[9] << 16) | ((uint32_t)d[10] << 8) | d[11]) != ((prm[P_PSN] + k) & 0xffffff)) {
      stop = STOP_PSN;
      break;
    }
    uint32_t room = (uint32_t)len - BTH - ICRC;
    if (pad > room) {
      stop = STOP_HEADER;
      break;
    }
    uint32_t payload = room - pad;
    size_t left = total - at;
    if (!last ? ((uint32_t)len != mid_len || pad != 0 || payload > left)
              : (payload > pmtu || (exact ? payload != left : payload > left))) {
      stop = STOP_BOUNDS;
      break;
    }
    bool use_mid = (uint32_t)len == mid_len;
    if (!use_mid && (uint32_t)len != last_len) {
      stop = STOP_LENGTH;
      break;
    }
    uint8_t hdr[BTH];
    memcpy(hdr, d, BTH);
    hdr[4] = 0xff;
    uint32_t c = crc32_fold(seeds[use_mid ? 0 : 1], hdr, BTH);
    c = crc32_fold(c, d + BTH, room);
    uint32_t diff = c ^ get_le32(d + BTH + room);
    if (diff != 0) {
      if (!v4 || !span_has(use_mid ? &span_mid : &span_last, diff)) {
        stop = STOP_ICRC;
        break;
      }
      solved++;
    }
    if (payload > 0) place(views, nv, at, d + BTH, payload);
    at += payload;
    bytes_in += (uint32_t)len;
    if (d[8] & 0x80) acks++;
    if (last) {
      ended = 1, k++, i++;
      stop = STOP_LAST;
      break;
    }
  }
  out[0] = (int32_t)k;
  out[1] = (int32_t)(at - prm[P_OFFSET]);
  out[2] = (int32_t)solved;
  out[3] = (int32_t)acks;
  out[4] = (int32_t)ended;
  out[5] = (int32_t)bytes_in;
  out[6] = (int32_t)stop;
  out[7] = (int32_t)i;
  if (napi_create_uint32(env, k, &result) != napi_ok) return NULL;
  return result;
}
