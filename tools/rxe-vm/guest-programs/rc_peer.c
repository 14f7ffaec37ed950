// rc_peer - an RC queue pair on a kernel verbs device (rxe2 in the rxe-vm guest) that a test on
// the host drives over a line-based TCP protocol: the host learns our QPN/PSN/GID/rkey/addr/len,
// tells us its own, and then either RDMA-accesses our buffer and asks for its contents (DUMP,
// SHA256), or has us post RDMA WRITE / READ / CMP_SWAP / FETCH_ADD / SEND toward it and report
// the completions. The protocol is documented in tools/rxe-vm/README.md ("rc_peer").
//
// Build: gcc -O2 rc_peer.c -libverbs -o rc_peer   (tools/rxe-vm/build.sh does it)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <infiniband/verbs.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROTO_VERSION 1

static const char *usage_text =
    "usage: rc_peer [options]\n"
    "  -d DEV        verbs device (default rxe2)\n"
    "  -i PORT       device port (default 1)\n"
    "  -g INDEX      source GID index (default 1: rxe2's IPv4 GID; 2 is its IPv6 GID)\n"
    "  -l TCPPORT    listen for the host on TCPPORT, any address, IPv4 and IPv6 (default 18600)\n"
    "  -c HOST:PORT  connect to the host instead (retrying for -w seconds); IPv6 as [addr]:port\n"
    "  -w SECONDS    how long -c retries (default 30)\n"
    "  -s BYTES      buffer (MR) size (default 65536)\n"
    "  -a ACCESS     remote access of the MR and QP: any of r w a (read, write, atomic); default rwa\n"
    "  -t MS         completion timeout per operation (default 5000)\n"
    "  -v            log every command on stderr\n";

static int verbose;
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "rc_peer: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

// --- SHA-256 (FIPS 180-4), so the guest needs no crypto library --------------------------------
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
static void sha256_block(uint32_t h[8], const uint8_t *p) {
  uint32_t w[64], a, b, c, d, e, f, g, k, t1, t2;
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (int i = 0; i < 64; i++) {
    t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
    t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}
static void sha256_hex(const uint8_t *data, size_t len, char out[65]) {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  uint8_t tail[128] = {0};
  size_t full = len / 64 * 64, rest = len - full, tl = rest + 9 <= 64 ? 64 : 128;
  for (size_t o = 0; o < full; o += 64) sha256_block(h, data + o);
  memcpy(tail, data + full, rest);
  tail[rest] = 0x80;
  for (int i = 0; i < 8; i++) tail[tl - 1 - i] = (uint8_t)((uint64_t)len * 8 >> (8 * i));
  for (size_t o = 0; o < tl; o += 64) sha256_block(h, tail + o);
  for (int i = 0; i < 8; i++) sprintf(out + 8 * i, "%08x", h[i]);
}

// --- verbs state ---------------------------------------------------------------------------------
struct peer_info { // what the host told us in its PEER line
  uint32_t qpn, psn, rkey, flow_label;
  uint64_t addr, len;
  union ibv_gid gid;
  int mtu, timeout, retry, rnr_retry, rd_atomic, sl, tclass, hop_limit;
};
static struct {
  const char *dev_name;
  int port, gid_index, access, timeout_ms;
  size_t size;
  struct ibv_context *ctx;
  struct ibv_pd *pd;
  struct ibv_mr *mr;
  struct ibv_cq *scq, *rcq;
  struct ibv_qp *qp;
  uint8_t *buf;
  uint32_t psn;
  union ibv_gid gid;
  enum ibv_mtu active_mtu;
  struct peer_info peer;
  int connected;
} S = {.dev_name = "rxe2", .port = 1, .gid_index = 1, .timeout_ms = 5000, .size = 65536};

static int mtu_bytes(enum ibv_mtu m) { return 128 << m; }
static enum ibv_mtu mtu_enum(int bytes) {
  switch (bytes) {
    case 256: return IBV_MTU_256;
    case 512: return IBV_MTU_512;
    case 1024: return IBV_MTU_1024;
    case 2048: return IBV_MTU_2048;
    case 4096: return IBV_MTU_4096;
    default: return 0;
  }
}

static void setup_verbs(void) {
  int n;
  struct ibv_device **list = ibv_get_device_list(&n);
  if (!list) die("ibv_get_device_list: %s", strerror(errno));
  for (int i = 0; i < n && !S.ctx; i++)
    if (!strcmp(ibv_get_device_name(list[i]), S.dev_name)) S.ctx = ibv_open_device(list[i]);
  ibv_free_device_list(list);
  if (!S.ctx) die("no verbs device %s (ibv_devices lists them)", S.dev_name);
  struct ibv_port_attr pa;
  if (ibv_query_port(S.ctx, S.port, &pa)) die("ibv_query_port %d failed", S.port);
  if (pa.state != IBV_PORT_ACTIVE) die("%s port %d is not ACTIVE", S.dev_name, S.port);
  S.active_mtu = pa.active_mtu;
  if (ibv_query_gid(S.ctx, S.port, S.gid_index, &S.gid)) die("ibv_query_gid %d failed", S.gid_index);
  static const uint8_t zero[16];
  if (!memcmp(S.gid.raw, zero, 16)) die("GID index %d of %s is empty", S.gid_index, S.dev_name);

  if (posix_memalign((void **)&S.buf, 4096, S.size)) die("out of memory");
  memset(S.buf, 0, S.size);
  if (!(S.pd = ibv_alloc_pd(S.ctx))) die("ibv_alloc_pd failed");
  if (!(S.mr = ibv_reg_mr(S.pd, S.buf, S.size, IBV_ACCESS_LOCAL_WRITE | S.access)))
    die("ibv_reg_mr: %s", strerror(errno));
  if (!(S.scq = ibv_create_cq(S.ctx, 64, NULL, NULL, 0)) || !(S.rcq = ibv_create_cq(S.ctx, 64, NULL, NULL, 0)))
    die("ibv_create_cq failed");
  struct ibv_qp_init_attr ia = {.send_cq = S.scq, .recv_cq = S.rcq, .qp_type = IBV_QPT_RC, .sq_sig_all = 1,
                                .cap = {.max_send_wr = 16, .max_recv_wr = 32, .max_send_sge = 1, .max_recv_sge = 1}};
  if (!(S.qp = ibv_create_qp(S.pd, &ia))) die("ibv_create_qp: %s", strerror(errno));
  struct ibv_qp_attr a = {.qp_state = IBV_QPS_INIT, .pkey_index = 0, .port_num = S.port, .qp_access_flags = S.access};
  if (ibv_modify_qp(S.qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
    die("modify QP to INIT failed");
  uint32_t r;
  if (getrandom(&r, sizeof r, 0) != sizeof r) r = (uint32_t)time(NULL) * 2654435761u;
  S.psn = r & 0xffffff;
}

// RESET is not needed: the QP goes INIT -> RTR -> RTS once per run.
static const char *connect_qp(void) {
  struct peer_info *p = &S.peer;
  enum ibv_mtu mtu = p->mtu ? mtu_enum(p->mtu) : S.active_mtu;
  if (!mtu) return "mtu must be 256, 512, 1024, 2048 or 4096";
  if (mtu > S.active_mtu) mtu = S.active_mtu;
  struct ibv_qp_attr a = {
      .qp_state = IBV_QPS_RTR, .path_mtu = mtu, .dest_qp_num = p->qpn, .rq_psn = p->psn,
      .max_dest_rd_atomic = (uint8_t)p->rd_atomic, .min_rnr_timer = 12,
      .ah_attr = {.is_global = 1, .port_num = S.port, .sl = (uint8_t)p->sl,
                  .grh = {.dgid = p->gid, .sgid_index = (uint8_t)S.gid_index, .hop_limit = (uint8_t)p->hop_limit,
                          .traffic_class = (uint8_t)p->tclass, .flow_label = p->flow_label}}};
  if (ibv_modify_qp(S.qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                                  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
    return "modify QP to RTR failed";
  a.qp_state = IBV_QPS_RTS, a.timeout = (uint8_t)p->timeout, a.retry_cnt = (uint8_t)p->retry,
  a.rnr_retry = (uint8_t)p->rnr_retry, a.sq_psn = S.psn, a.max_rd_atomic = (uint8_t)p->rd_atomic;
  if (ibv_modify_qp(S.qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                                  IBV_QP_MAX_QP_RD_ATOMIC))
    return "modify QP to RTS failed";
  S.connected = 1;
  return NULL;
}

static const char *qp_state_name(void) {
  static const char *names[] = {"RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR"};
  struct ibv_qp_attr a;
  struct ibv_qp_init_attr ia;
  if (ibv_query_qp(S.qp, &a, IBV_QP_STATE, &ia)) return "UNKNOWN";
  return a.qp_state <= IBV_QPS_ERR ? names[a.qp_state] : "UNKNOWN";
}

// --- TCP line protocol ---------------------------------------------------------------------------
static FILE *in, *out;
static void reply(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(out, fmt, ap);
  va_end(ap);
  fputc('\n', out);
  fflush(out);
}

static char *gid_hex(const union ibv_gid *g, char buf[33]) {
  for (int i = 0; i < 16; i++) sprintf(buf + 2 * i, "%02x", g->raw[i]);
  return buf;
}
static int parse_gid(const char *s, union ibv_gid *g) {
  if (strlen(s) != 32) return -1;
  for (int i = 0; i < 16; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
    g->raw[i] = (uint8_t)v;
  }
  return 0;
}
static int parse_u64(const char *s, uint64_t *v) {
  char *end;
  errno = 0;
  *v = strtoull(s, &end, 0);
  return errno || end == s || *end ? -1 : 0;
}

static void hello_fields(char *b, size_t n) {
  char g[33];
  snprintf(b, n, "dev=%s port=%d gid_index=%d gid=%s qpn=0x%06x psn=0x%06x rkey=0x%08x addr=0x%016" PRIx64
                 " len=%zu mtu=%d",
           S.dev_name, S.port, S.gid_index, gid_hex(&S.gid, g), S.qp->qp_num, S.psn, S.mr->rkey,
           (uint64_t)(uintptr_t)S.buf, S.size, mtu_bytes(S.active_mtu));
}

// PEER qpn=.. psn=.. gid=.. [rkey= addr= len= mtu= timeout= retry= rnr_retry= rd_atomic= sl= tclass=
// hop_limit= flow_label=]
static const char *parse_peer(char **tok, int ntok) {
  struct peer_info *p = &S.peer;
  *p = (struct peer_info){.timeout = 14, .retry = 7, .rnr_retry = 7, .rd_atomic = 16, .hop_limit = 64};
  int have = 0;
  for (int i = 1; i < ntok; i++) {
    char *eq = strchr(tok[i], '=');
    uint64_t v = 0;
    if (!eq) return "PEER arguments are key=value";
    *eq++ = 0;
    if (!strcmp(tok[i], "gid")) {
      if (parse_gid(eq, &p->gid)) return "gid must be 32 hex digits";
      have |= 4;
      continue;
    }
    if (parse_u64(eq, &v)) return "bad number";
    if (!strcmp(tok[i], "qpn")) p->qpn = (uint32_t)v & 0xffffff, have |= 1;
    else if (!strcmp(tok[i], "psn")) p->psn = (uint32_t)v & 0xffffff, have |= 2;
    else if (!strcmp(tok[i], "rkey")) p->rkey = (uint32_t)v;
    else if (!strcmp(tok[i], "addr")) p->addr = v;
    else if (!strcmp(tok[i], "len")) p->len = v;
    else if (!strcmp(tok[i], "mtu")) p->mtu = (int)v;
    else if (!strcmp(tok[i], "timeout")) p->timeout = (int)v;
    else if (!strcmp(tok[i], "retry")) p->retry = (int)v;
    else if (!strcmp(tok[i], "rnr_retry")) p->rnr_retry = (int)v;
    else if (!strcmp(tok[i], "rd_atomic")) p->rd_atomic = (int)v;
    else if (!strcmp(tok[i], "sl")) p->sl = (int)v;
    else if (!strcmp(tok[i], "tclass")) p->tclass = (int)v;
    else if (!strcmp(tok[i], "hop_limit")) p->hop_limit = (int)v;
    else if (!strcmp(tok[i], "flow_label")) p->flow_label = (uint32_t)v;
    // unknown keys are ignored, so the host may send more than this version understands
  }
  return have == 7 ? NULL : "PEER needs qpn, psn and gid";
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
// Busy-poll (with short sleeps) for one completion; 1 = got it, 0 = timeout, -1 = poll error.
static int poll_one(struct ibv_cq *cq, struct ibv_wc *wc, int timeout_ms) {
  int64_t end = now_ms() + timeout_ms;
  for (;;) {
    int n = ibv_poll_cq(cq, 1, wc);
    if (n) return n < 0 ? -1 : 1;
    if (now_ms() >= end) return 0;
    usleep(50);
  }
}
static void reply_wc_error(const struct ibv_wc *wc) {
  reply("ERR status=%s wc_status=%d vendor_err=0x%x qp_state=%s", ibv_wc_status_str(wc->status), wc->status,
        wc->vendor_err, qp_state_name());
}

static int check_range(uint64_t off, uint64_t len) {
  if (off > S.size || len > S.size - off) {
    reply("ERR range off=%" PRIu64 " len=%" PRIu64 " exceeds the buffer (%zu bytes)", off, len, S.size);
    return -1;
  }
  return 0;
}

// Options after the positional numbers: rkey=X (instead of the PEER rkey), imm=X, raddr=X (absolute
// remote address instead of PEER addr + roff).
struct op_opts { int has_imm, has_raddr; uint32_t imm, rkey; uint64_t raddr; };
static int parse_opts(char **tok, int ntok, int first, struct op_opts *o) {
  *o = (struct op_opts){.rkey = S.peer.rkey};
  for (int i = first; i < ntok; i++) {
    char *eq = strchr(tok[i], '=');
    uint64_t v;
    if (!eq || parse_u64(eq + 1, &v)) return reply("ERR bad option %s", tok[i]), -1;
    *eq = 0;
    if (!strcmp(tok[i], "rkey")) o->rkey = (uint32_t)v;
    else if (!strcmp(tok[i], "imm")) o->imm = (uint32_t)v, o->has_imm = 1;
    else if (!strcmp(tok[i], "raddr")) o->raddr = v, o->has_raddr = 1;
    else return reply("ERR unknown option %s", tok[i]), -1;
  }
  return 0;
}

// Post one send-queue work request and wait for its completion; replies ERR itself on failure.
static int post_and_wait(struct ibv_send_wr *wr) {
  struct ibv_send_wr *bad;
  struct ibv_wc wc;
  if (!S.connected) return reply("ERR not connected: send PEER first"), -1;
  int64_t t0 = now_ms();
  int err = ibv_post_send(S.qp, wr, &bad);
  if (err) return reply("ERR ibv_post_send: %s qp_state=%s", strerror(err), qp_state_name()), -1;
  int r = poll_one(S.scq, &wc, S.timeout_ms);
  if (r == 0) return reply("ERR timeout after %d ms qp_state=%s", S.timeout_ms, qp_state_name()), -1;
  if (r < 0) return reply("ERR ibv_poll_cq failed"), -1;
  if (wc.status != IBV_WC_SUCCESS) return reply_wc_error(&wc), -1;
  if (verbose) fprintf(stderr, "rc_peer: completion after %" PRId64 " ms\n", now_ms() - t0);
  return 0;
}

// WRITE|READ|SEND: local offset, remote offset (not for SEND), length.
static void cmd_rdma(char **tok, int ntok, enum ibv_wr_opcode op) {
  int npos = op == IBV_WR_SEND ? 3 : 4;
  uint64_t loff, roff = 0, len;
  struct op_opts o;
  if (ntok < npos || parse_u64(tok[1], &loff) || (npos == 4 && parse_u64(tok[2], &roff)) ||
      parse_u64(tok[npos - 1], &len))
    return reply(op == IBV_WR_SEND ? "ERR usage: SEND loff len [imm=X]" : "ERR usage: %s loff roff len [imm=X] [rkey=X] [raddr=X]", tok[0]);
  if (check_range(loff, len) || parse_opts(tok, ntok, npos, &o)) return;
  if (o.has_imm) op = op == IBV_WR_SEND ? IBV_WR_SEND_WITH_IMM : op == IBV_WR_RDMA_WRITE ? IBV_WR_RDMA_WRITE_WITH_IMM : op;
  struct ibv_sge sge = {.addr = (uintptr_t)(S.buf + loff), .length = (uint32_t)len, .lkey = S.mr->lkey};
  struct ibv_send_wr wr = {.wr_id = 1, .sg_list = &sge, .num_sge = len ? 1 : 0, .opcode = op,
                           .send_flags = IBV_SEND_SIGNALED, .imm_data = htonl(o.imm)};
  wr.wr.rdma.remote_addr = o.has_raddr ? o.raddr : S.peer.addr + roff;
  wr.wr.rdma.rkey = o.rkey;
  if (!post_and_wait(&wr)) reply("OK");
}

// CAS loff roff compare swap | FADD loff roff add: the original remote value lands in our buffer at
// loff (8 bytes, host byte order) and is echoed as old=.
static void cmd_atomic(char **tok, int ntok, enum ibv_wr_opcode op) {
  int npos = op == IBV_WR_ATOMIC_CMP_AND_SWP ? 5 : 4;
  uint64_t loff, roff, a = 0, b = 0, old;
  struct op_opts o;
  if (ntok < npos || parse_u64(tok[1], &loff) || parse_u64(tok[2], &roff) || parse_u64(tok[3], &a) ||
      (npos == 5 && parse_u64(tok[4], &b)))
    return reply(npos == 5 ? "ERR usage: CAS loff roff compare swap [rkey=X] [raddr=X]"
                           : "ERR usage: FADD loff roff add [rkey=X] [raddr=X]");
  if (check_range(loff, 8) || parse_opts(tok, ntok, npos, &o)) return;
  struct ibv_sge sge = {.addr = (uintptr_t)(S.buf + loff), .length = 8, .lkey = S.mr->lkey};
  struct ibv_send_wr wr = {.wr_id = 2, .sg_list = &sge, .num_sge = 1, .opcode = op, .send_flags = IBV_SEND_SIGNALED};
  wr.wr.atomic.remote_addr = o.has_raddr ? o.raddr : S.peer.addr + roff;
  wr.wr.atomic.rkey = o.rkey;
  wr.wr.atomic.compare_add = a;
  wr.wr.atomic.swap = b;
  if (post_and_wait(&wr)) return;
  memcpy(&old, S.buf + loff, 8);
  reply("OK old=0x%016" PRIx64, old);
}

static void cmd_recv(char **tok, int ntok) { // RECV loff len: post one receive
  uint64_t loff, len;
  if (ntok != 3 || parse_u64(tok[1], &loff) || parse_u64(tok[2], &len)) return reply("ERR usage: RECV loff len");
  if (check_range(loff, len)) return;
  struct ibv_sge sge = {.addr = (uintptr_t)(S.buf + loff), .length = (uint32_t)len, .lkey = S.mr->lkey};
  struct ibv_recv_wr wr = {.wr_id = loff, .sg_list = &sge, .num_sge = 1}, *bad;
  int err = ibv_post_recv(S.qp, &wr, &bad);
  if (err) return reply("ERR ibv_post_recv: %s", strerror(err));
  reply("OK");
}

static void cmd_wait_recv(char **tok, int ntok) { // WAIT_RECV [timeout_ms]
  uint64_t t = (uint64_t)S.timeout_ms;
  struct ibv_wc wc;
  if (ntok > 2 || (ntok == 2 && parse_u64(tok[1], &t))) return reply("ERR usage: WAIT_RECV [timeout_ms]");
  int r = poll_one(S.rcq, &wc, (int)t);
  if (r == 0) return reply("ERR timeout after %d ms", (int)t);
  if (r < 0) return reply("ERR ibv_poll_cq failed");
  if (wc.status != IBV_WC_SUCCESS) return reply_wc_error(&wc);
  char imm[32] = "";
  if (wc.wc_flags & IBV_WC_WITH_IMM) snprintf(imm, sizeof imm, " imm=0x%08x", ntohl(wc.imm_data));
  reply("OK opcode=%s len=%u loff=%" PRIu64 "%s", wc.opcode == IBV_WC_RECV_RDMA_WITH_IMM ? "RECV_RDMA_WITH_IMM" : "RECV",
        wc.byte_len, wc.wr_id, imm);
}

static int hexval(int c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; }

static void cmd_counters(void) { // COUNTERS: the port's hw_counters (rcvd_pkts, sent_pkts, ...)
  char path[256], line[8192] = "OK", name[512];
  snprintf(path, sizeof path, "/sys/class/infiniband/%s/ports/%d/hw_counters", S.dev_name, S.port);
  DIR *d = opendir(path);
  if (!d) return reply("ERR no %s", path);
  struct dirent *e;
  size_t n = 2;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' || !strcmp(e->d_name, "lifespan")) continue;
    snprintf(name, sizeof name, "%s/%s", path, e->d_name);
    FILE *f = fopen(name, "r");
    unsigned long long v;
    if (f && fscanf(f, "%llu", &v) == 1 && n < sizeof line - 128)
      n += (size_t)snprintf(line + n, sizeof line - n, " %s=%llu", e->d_name, v);
    if (f) fclose(f);
  }
  closedir(d);
  reply("%s", line);
}

// One command line -> one reply line. Returns 1 on QUIT.
static int handle(char *line) {
  char *tok[24];
  int ntok = 0;
  for (char *s = strtok(line, " \t\r\n"); s && ntok < 24; s = strtok(NULL, " \t\r\n")) tok[ntok++] = s;
  if (!ntok) return 0;
  char *c = tok[0];
  uint64_t off, len, v;
  if (!strcmp(c, "PEER")) {
    if (S.connected) return reply("ERR already connected"), 0;
    const char *err = parse_peer(tok, ntok);
    if (!err) err = connect_qp();
    if (err) reply("ERR %s", err);
    else reply("OK state=%s", qp_state_name());
  } else if (!strcmp(c, "INFO")) {
    char b[512];
    hello_fields(b, sizeof b);
    reply("OK %s state=%s", b, qp_state_name());
  } else if (!strcmp(c, "FILL")) { // FILL off len byte
    if (ntok != 4 || parse_u64(tok[1], &off) || parse_u64(tok[2], &len) || parse_u64(tok[3], &v) || v > 255)
      return reply("ERR usage: FILL off len byte"), 0;
    if (!check_range(off, len)) memset(S.buf + off, (int)v, len), reply("OK");
  } else if (!strcmp(c, "SET")) { // SET off hexbytes
    size_t hl = ntok == 3 ? strlen(tok[2]) : 1;
    if (ntok != 3 || parse_u64(tok[1], &off) || hl % 2) return reply("ERR usage: SET off hexbytes"), 0;
    if (check_range(off, hl / 2)) return 0;
    for (size_t i = 0; i < hl / 2; i++) {
      int hi = hexval(tok[2][2 * i]), lo = hexval(tok[2][2 * i + 1]);
      if (hi < 0 || lo < 0) return reply("ERR not hex"), 0;
      S.buf[off + i] = (uint8_t)(hi << 4 | lo);
    }
    reply("OK");
  } else if (!strcmp(c, "DUMP") || !strcmp(c, "SHA256")) { // DUMP|SHA256 [off len]
    off = 0, len = S.size;
    if ((ntok != 1 && ntok != 3) || (ntok == 3 && (parse_u64(tok[1], &off) || parse_u64(tok[2], &len))))
      return reply("ERR usage: %s [off len]", c), 0;
    if (check_range(off, len)) return 0;
    if (c[0] == 'S') {
      char h[65];
      sha256_hex(S.buf + off, len, h);
      reply("OK %s", h);
    } else {
      fputs("OK ", out);
      for (uint64_t i = 0; i < len; i++) fprintf(out, "%02x", S.buf[off + i]);
      reply("");
    }
  } else if (!strcmp(c, "WRITE")) cmd_rdma(tok, ntok, IBV_WR_RDMA_WRITE);
  else if (!strcmp(c, "READ")) cmd_rdma(tok, ntok, IBV_WR_RDMA_READ);
  else if (!strcmp(c, "SEND")) cmd_rdma(tok, ntok, IBV_WR_SEND);
  else if (!strcmp(c, "CAS")) cmd_atomic(tok, ntok, IBV_WR_ATOMIC_CMP_AND_SWP);
  else if (!strcmp(c, "FADD")) cmd_atomic(tok, ntok, IBV_WR_ATOMIC_FETCH_AND_ADD);
  else if (!strcmp(c, "RECV")) cmd_recv(tok, ntok);
  else if (!strcmp(c, "WAIT_RECV")) cmd_wait_recv(tok, ntok);
  else if (!strcmp(c, "COUNTERS")) cmd_counters();
  else if (!strcmp(c, "QUIT")) return reply("OK bye"), 1;
  else reply("ERR unknown command %s", c);
  return 0;
}

// --- TCP -----------------------------------------------------------------------------------------
static int tcp_listen_accept(int port) {
  int s = socket(AF_INET6, SOCK_STREAM, 0), one = 1, zero = 0;
  if (s < 0) die("socket: %s", strerror(errno));
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero); // IPv4 too, as ::ffff:a.b.c.d
  struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = in6addr_any};
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) || listen(s, 1)) die("listen on tcp %d: %s", port, strerror(errno));
  fprintf(stderr, "rc_peer: listening on tcp %d (%s gid %d)\n", port, S.dev_name, S.gid_index);
  int c = accept(s, NULL, NULL);
  if (c < 0) die("accept: %s", strerror(errno));
  close(s);
  return c;
}
static int tcp_connect(const char *spec, int wait_s) {
  char host[256];
  const char *colon = strrchr(spec, ':');
  if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof host) die("-c wants HOST:PORT");
  memcpy(host, spec, (size_t)(colon - spec));
  host[colon - spec] = 0;
  char *h = host;
  if (h[0] == '[') h++, h[strlen(h) - 1] = 0; // [v6]:port
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  int64_t end = now_ms() + (int64_t)wait_s * 1000;
  for (;;) {
    if (!getaddrinfo(h, colon + 1, &hints, &ai)) {
      int s = socket(ai->ai_family, SOCK_STREAM, 0);
      if (s >= 0 && !connect(s, ai->ai_addr, ai->ai_addrlen)) return freeaddrinfo(ai), s;
      if (s >= 0) close(s);
      freeaddrinfo(ai);
    }
    if (now_ms() >= end) die("cannot connect to %s within %d s", spec, wait_s);
    usleep(100000);
  }
}

int main(int argc, char **argv) {
  int opt, port = 18600, wait_s = 30;
  const char *connect_to = NULL, *acc = "rwa";
  while ((opt = getopt(argc, argv, "d:i:g:l:c:w:s:a:t:vh")) != -1) {
    switch (opt) {
      case 'd': S.dev_name = optarg; break;
      case 'i': S.port = atoi(optarg); break;
      case 'g': S.gid_index = atoi(optarg); break;
      case 'l': port = atoi(optarg); break;
      case 'c': connect_to = optarg; break;
      case 'w': wait_s = atoi(optarg); break;
      case 's': S.size = strtoul(optarg, NULL, 0); break;
      case 'a': acc = optarg; break;
      case 't': S.timeout_ms = atoi(optarg); break;
      case 'v': verbose = 1; break;
      case 'h': fputs(usage_text, stdout); return 0;
      default: fputs(usage_text, stderr); return 2;
    }
  }
  if (S.size < 8) die("-s must be at least 8");
  for (const char *p = acc; *p; p++) {
    if (*p == 'r') S.access |= IBV_ACCESS_REMOTE_READ;
    else if (*p == 'w') S.access |= IBV_ACCESS_REMOTE_WRITE;
    else if (*p == 'a') S.access |= IBV_ACCESS_REMOTE_ATOMIC;
    else if (*p != '-') die("-a takes r, w, a (or - for none)");
  }
  setup_verbs();
  int s = connect_to ? tcp_connect(connect_to, wait_s) : tcp_listen_accept(port);
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  in = fdopen(s, "r"), out = fdopen(dup(s), "w");
  if (!in || !out) die("fdopen failed");
  char hello[512];
  hello_fields(hello, sizeof hello);
  reply("RC_PEER v=%d %s", PROTO_VERSION, hello);
  char *line = NULL;
  size_t cap = 0;
  int rc = 0;
  while (getline(&line, &cap, in) > 0) {
    if (verbose) fprintf(stderr, "rc_peer: < %s", line);
    if (handle(line)) { rc = 0; goto done; }
  }
  fprintf(stderr, "rc_peer: the host closed the connection (no QUIT)\n");
done:
  free(line);
  ibv_destroy_qp(S.qp);
  ibv_destroy_cq(S.scq);
  ibv_destroy_cq(S.rcq);
  ibv_dereg_mr(S.mr);
  ibv_dealloc_pd(S.pd);
  ibv_close_device(S.ctx);
  return rc;
}
