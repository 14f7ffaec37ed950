// roce_run.c - frames a run of equal-sized RoCEv2 packets of one message (WRITE/SEND middle
// packets) from one header template and the payload, and sends them as UDP GSO messages: one
// call from JavaScript per run instead of one (and a few buffers) per packet.
//
//   frameRun(out, header, payload, seg, count, ackReq, crcStart, idBasis, segsPerMsg) -> bytes written
//   sendRun(fd, header, payload, seg, count, ackReq, crcStart, idBasis, segsPerMsg, sockaddr, tos, hopLimit)
//     -> packets sent (whole GSO messages), or -errno
//
// Packet k is header (hlen bytes; its PSN + k, 24 bits; the AckReq bit from ackReq[k]) | payload
// [k*seg, (k+1)*seg) | ICRC. `seg` must be a multiple of 4 (no pad). The ICRC is CRC-32 seeded
// with crcStart (the running CRC after the RoCEv2 pseudo-header for this datagram length and IPv4
// ID 0; wire/icrc.ts icrcSeed) over the header with byte 4 masked to ones, then the payload.
// idBasis (IPv4, 16 uint32, or null for IPv6): the ICRC difference each ID bit makes
// (wire/icrc.ts ipv4IdBasis); packet j of a GSO message leaves with IPv4 ID j, so its ICRC gets
// the XOR of the basis entries of j's bits. A GSO message holds segsPerMsg packets (<= 64).
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include "crc32_fold.h"
#include "roce_run.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define RUN_MAX_PACKETS 256
#define RUN_MAX_HEADER 64
#define RUN_MAX_MSGS 64
#define BTH_MASKED 4

typedef struct {
  const uint8_t *header;
  size_t hlen;
  const uint8_t *payload;
  uint32_t seg, count, seg_per_msg;
  const uint8_t *ack_req;
  uint32_t crc_start;
  const uint32_t *id_basis;
} run_t;

static void throw_run(napi_env env, const char *msg) { napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg); }

static bool typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, len, data, &ab, &off) != napi_ok) return false;
  return t == want;
}

// Reads argv[0..7] (header, payload, seg, count, ackReq, crcStart, idBasis, segsPerMsg); NULL message when valid.
static const char *read_run(napi_env env, napi_value *argv, run_t *r) {
  void *p;
  size_t n;
  if (!typed(env, argv[0], napi_uint8_array, &p, &n) || n < 12 || n > RUN_MAX_HEADER) return "header must be a Uint8Array of 12..64 bytes";
  r->header = p, r->hlen = n;
  if (!typed(env, argv[1], napi_uint8_array, &p, &n)) return "payload must be a Uint8Array";
  r->payload = p;
  size_t plen = n;
  if (napi_get_value_uint32(env, argv[2], &r->seg) != napi_ok || r->seg == 0 || (r->seg & 3) != 0 || r->seg > 60000)
    return "seg must be a multiple of 4, 4..60000";
  if (napi_get_value_uint32(env, argv[3], &r->count) != napi_ok || r->count == 0 || r->count > RUN_MAX_PACKETS)
    return "count must be 1..256";
  if ((uint64_t)r->seg * r->count > plen) return "payload holds fewer than seg * count bytes";
  if (!typed(env, argv[4], napi_uint8_array, &p, &n) || n < r->count) return "ackReq must be a Uint8Array of count or more flags";
  r->ack_req = p;
  if (napi_get_value_uint32(env, argv[5], &r->crc_start) != napi_ok) return "crcStart must be a uint32";
  napi_valuetype vt;
  if (napi_typeof(env, argv[6], &vt) != napi_ok) return "idBasis must be a Uint32Array(16) or null";
  if (vt == napi_null || vt == napi_undefined) r->id_basis = NULL;
  else if (!typed(env, argv[6], napi_uint32_array, &p, &n) || n < 16) return "idBasis must be a Uint32Array(16) or null";
  else r->id_basis = p;
  if (napi_get_value_uint32(env, argv[7], &r->seg_per_msg) != napi_ok || r->seg_per_msg == 0 || r->seg_per_msg > 64 ||
      (uint64_t)r->seg_per_msg * (r->hlen + r->seg + 4) > 65000)
    return "segsPerMsg must be 1..64 and a message at most 65000 bytes";
  return NULL;
}

// Writes packet k's header at hdr and returns its ICRC (IPv4 ID = its index in its GSO message).
static uint32_t build_packet(const run_t *r, uint32_t k, uint8_t *hdr) {
  memcpy(hdr, r->header, r->hlen);
  uint32_t psn = (((uint32_t)r->header[9] << 16) | ((uint32_t)r->header[10] << 8) | r->header[11]) + k;
  hdr[8] = (uint8_t)((r->header[8] & 0x7f) | (r->ack_req[k] ? 0x80 : 0));
  hdr[9] = (uint8_t)(psn >> 16), hdr[10] = (uint8_t)(psn >> 8), hdr[11] = (uint8_t)psn;
  uint8_t masked[RUN_MAX_HEADER];
  memcpy(masked, hdr, r->hlen);
  masked[BTH_MASKED] = 0xff;
  uint32_t c = crc32_fold(r->crc_start, masked, r->hlen);
  c = crc32_fold(c, r->payload + (size_t)k * r->seg, r->seg);
  if (r->id_basis != NULL) {
    uint32_t id = k % r->seg_per_msg;
    for (int b = 0; id != 0; b++, id >>= 1)
      if (id & 1) c ^= r->id_basis[b];
  }
  return c;
}

static void put_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

napi_value roce_frame_run(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9], out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  run_t r;
  void *dst;
  size_t dlen;
  if (argc < 9 || !typed(env, argv[0], napi_uint8_array, &dst, &dlen))
    return throw_run(env, "frameRun: expected (out, header, payload, seg, count, ackReq, crcStart, idBasis, segsPerMsg)"), NULL;
  const char *bad = read_run(env, argv + 1, &r);
  if (bad != NULL) return throw_run(env, bad), NULL;
  size_t plen = r.hlen + r.seg + 4;
  if (plen * r.count > dlen) return throw_run(env, "frameRun: out is too small for count packets"), NULL;
  uint8_t *o = dst;
  for (uint32_t k = 0; k < r.count; k++, o += plen) {
    uint32_t icrc = build_packet(&r, k, o);
    memcpy(o + r.hlen, r.payload + (size_t)k * r.seg, r.seg);
    put_le32(o + r.hlen + r.seg, icrc);
  }
  if (napi_create_uint32(env, (uint32_t)(plen * r.count), &out) != napi_ok) return NULL;
  return out;
}

// Headers and ICRCs of the run being sent (the kernel copies them during sendmmsg); per thread,
// so softroce devices in worker threads do not share them.
static __thread uint8_t run_headers[RUN_MAX_PACKETS][RUN_MAX_HEADER];
static __thread uint8_t run_icrcs[RUN_MAX_PACKETS][4];
static __thread struct iovec run_iov[RUN_MAX_PACKETS * 3];

napi_value roce_send_run(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12], out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = -1, tos = -1, hop = -1;
  run_t r;
  void *sa = NULL;
  size_t salen = 0;
  if (argc < 12 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return throw_run(env, "sendRun: expected (fd, header, payload, seg, count, ackReq, crcStart, idBasis, segsPerMsg, sockaddr, tos, hopLimit)"), NULL;
  const char *bad = read_run(env, argv + 1, &r);
  if (bad != NULL) return throw_run(env, bad), NULL;
  if (!typed(env, argv[9], napi_uint8_array, &sa, &salen) ||
      !((salen == sizeof(struct sockaddr_in) && ((struct sockaddr *)sa)->sa_family == AF_INET) ||
        (salen == sizeof(struct sockaddr_in6) && ((struct sockaddr *)sa)->sa_family == AF_INET6)))
    return throw_run(env, "sendRun: sockaddr must be a Buffer from makeSockaddr"), NULL;
  if (napi_get_value_int32(env, argv[10], &tos) != napi_ok) tos = -1;
  if (napi_get_value_int32(env, argv[11], &hop) != napi_ok) hop = -1;
  if (tos > 255 || hop > 255 || hop == 0) return throw_run(env, "sendRun: tos must be -1..255 and hopLimit -1 or 1..255"), NULL;
  bool v4 = ((struct sockaddr *)sa)->sa_family == AF_INET;
  if (v4 != (r.id_basis != NULL)) return throw_run(env, "sendRun: idBasis is for IPv4 (and needed there), null for IPv6"), NULL;

  struct iovec *iov = run_iov;
  struct mmsghdr msgs[RUN_MAX_MSGS];
  union {
    struct cmsghdr align;
    char buf[3 * CMSG_SPACE(sizeof(int))];
  } control[RUN_MAX_MSGS];
  uint32_t nmsg = (r.count + r.seg_per_msg - 1) / r.seg_per_msg;
  if (nmsg > RUN_MAX_MSGS) return throw_run(env, "sendRun: at most 64 GSO messages in a run"), NULL;
  for (uint32_t k = 0; k < r.count; k++) {
    put_le32(run_icrcs[k], build_packet(&r, k, run_headers[k]));
    iov[3 * k] = (struct iovec){run_headers[k], r.hlen};
    iov[3 * k + 1] = (struct iovec){(void *)(r.payload + (size_t)k * r.seg), r.seg};
    iov[3 * k + 2] = (struct iovec){run_icrcs[k], 4};
  }
  memset(msgs, 0, sizeof(msgs[0]) * nmsg);
  for (uint32_t m = 0; m < nmsg; m++) {
    uint32_t first = m * r.seg_per_msg;
    uint32_t n = r.count - first < r.seg_per_msg ? r.count - first : r.seg_per_msg;
    struct msghdr *h = &msgs[m].msg_hdr;
    h->msg_name = sa, h->msg_namelen = (socklen_t)salen;
    h->msg_iov = &iov[3 * first], h->msg_iovlen = 3 * n;
    memset(&control[m], 0, sizeof control[m]);
    h->msg_control = control[m].buf, h->msg_controllen = sizeof control[m].buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(h);
    size_t clen = 0;
    if (tos >= 0) {
      c->cmsg_level = v4 ? IPPROTO_IP : IPPROTO_IPV6, c->cmsg_type = v4 ? IP_TOS : IPV6_TCLASS, c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &tos, sizeof(int));
      clen += CMSG_SPACE(sizeof(int)), c = CMSG_NXTHDR(h, c);
    }
    if (hop > 0) {
      c->cmsg_level = v4 ? IPPROTO_IP : IPPROTO_IPV6, c->cmsg_type = v4 ? IP_TTL : IPV6_HOPLIMIT, c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &hop, sizeof(int));
      clen += CMSG_SPACE(sizeof(int)), c = CMSG_NXTHDR(h, c);
    }
    if (n > 1) {
      uint16_t s16 = (uint16_t)(r.hlen + r.seg + 4);
      c->cmsg_level = SOL_UDP, c->cmsg_type = UDP_SEGMENT, c->cmsg_len = CMSG_LEN(sizeof s16);
      memcpy(CMSG_DATA(c), &s16, sizeof s16);
      clen += CMSG_SPACE(sizeof s16);
    }
    h->msg_controllen = clen;
    if (clen == 0) h->msg_control = NULL;
  }
  int sent;
  do sent = sendmmsg(fd, msgs, nmsg, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  int32_t result;
  if (sent < 0) result = -errno;
  else {
    uint32_t packets = (uint32_t)sent * r.seg_per_msg;
    result = (int32_t)(packets < r.count ? packets : r.count);
  }
  if (napi_create_int32(env, result, &out) != napi_ok) return NULL;
  return out;
}
