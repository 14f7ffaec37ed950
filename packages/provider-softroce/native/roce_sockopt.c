// roce_sockopt - makes the UDP sockets a RoCEv2 stack needs and node:dgram cannot: IPv4 with
// IP_MTU_DISCOVER = IP_PMTUDISC_DO (Linux then sends IP ID 0 + DF, which the ICRC covers), IPv6
// with UDP_NO_CHECK6_RX (rxe sends zero UDP checksums). Returns the bound, non-blocking fd for
// dgram's socket.bind({ fd }). Optionally creates the socket inside a named network namespace.
//
//   createUdpSocket({ family: 4|6, address, port, reuseAddr?, netns? }) -> fd
//   querySocket(fd) -> { family, pmtudisc, noCheck6Rx, v6only }
//   makeSockaddr(family, address, port) -> Buffer (a struct sockaddr_in / sockaddr_in6, for sendTo)
//   sendTo(fd, buffer | buffers[], sockaddr, tos, hopLimit) -> bytes sent, or -errno
//     One sendmsg(MSG_DONTWAIT) of the pieces (an iovec: nothing is copied) to the pre-encoded
//     address, with per-datagram IP_TOS + IP_TTL (IPv4) / IPV6_TCLASS + IPV6_HOPLIMIT (IPv6)
//     ancillary data for the values that are >= 0 (-1: the socket's default). Errors of the
//     send itself (EAGAIN, ENOBUFS, EMSGSIZE, ...) are returned, not thrown: the caller falls back.
//   openReceiver(fd, slab, meta, slotBytes, onBatch, onWritable, onClosed) -> handle
//     Watches fd on node's event loop (a uv_poll) and reads it with recvmmsg into `slab`, one
//     datagram per slot of slotBytes, then calls onBatch(count) once per batch: for datagram i,
//     meta[i*8 ..] = length (negated: larger than a slot, cut short), source port, family (4|6), the source
//     address as 4 big-endian 32-bit words (IPv4: word 0). onBatch(-errno) reports a receive
//     error. node:dgram's receive path allocates a buffer and an address object per datagram
//     and reads until EAGAIN; this reads up to a slab per system call.
//   armWritable(handle): onWritable() once the socket can take datagrams again (after EAGAIN).
//   closeReceiver(handle): stops watching, closes fd, then calls onClosed().
//   sendBatch(fd, pieces[], pieceStart, counts, segs, first, end, sockaddr, tos, hopLimit) -> messages sent, or -errno
//     One sendmmsg of messages first..end-1 to one address (same tos/hop as sendTo). Message m is
//     counts[m] consecutive pieces (from pieceStart on); segs[m] > 0 adds a UDP_SEGMENT cmsg: the
//     kernel cuts the message into datagrams of segs[m] bytes (UDP GSO; the last may be shorter),
//     so a message can carry many complete RoCEv2 packets of one size. 0: one datagram.
//   udpOffload(fd, gro) -> { segment, gro }: 0 where the kernel takes UDP_SEGMENT (getsockopt) and
//     UDP_GRO (setsockopt to `gro`), else the errno it refused it with.
//   openReceiver(..., gro): with gro (and UDP_GRO set by udpOffload), the receiver reads aggregates (UDP_GRO cmsg: segment size)
//     into 64 KiB slots and splits them: meta gets one entry per segment, meta[i*8 + 7] = offset
//     of the datagram in the slab (also without gro). receiverStats(handle) -> { reads, datagrams,
//     aggregates, segments }: system calls, datagrams read, GRO aggregates and the segments they held.
//   socketAddress(fd) -> { address, port }: where the socket is bound (getsockname).
//   setBufferSizes(fd, bytes) -> the receive buffer the kernel granted (SO_RCVBUF/SO_SNDBUF).
//   frameRun(...), sendRun(...): a run of equal-sized packets framed (and sent as UDP GSO) here: roce_run.c.
//   receiveRun(...): a run of received packets of one message checked and placed: roce_receive_run.c.
//
// Errors are Error objects with code ('EADDRINUSE', ...), errno, syscall and a message in words.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include "crc32_fold.h"
#include "roce_run.h"
#include "roce_receive_run.h"

#ifndef UDP_NO_CHECK6_RX
#define UDP_NO_CHECK6_RX 102
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define CHECK(call)                                                                     \
  do {                                                                                  \
    if ((call) != napi_ok) {                                                            \
      const napi_extended_error_info *info_;                                            \
      napi_get_last_error_info(env, &info_);                                            \
      bool pending_;                                                                    \
      napi_is_exception_pending(env, &pending_);                                        \
      if (!pending_)                                                                    \
        napi_throw_error(env, "ERR_ROCE_SOCKOPT_NAPI",                                  \
                         info_->error_message ? info_->error_message : "Node-API call failed"); \
      return NULL;                                                                      \
    }                                                                                   \
  } while (0)

static const char *errno_name(int e) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *n = strerrorname_np(e);
  if (n) return n;
#endif
  static char buf[16];
  snprintf(buf, sizeof buf, "E%d", e);
  return buf;
}

// Throw Error(message) with .code = errno name, .errno, .syscall.
static void throw_errno(napi_env env, int err, const char *syscall, const char *what) {
  char msg[768];
  snprintf(msg, sizeof msg, "%s failed: %s (%s, errno %d)", what, strerror(err), errno_name(err), err);
  napi_value code, message, error, v;
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &v);
  napi_set_named_property(env, error, "errno", v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, error, "syscall", v);
  napi_throw(env, error);
}

static void throw_type(napi_env env, const char *msg) { napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg); }

// Read an optional property; *present = false when missing or undefined.
static napi_status get_prop(napi_env env, napi_value obj, const char *name, napi_value *out, bool *present) {
  napi_valuetype t;
  napi_status s = napi_get_named_property(env, obj, name, out);
  if (s != napi_ok) return s;
  s = napi_typeof(env, *out, &t);
  *present = t != napi_undefined && t != napi_null;
  return s;
}

struct udp_request {
  int family, port, reuse_addr;
  char address[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  char netns[256];
};

// socket + options + bind. Returns fd, or -1 with *err_errno, *err_call, *err_what set.
static int make_socket(const struct udp_request *r, int *err_errno, const char **err_call, char *what, size_t wn) {
  union { struct sockaddr_in v4; struct sockaddr_in6 v6; } sa;
  socklen_t salen;
  memset(&sa, 0, sizeof sa);
  char addr[sizeof r->address];
  snprintf(addr, sizeof addr, "%s", r->address);
  if (r->family == 4) {
    sa.v4.sin_family = AF_INET;
    sa.v4.sin_port = htons((uint16_t)r->port);
    if (inet_pton(AF_INET, addr, &sa.v4.sin_addr) != 1) {
      *err_errno = EINVAL, *err_call = "inet_pton", snprintf(what, wn, "parsing IPv4 address \"%s\"", addr);
      return -1;
    }
    salen = sizeof sa.v4;
  } else {
    char *pct = strchr(addr, '%'); // fe80::1%eth0
    sa.v6.sin6_family = AF_INET6;
    sa.v6.sin6_port = htons((uint16_t)r->port);
    if (pct) *pct = 0;
    if (inet_pton(AF_INET6, addr, &sa.v6.sin6_addr) != 1) {
      *err_errno = EINVAL, *err_call = "inet_pton", snprintf(what, wn, "parsing IPv6 address \"%s\"", addr);
      return -1;
    }
    if (pct && !(sa.v6.sin6_scope_id = if_nametoindex(pct + 1))) {
      *err_errno = errno, *err_call = "if_nametoindex", snprintf(what, wn, "finding interface \"%s\"", pct + 1);
      return -1;
    }
    salen = sizeof sa.v6;
  }
  int fd = socket(r->family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err_errno = errno, *err_call = "socket", snprintf(what, wn, "creating a UDP/IPv%d socket", r->family);
    return -1;
  }
  int one = 1, pmtu = IP_PMTUDISC_DO;
  const char *opt = NULL;
  if (r->reuse_addr && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one)) opt = "SO_REUSEADDR";
  else if (r->family == 4 && setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu)) opt = "IP_MTU_DISCOVER=IP_PMTUDISC_DO";
  else if (r->family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one)) opt = "IPV6_V6ONLY";
  else if (r->family == 6 && setsockopt(fd, SOL_UDP, UDP_NO_CHECK6_RX, &one, sizeof one)) opt = "UDP_NO_CHECK6_RX";
  if (opt) {
    *err_errno = errno, *err_call = "setsockopt", snprintf(what, wn, "setting %s", opt);
    close(fd);
    return -1;
  }
  if (bind(fd, (struct sockaddr *)&sa, salen)) {
    *err_errno = errno, *err_call = "bind";
    snprintf(what, wn, r->family == 4 ? "binding UDP %s:%d" : "binding UDP [%s]:%d", r->address, r->port);
    close(fd);
    return -1;
  }
  return fd;
}

// Create the socket inside another network namespace: switch this thread there and back. The
// socket keeps the namespace it was created in. Needs CAP_SYS_ADMIN.
static int make_socket_in_netns(napi_env env, const struct udp_request *r, int *err_errno, const char **err_call,
                                char *what, size_t wn) {
  char path[300];
  if (strchr(r->netns, '/')) snprintf(path, sizeof path, "%s", r->netns);
  else snprintf(path, sizeof path, "/run/netns/%s", r->netns);
  int here = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (here < 0) {
    *err_errno = errno, *err_call = "open", snprintf(what, wn, "opening /proc/thread-self/ns/net");
    return -1;
  }
  int there = open(path, O_RDONLY | O_CLOEXEC);
  if (there < 0) {
    *err_errno = errno, *err_call = "open", snprintf(what, wn, "opening network namespace %s", path);
    close(here);
    return -1;
  }
  if (setns(there, CLONE_NEWNET)) {
    *err_errno = errno, *err_call = "setns", snprintf(what, wn, "entering network namespace %s (needs root)", path);
    close(here), close(there);
    return -1;
  }
  int fd = make_socket(r, err_errno, err_call, what, wn);
  if (setns(here, CLONE_NEWNET)) // staying in the wrong namespace would be far worse than stopping
    napi_fatal_error("roce_sockopt", NAPI_AUTO_LENGTH, "cannot return to the original network namespace",
                     NAPI_AUTO_LENGTH);
  close(here), close(there);
  (void)env;
  return fd;
}

static napi_value create_udp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], v;
  napi_valuetype t;
  bool present;
  struct udp_request r = {0};
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_object)
    return throw_type(env, "createUdpSocket: expected an options object { family, address, port }"), NULL;

  CHECK(get_prop(env, argv[0], "family", &v, &present));
  if (!present || napi_get_value_int32(env, v, &r.family) != napi_ok || (r.family != 4 && r.family != 6))
    return throw_type(env, "createUdpSocket: family must be 4 or 6"), NULL;
  CHECK(get_prop(env, argv[0], "address", &v, &present));
  size_t len = 0;
  if (!present || napi_get_value_string_utf8(env, v, r.address, sizeof r.address, &len) != napi_ok || !len ||
      len >= sizeof r.address - 1)
    return throw_type(env, "createUdpSocket: address must be an IP address string"), NULL;
  CHECK(get_prop(env, argv[0], "port", &v, &present));
  r.port = 0;
  if (present && (napi_get_value_int32(env, v, &r.port) != napi_ok || r.port < 0 || r.port > 65535))
    return throw_type(env, "createUdpSocket: port must be an integer 0..65535"), NULL;
  CHECK(get_prop(env, argv[0], "reuseAddr", &v, &present));
  if (present) {
    bool b;
    if (napi_get_value_bool(env, v, &b) != napi_ok) return throw_type(env, "createUdpSocket: reuseAddr must be a boolean"), NULL;
    r.reuse_addr = b;
  }
  CHECK(get_prop(env, argv[0], "netns", &v, &present));
  if (present && (napi_get_value_string_utf8(env, v, r.netns, sizeof r.netns, &len) != napi_ok || !len ||
                  len >= sizeof r.netns - 1))
    return throw_type(env, "createUdpSocket: netns must be a namespace name or path"), NULL;

  int err = 0;
  const char *call = "";
  char what[512] = "";
  int fd = r.netns[0] ? make_socket_in_netns(env, &r, &err, &call, what, sizeof what)
                      : make_socket(&r, &err, &call, what, sizeof what);
  if (fd < 0 && !strcmp(call, "inet_pton")) {
    char msg[600];
    snprintf(msg, sizeof msg, "createUdpSocket: %s failed: not an IPv%d address", what, r.family);
    return throw_type(env, msg), NULL;
  }
  if (fd < 0) return throw_errno(env, err, call, what), NULL;
  napi_value out;
  CHECK(napi_create_int32(env, fd, &out));
  return out;
}

// querySocket(fd): what the kernel says about the options that matter for RoCE interop.
static napi_value query_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  int fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return throw_type(env, "querySocket: expected a file descriptor"), NULL;
  int domain = 0, val = 0;
  socklen_t l = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l)) return throw_errno(env, errno, "getsockopt", "reading SO_DOMAIN"), NULL;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_int32(env, domain == AF_INET ? 4 : domain == AF_INET6 ? 6 : 0, &v));
  CHECK(napi_set_named_property(env, out, "family", v));
  if (domain == AF_INET) {
    l = sizeof val;
    if (getsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &val, &l)) return throw_errno(env, errno, "getsockopt", "reading IP_MTU_DISCOVER"), NULL;
    const char *names[] = {"dont", "want", "do", "probe", "interface", "omit"};
    CHECK(napi_create_string_utf8(env, val >= 0 && val <= 5 ? names[val] : "unknown", NAPI_AUTO_LENGTH, &v));
    CHECK(napi_set_named_property(env, out, "pmtudisc", v));
  } else if (domain == AF_INET6) {
    l = sizeof val;
    if (getsockopt(fd, SOL_UDP, UDP_NO_CHECK6_RX, &val, &l)) return throw_errno(env, errno, "getsockopt", "reading UDP_NO_CHECK6_RX"), NULL;
    CHECK(napi_get_boolean(env, val != 0, &v));
    CHECK(napi_set_named_property(env, out, "noCheck6Rx", v));
    l = sizeof val;
    if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &val, &l)) return throw_errno(env, errno, "getsockopt", "reading IPV6_V6ONLY"), NULL;
    CHECK(napi_get_boolean(env, val != 0, &v));
    CHECK(napi_set_named_property(env, out, "v6only", v));
  }
  return out;
}

// makeSockaddr(family, address, port): the destination encoded once, so sendTo parses nothing.
static napi_value make_sockaddr(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out;
  int family = 0, port = -1;
  char addr[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t len = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || napi_get_value_int32(env, argv[0], &family) != napi_ok || (family != 4 && family != 6))
    return throw_type(env, "makeSockaddr: family must be 4 or 6"), NULL;
  if (napi_get_value_string_utf8(env, argv[1], addr, sizeof addr, &len) != napi_ok || !len || len >= sizeof addr - 1)
    return throw_type(env, "makeSockaddr: address must be an IP address string"), NULL;
  if (napi_get_value_int32(env, argv[2], &port) != napi_ok || port < 0 || port > 65535)
    return throw_type(env, "makeSockaddr: port must be an integer 0..65535"), NULL;
  if (family == 4) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) return throw_type(env, "makeSockaddr: not an IPv4 address"), NULL;
    CHECK(napi_create_buffer_copy(env, sizeof sa, &sa, NULL, &out));
  } else {
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof sa);
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons((uint16_t)port);
    char *pct = strchr(addr, '%');
    if (pct) *pct = 0;
    if (inet_pton(AF_INET6, addr, &sa.sin6_addr) != 1) return throw_type(env, "makeSockaddr: not an IPv6 address"), NULL;
    if (pct && !(sa.sin6_scope_id = if_nametoindex(pct + 1)))
      return throw_errno(env, errno, "if_nametoindex", "makeSockaddr: finding the interface of a scoped address"), NULL;
    CHECK(napi_create_buffer_copy(env, sizeof sa, &sa, NULL, &out));
  }
  return out;
}

// The bytes of a Uint8Array (Buffer included); false when v is none.
static bool get_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, len, data, &ab, &offset) != napi_ok) return false;
  return type == napi_uint8_array || type == napi_uint8_clamped_array || type == napi_int8_array;
}

#define SEND_MAX_IOV 64

// sendTo(fd, buffer | buffers[], sockaddr, tos, hopLimit) -> bytes sent or -errno.
static napi_value send_to(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], out;
  int32_t fd = -1, tos = -1, hop = -1;
  struct iovec iov[SEND_MAX_IOV];
  size_t niov = 0, salen = 0;
  void *sa = NULL;
  bool is_array = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return throw_type(env, "sendTo: expected (fd, buffer | buffers, sockaddr, tos?, hopLimit?)"), NULL;
  if (!get_bytes(env, argv[1], &iov[0].iov_base, &iov[0].iov_len)) {
    uint32_t n = 0;
    if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[1], &n) != napi_ok)
      return throw_type(env, "sendTo: data must be a Uint8Array or an array of them"), NULL;
    if (n > SEND_MAX_IOV) return throw_type(env, "sendTo: at most 64 pieces"), NULL;
    for (uint32_t i = 0; i < n; i++) {
      napi_value el;
      if (napi_get_element(env, argv[1], i, &el) != napi_ok || !get_bytes(env, el, &iov[i].iov_base, &iov[i].iov_len))
        return throw_type(env, "sendTo: every piece must be a Uint8Array"), NULL;
    }
    niov = n;
  } else niov = 1;
  if (!get_bytes(env, argv[2], &sa, &salen) ||
      !((salen == sizeof(struct sockaddr_in) && ((struct sockaddr *)sa)->sa_family == AF_INET) ||
        (salen == sizeof(struct sockaddr_in6) && ((struct sockaddr *)sa)->sa_family == AF_INET6)))
    return throw_type(env, "sendTo: sockaddr must be a Buffer from makeSockaddr"), NULL;
  if (argc > 3 && napi_get_value_int32(env, argv[3], &tos) != napi_ok) tos = -1;
  if (argc > 4 && napi_get_value_int32(env, argv[4], &hop) != napi_ok) hop = -1;
  if (tos > 255 || hop > 255 || hop == 0) return throw_type(env, "sendTo: tos must be -1..255 and hopLimit -1 or 1..255"), NULL;

  union {
    struct cmsghdr align;
    char buf[2 * CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_name = sa;
  msg.msg_namelen = (socklen_t)salen;
  msg.msg_iov = iov;
  msg.msg_iovlen = niov;
  if (tos >= 0 || hop > 0) {
    bool v4 = ((struct sockaddr *)sa)->sa_family == AF_INET;
    size_t clen = 0;
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (tos >= 0) {
      c->cmsg_level = v4 ? IPPROTO_IP : IPPROTO_IPV6;
      c->cmsg_type = v4 ? IP_TOS : IPV6_TCLASS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &tos, sizeof(int));
      clen += CMSG_SPACE(sizeof(int));
      c = CMSG_NXTHDR(&msg, c);
    }
    if (hop > 0) {
      c->cmsg_level = v4 ? IPPROTO_IP : IPPROTO_IPV6;
      c->cmsg_type = v4 ? IP_TTL : IPV6_HOPLIMIT;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &hop, sizeof(int));
      clen += CMSG_SPACE(sizeof(int));
    }
    msg.msg_controllen = clen;
  }
  ssize_t r;
  do r = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  CHECK(napi_create_int32(env, r < 0 ? -errno : (int32_t)r, &out));
  return out;
}

#define BATCH_MAX_MSGS 64
#define BATCH_MAX_IOV 1024

static void put_cmsg_int(struct cmsghdr *c, int level, int type, int v) {
  c->cmsg_level = level, c->cmsg_type = type, c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &v, sizeof v);
}

// sendBatch(fd, pieces, pieceStart, counts, segs, first, end, sockaddr, tos, hopLimit) -> messages sent or -errno.
static napi_value send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10], out;
  int32_t fd = -1, piece = 0, first = 0, end = 0, tos = -1, hop = -1;
  void *sa = NULL, *counts_p = NULL, *segs_p = NULL;
  size_t salen = 0, counts_len = 0, segs_len = 0, off;
  uint32_t npieces = 0;
  bool is_array = false;
  napi_typedarray_type tt;
  napi_value ab;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 10 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[1], &npieces) != napi_ok ||
      napi_get_value_int32(env, argv[2], &piece) != napi_ok || piece < 0 ||
      napi_get_typedarray_info(env, argv[3], &tt, &counts_len, &counts_p, &ab, &off) != napi_ok || tt != napi_int32_array ||
      napi_get_typedarray_info(env, argv[4], &tt, &segs_len, &segs_p, &ab, &off) != napi_ok || tt != napi_int32_array ||
      napi_get_value_int32(env, argv[5], &first) != napi_ok || napi_get_value_int32(env, argv[6], &end) != napi_ok)
    return throw_type(env, "sendBatch: expected (fd, pieces[], pieceStart, counts: Int32Array, segs: Int32Array, first, end, sockaddr, tos, hopLimit)"), NULL;
  if (first < 0 || end <= first || end - first > BATCH_MAX_MSGS || (size_t)end > counts_len || (size_t)end > segs_len)
    return throw_type(env, "sendBatch: first..end must name 1 to 64 messages within counts and segs"), NULL;
  if (!get_bytes(env, argv[7], &sa, &salen) ||
      !((salen == sizeof(struct sockaddr_in) && ((struct sockaddr *)sa)->sa_family == AF_INET) ||
        (salen == sizeof(struct sockaddr_in6) && ((struct sockaddr *)sa)->sa_family == AF_INET6)))
    return throw_type(env, "sendBatch: sockaddr must be a Buffer from makeSockaddr"), NULL;
  if (napi_get_value_int32(env, argv[8], &tos) != napi_ok) tos = -1;
  if (napi_get_value_int32(env, argv[9], &hop) != napi_ok) hop = -1;
  if (tos > 255 || hop > 255 || hop == 0) return throw_type(env, "sendBatch: tos must be -1..255 and hopLimit -1 or 1..255"), NULL;
  const int32_t *counts = counts_p, *segs = segs_p;
  bool v4 = ((struct sockaddr *)sa)->sa_family == AF_INET;
  struct iovec iov[BATCH_MAX_IOV];
  struct mmsghdr msgs[BATCH_MAX_MSGS];
  union {
    struct cmsghdr align;
    char buf[3 * CMSG_SPACE(sizeof(int))];
  } control[BATCH_MAX_MSGS];
  int nmsg = end - first;
  uint32_t used = 0;
  memset(msgs, 0, sizeof(msgs[0]) * (size_t)nmsg);
  for (int m = 0; m < nmsg; m++) {
    int32_t count = counts[first + m], seg = segs[first + m];
    if (count < 1 || used + (uint32_t)count > BATCH_MAX_IOV || (uint32_t)piece + (uint32_t)count > npieces)
      return throw_type(env, "sendBatch: a message needs 1 or more pieces, at most 1024 in a call, within pieces[]"), NULL;
    if (seg < 0 || seg > 65535) return throw_type(env, "sendBatch: a segment size must be 0..65535"), NULL;
    struct msghdr *h = &msgs[m].msg_hdr;
    h->msg_name = sa, h->msg_namelen = (socklen_t)salen;
    h->msg_iov = &iov[used], h->msg_iovlen = (size_t)count;
    for (int32_t k = 0; k < count; k++, piece++, used++) {
      napi_value el;
      if (napi_get_element(env, argv[1], (uint32_t)piece, &el) != napi_ok || !get_bytes(env, el, &iov[used].iov_base, &iov[used].iov_len))
        return throw_type(env, "sendBatch: every piece must be a Uint8Array"), NULL;
    }
    if (tos < 0 && hop <= 0 && seg == 0) continue;
    memset(&control[m], 0, sizeof control[m]);
    h->msg_control = control[m].buf, h->msg_controllen = sizeof control[m].buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(h);
    size_t clen = 0;
    if (tos >= 0) {
      put_cmsg_int(c, v4 ? IPPROTO_IP : IPPROTO_IPV6, v4 ? IP_TOS : IPV6_TCLASS, tos);
      clen += CMSG_SPACE(sizeof(int)), c = CMSG_NXTHDR(h, c);
    }
    if (hop > 0) {
      put_cmsg_int(c, v4 ? IPPROTO_IP : IPPROTO_IPV6, v4 ? IP_TTL : IPV6_HOPLIMIT, hop);
      clen += CMSG_SPACE(sizeof(int)), c = CMSG_NXTHDR(h, c);
    }
    if (seg > 0) {
      uint16_t s16 = (uint16_t)seg; // UDP_SEGMENT's cmsg is a u16
      c->cmsg_level = SOL_UDP, c->cmsg_type = UDP_SEGMENT, c->cmsg_len = CMSG_LEN(sizeof s16);
      memcpy(CMSG_DATA(c), &s16, sizeof s16);
      clen += CMSG_SPACE(sizeof s16);
    }
    h->msg_controllen = clen;
  }
  int r;
  do r = sendmmsg(fd, msgs, (unsigned)nmsg, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  CHECK(napi_create_int32(env, r < 0 ? -errno : r, &out));
  return out;
}

// udpOffload(fd, gro): what the kernel says to UDP_SEGMENT (asked, not set) and UDP_GRO (set to gro).
static napi_value udp_offload(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out, v;
  int32_t fd = -1;
  bool gro = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || napi_get_value_bool(env, argv[1], &gro) != napi_ok)
    return throw_type(env, "udpOffload: expected (fd, gro: boolean)"), NULL;
  int val = 0, seg_err = 0, gro_err = 0;
  socklen_t l = sizeof val;
  if (getsockopt(fd, SOL_UDP, UDP_SEGMENT, &val, &l)) seg_err = errno;
  val = gro ? 1 : 0;
  if (setsockopt(fd, SOL_UDP, UDP_GRO, &val, sizeof val)) gro_err = errno;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_int32(env, seg_err, &v));
  CHECK(napi_set_named_property(env, out, "segment", v));
  CHECK(napi_create_int32(env, gro_err, &v));
  CHECK(napi_set_named_property(env, out, "gro", v));
  return out;
}

// ---- the receive path

#define RX_MAX_SLOTS 64
#define RX_META 8
#define RX_ROUNDS 4

typedef struct receiver {
  uv_poll_t poll; // first: the handle pointer is the receiver pointer
  napi_env env;
  napi_ref on_batch, on_writable, on_closed, slab_ref, meta_ref;
  napi_async_context async;
  uint8_t *slab;
  int32_t *meta;
  uint32_t slot, slots;
  // Entries meta holds; with gro, a read's aggregates may split into more datagrams than that:
  // they are handed over in several onBatch calls.
  uint32_t meta_cap;
  int gro;
  double reads, datagrams, aggregates, segments;
  int fd, events, closing;
  // The struct is freed once both happened: uv_close finished (closed) and the JS handle was
  // garbage-collected (finalized), so a stale handle never points at freed memory.
  int closed, finalized;
  // The environment is being torn down (worker exit): no more calls into JavaScript. Node waits
  // for the close to finish (an async cleanup hook) before it unloads this addon, whose code
  // the close callback is.
  int teardown;
  napi_async_cleanup_hook_handle hook;
  struct mmsghdr msgs[RX_MAX_SLOTS];
  struct iovec iov[RX_MAX_SLOTS];
  struct sockaddr_in6 names[RX_MAX_SLOTS];
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control[RX_MAX_SLOTS];
} receiver_t;

// Calls a JS callback from the event loop (handle scope, async context, microtasks afterwards);
// an exception it throws becomes an uncaught exception, as in any other I/O callback.
static void call_js(receiver_t *r, napi_ref fn_ref, int argc, int32_t arg) {
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, argv[1], result;
  // The callbacks are arrow functions: `this` is the function itself (an object, as
  // napi_make_callback needs), which spares looking up the global object per batch.
  if (napi_get_reference_value(env, fn_ref, &fn) == napi_ok && napi_create_int32(env, arg, &argv[0]) == napi_ok) {
    bool pending = false;
    if (napi_make_callback(env, r->async, fn, fn, (size_t)argc, argv, &result) != napi_ok &&
        napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

// meta entry `e` := datagram `len` bytes at slab offset `at`, from the source of message i.
static void put_meta(receiver_t *r, uint32_t e, int i, int32_t len, uint32_t at) {
  int32_t *m = r->meta + (size_t)e * RX_META;
  m[0] = len;
  m[7] = (int32_t)at;
  const struct sockaddr *sa = (const struct sockaddr *)&r->names[i];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
    m[1] = ntohs(v4->sin_port), m[2] = 4, m[3] = (int32_t)ntohl(v4->sin_addr.s_addr), m[4] = m[5] = m[6] = 0;
  } else {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
    uint32_t w[4];
    memcpy(w, &v6->sin6_addr, sizeof w);
    m[1] = ntohs(v6->sin6_port), m[2] = 6;
    for (int k = 0; k < 4; k++) m[3 + k] = (int32_t)ntohl(w[k]);
  }
}

// The segment size of a GRO aggregate (0: a plain datagram).
static int gro_size(struct msghdr *h) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      return v > 0 ? v : 0;
    }
  return 0;
}

// Hands the n messages read to JavaScript, aggregates split into their segments; false when
// the receiver was closed meanwhile.
static bool deliver(receiver_t *r, int n) {
  uint32_t e = 0;
  for (int i = 0; i < n; i++) {
    struct msghdr *h = &r->msgs[i].msg_hdr;
    uint32_t len = r->msgs[i].msg_len, base = (uint32_t)i * r->slot;
    // recvmmsg ran with MSG_TRUNC: msg_len is the datagram's real length even when it did not fit.
    int seg = (h->msg_flags & MSG_TRUNC) ? 0 : r->gro ? gro_size(h) : 0;
    r->datagrams++;
    if (seg == 0 || (uint32_t)seg >= len) {
      put_meta(r, e++, i, (h->msg_flags & MSG_TRUNC) ? -(int32_t)len : (int32_t)len, base);
      if (e == r->meta_cap) {
        call_js(r, r->on_batch, 1, (int32_t)e);
        if (r->closing) return false;
        e = 0;
      }
      continue;
    }
    r->aggregates++;
    for (uint32_t at = 0; at < len; at += (uint32_t)seg) {
      uint32_t piece = len - at < (uint32_t)seg ? len - at : (uint32_t)seg;
      r->segments++;
      put_meta(r, e++, i, (int32_t)piece, base + at);
      if (e == r->meta_cap) {
        call_js(r, r->on_batch, 1, (int32_t)e);
        if (r->closing) return false;
        e = 0;
      }
    }
  }
  if (e > 0) call_js(r, r->on_batch, 1, (int32_t)e);
  return !r->closing;
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  receiver_t *r = (receiver_t *)handle;
  if (r->closing) return;
  if (status < 0) {
    // libuv stopped the watcher (POLLERR: a pending socket error, or ICMP errors queued on a
    // socket with IP_RECVERR). Take the error and drain the error queue so the next poll does
    // not fire again at once, report it, and watch again.
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &l) || err == 0) err = -status;
    char scratch[256], control[512];
    for (int k = 0; k < 64; k++) {
      struct iovec iov = {scratch, sizeof scratch};
      struct msghdr m = {0};
      m.msg_iov = &iov, m.msg_iovlen = 1, m.msg_control = control, m.msg_controllen = sizeof control;
      if (recvmsg(r->fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) break;
    }
    call_js(r, r->on_batch, 1, -err);
    if (r->closing) return;
    uv_poll_start(&r->poll, r->events, on_poll);
    events = UV_READABLE;
  }
  if (events & UV_WRITABLE) {
    r->events &= ~UV_WRITABLE;
    uv_poll_start(&r->poll, r->events, on_poll);
    call_js(r, r->on_writable, 0, 0);
    if (r->closing) return;
  }
  if (!(events & UV_READABLE)) return;
  for (int round = 0; round < RX_ROUNDS && !r->closing; round++) {
    for (uint32_t i = 0; i < r->slots; i++) {
      r->msgs[i].msg_hdr.msg_namelen = sizeof r->names[i];
      r->msgs[i].msg_hdr.msg_flags = 0;
      if (r->gro) r->msgs[i].msg_hdr.msg_control = r->control[i].buf, r->msgs[i].msg_hdr.msg_controllen = sizeof r->control[i].buf;
    }
    int n;
    do n = recvmmsg(r->fd, r->msgs, r->slots, MSG_DONTWAIT | MSG_TRUNC, NULL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) call_js(r, r->on_batch, 1, -errno);
      return;
    }
    if (n == 0) return;
    r->reads++;
    if (!deliver(r, n)) return;
    if ((uint32_t)n < r->slots) return;
  }
}

static void on_closed(uv_handle_t *handle) {
  receiver_t *r = (receiver_t *)handle;
  napi_env env = r->env;
  close(r->fd);
  // After a plain close this unregisters the hook; during teardown it says the cleanup is done.
  if (r->hook) napi_remove_async_cleanup_hook(r->hook);
  r->hook = NULL;
  if (!r->teardown) {
    call_js(r, r->on_closed, 0, 0);
    napi_delete_reference(env, r->on_batch);
    napi_delete_reference(env, r->on_writable);
    napi_delete_reference(env, r->on_closed);
    napi_delete_reference(env, r->slab_ref);
    napi_delete_reference(env, r->meta_ref);
    napi_async_destroy(env, r->async);
  }
  r->closed = 1;
  if (r->finalized) free(r);
}

// The environment goes away (a worker thread ends) with the receiver still open: stop watching
// and close the socket without calling into JavaScript again. A close already in flight
// finishes the cleanup itself (on_closed).
static void env_teardown(napi_async_cleanup_hook_handle handle, void *arg) {
  receiver_t *r = arg;
  r->hook = handle;
  r->teardown = 1;
  if (r->closing) return;
  r->closing = 1;
  uv_poll_stop(&r->poll);
  uv_close((uv_handle_t *)&r->poll, on_closed);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  receiver_t *r = data;
  r->finalized = 1;
  if (r->closed) free(r);
}

static bool is_function(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && t == napi_function;
}

// openReceiver(fd, slab, meta, slotBytes, onBatch, onWritable, onClosed, gro?) -> handle
static napi_value open_receiver(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], out, name;
  bool gro = false;
  int32_t fd = -1, slot = 0;
  void *slab = NULL, *meta = NULL;
  size_t slab_len = 0, meta_len = 0, off;
  napi_typedarray_type mt;
  napi_value ab;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return throw_type(env, "openReceiver: expected (fd, slab, meta, slotBytes, onBatch, onWritable, onClosed)"), NULL;
  if (!get_bytes(env, argv[1], &slab, &slab_len)) return throw_type(env, "openReceiver: slab must be a Buffer"), NULL;
  if (napi_get_typedarray_info(env, argv[2], &mt, &meta_len, &meta, &ab, &off) != napi_ok || mt != napi_int32_array)
    return throw_type(env, "openReceiver: meta must be an Int32Array"), NULL;
  if (napi_get_value_int32(env, argv[3], &slot) != napi_ok || slot < 64 || slot > 65536)
    return throw_type(env, "openReceiver: slotBytes must be 64..65536"), NULL;
  if (!is_function(env, argv[4]) || !is_function(env, argv[5]) || !is_function(env, argv[6]))
    return throw_type(env, "openReceiver: onBatch, onWritable and onClosed must be functions"), NULL;
  if (argc > 7 && napi_get_value_bool(env, argv[7], &gro) != napi_ok) gro = false;
  size_t slots = slab_len / (size_t)slot;
  if (slots > RX_MAX_SLOTS) slots = RX_MAX_SLOTS;
  if (slots == 0 || meta_len < slots * RX_META) return throw_type(env, "openReceiver: slab or meta too small for one slot"), NULL;
  if (gro && slot < 65536) return throw_type(env, "openReceiver: with gro, slotBytes must be 65536 (a whole aggregate)"), NULL;
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  receiver_t *r = calloc(1, sizeof *r);
  if (!r) return throw_errno(env, ENOMEM, "calloc", "openReceiver"), NULL;
  r->env = env, r->fd = fd, r->slab = slab, r->meta = meta, r->slot = (uint32_t)slot, r->slots = (uint32_t)slots;
  r->meta_cap = (uint32_t)(meta_len / RX_META), r->gro = gro;
  for (uint32_t i = 0; i < r->slots; i++) {
    r->iov[i].iov_base = r->slab + (size_t)i * r->slot;
    r->iov[i].iov_len = r->slot;
    r->msgs[i].msg_hdr.msg_iov = &r->iov[i];
    r->msgs[i].msg_hdr.msg_iovlen = 1;
    r->msgs[i].msg_hdr.msg_name = &r->names[i];
  }
  int uerr = uv_poll_init(loop, &r->poll, fd);
  if (uerr) {
    free(r);
    return throw_errno(env, -uerr, "uv_poll_init", "openReceiver: watching the socket"), NULL;
  }
  napi_create_reference(env, argv[4], 1, &r->on_batch);
  napi_create_reference(env, argv[5], 1, &r->on_writable);
  napi_create_reference(env, argv[6], 1, &r->on_closed);
  napi_create_reference(env, argv[1], 1, &r->slab_ref);
  napi_create_reference(env, argv[2], 1, &r->meta_ref);
  napi_create_string_utf8(env, "RoceReceiver", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &r->async);
  r->events = UV_READABLE;
  uv_poll_start(&r->poll, r->events, on_poll);
  napi_add_async_cleanup_hook(env, env_teardown, r, &r->hook);
  CHECK(napi_create_external(env, r, finalize_handle, NULL, &out));
  return out;
}

static receiver_t *receiver_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *p = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_external(env, argv[0], &p) != napi_ok || !p) {
    throw_type(env, "expected a receiver handle from openReceiver");
    return NULL;
  }
  return p;
}

// A handle whose receiver is closed (or closing) is ignored: the struct lives until the handle is collected.
static napi_value arm_writable(napi_env env, napi_callback_info info) {
  receiver_t *r = receiver_arg(env, info);
  if (r && !r->closing && !(r->events & UV_WRITABLE)) {
    r->events |= UV_WRITABLE;
    uv_poll_start(&r->poll, r->events, on_poll);
  }
  return NULL;
}

static napi_value close_receiver(napi_env env, napi_callback_info info) {
  receiver_t *r = receiver_arg(env, info);
  if (r && !r->closing) {
    r->closing = 1;
    uv_poll_stop(&r->poll);
    uv_close((uv_handle_t *)&r->poll, on_closed);
  }
  return NULL;
}

static napi_value receiver_stats(napi_env env, napi_callback_info info) {
  receiver_t *r = receiver_arg(env, info);
  if (!r) return NULL;
  napi_value out, v;
  CHECK(napi_create_object(env, &out));
  const struct { const char *name; double value; } f[] = {
      {"reads", r->reads}, {"datagrams", r->datagrams}, {"aggregates", r->aggregates}, {"segments", r->segments}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    CHECK(napi_create_double(env, f[i].value, &v));
    CHECK(napi_set_named_property(env, out, f[i].name, v));
  }
  return out;
}

static napi_value socket_address(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  int32_t fd = -1;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return throw_type(env, "socketAddress: expected a file descriptor"), NULL;
  struct sockaddr_in6 sa;
  socklen_t l = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &l)) return throw_errno(env, errno, "getsockname", "reading the bound address"), NULL;
  char text[INET6_ADDRSTRLEN];
  bool v4 = ((struct sockaddr *)&sa)->sa_family == AF_INET;
  const void *addr = v4 ? (const void *)&((struct sockaddr_in *)&sa)->sin_addr : (const void *)&sa.sin6_addr;
  if (!inet_ntop(v4 ? AF_INET : AF_INET6, addr, text, sizeof text)) return throw_errno(env, errno, "inet_ntop", "formatting the bound address"), NULL;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_named_property(env, out, "address", v));
  CHECK(napi_create_int32(env, v4 ? ntohs(((struct sockaddr_in *)&sa)->sin_port) : ntohs(sa.sin6_port), &v));
  CHECK(napi_set_named_property(env, out, "port", v));
  return out;
}

static napi_value set_buffer_sizes(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  int32_t fd = -1, bytes = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_value_int32(env, argv[1], &bytes) != napi_ok || bytes <= 0)
    return throw_type(env, "setBufferSizes: expected (fd, bytes)"), NULL;
  // Best effort, as node:dgram's: the kernel caps both at net.core.[rw]mem_max.
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  int granted = 0;
  socklen_t l = sizeof granted;
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &l)) granted = 0;
  CHECK(napi_create_int32(env, granted, &out));
  return out;
}

/** crc32(data: Uint8Array, value: number) -> number: zlib.crc32's contract, by crc32_fold.c. */
static napi_value crc32_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  uint32_t value = 0;
  if (argc < 2 || napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array ||
      napi_get_value_uint32(env, argv[1], &value) != napi_ok)
    return throw_type(env, "crc32: expected (Uint8Array, uint32)"), NULL;
  CHECK(napi_create_uint32(env, crc32_fold(value, data, length), &out));
  return out;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn;
  crc32_fold_init();
  if (napi_create_function(env, "createUdpSocket", NAPI_AUTO_LENGTH, create_udp_socket, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "createUdpSocket", fn) != napi_ok ||
      napi_create_function(env, "querySocket", NAPI_AUTO_LENGTH, query_socket, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "querySocket", fn) != napi_ok ||
      napi_create_function(env, "makeSockaddr", NAPI_AUTO_LENGTH, make_sockaddr, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "makeSockaddr", fn) != napi_ok ||
      napi_create_function(env, "sendTo", NAPI_AUTO_LENGTH, send_to, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "sendTo", fn) != napi_ok)
    return NULL;
  const struct { const char *name; napi_callback cb; } more[] = {
      {"openReceiver", open_receiver}, {"armWritable", arm_writable}, {"closeReceiver", close_receiver},
      {"socketAddress", socket_address},     {"setBufferSizes", set_buffer_sizes},
      {"sendBatch", send_batch},             {"udpOffload", udp_offload},
      {"receiverStats", receiver_stats},     {"crc32", crc32_js},
      {"frameRun", roce_frame_run},          {"sendRun", roce_send_run},
      {"receiveRun", roce_receive_run},
  };
  for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
    if (napi_create_function(env, more[i].name, NAPI_AUTO_LENGTH, more[i].cb, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, more[i].name, fn) != napi_ok)
      return NULL;
  napi_value accelerated;
  if (napi_get_boolean(env, crc32_fold_accelerated(), &accelerated) != napi_ok ||
      napi_set_named_property(env, exports, "crc32Accelerated", accelerated) != napi_ok)
    return NULL;
  return exports;
}
