// The C reference of the write-throughput bench: a windowed blast of equal-sized UDP datagrams
// on loopback with the kernel's fastest batched paths, UDP GSO (UDP_SEGMENT) and sendmmsg on the
// sender, UDP_GRO and recvmmsg on the receiver (a child process). The receiver answers every
// `ack_every` datagrams with its cumulative count, and the sender keeps at most `window`
// datagrams unanswered, as softroce's window does, so it measures what the kernel can carry
// without overrunning the receiver.
//
// usage: udp-gso-blast <datagram bytes> <datagrams> <window> <ack every>
// prints one JSON line: acknowledged datagrams, elapsed seconds (first send to last answer),
// CPU seconds of the sender and of the receiver, datagrams lost in the kernel.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#define SLOTS 16
#define SLOT_BYTES 65536
#define MESSAGES 16

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu(int who) {
  struct rusage u;
  getrusage(who, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static int udp_socket(struct sockaddr_in *bound) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  memset(bound, 0, sizeof *bound);
  bound->sin_family = AF_INET;
  bound->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof *bound;
  if (fd < 0 || bind(fd, (struct sockaddr *)bound, sizeof *bound) != 0 || getsockname(fd, (struct sockaddr *)bound, &len) != 0) {
    perror("udp socket");
    exit(2);
  }
  return fd;
}

/** The receiver: counts datagrams (a GRO aggregate holds ceil(length / segment size)), answers the sender. */
static void receive(int fd, long total, int ack_every) {
  int on = 1;
  if (setsockopt(fd, IPPROTO_UDP, UDP_GRO, &on, sizeof on) != 0) {
    perror("UDP_GRO");
    exit(3);
  }
  struct timeval idle = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
  static char bufs[SLOTS][SLOT_BYTES];
  static char cbufs[SLOTS][CMSG_SPACE(sizeof(int))];
  struct mmsghdr msgs[SLOTS];
  struct iovec iov[SLOTS];
  struct sockaddr_in from[SLOTS];
  long count = 0, next_ack = ack_every;
  while (count < total) {
    for (int i = 0; i < SLOTS; i++) {
      iov[i] = (struct iovec){bufs[i], SLOT_BYTES};
      msgs[i].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof from[i], .msg_iov = &iov[i], .msg_iovlen = 1, .msg_control = cbufs[i], .msg_controllen = sizeof cbufs[i]};
    }
    int n = recvmmsg(fd, msgs, SLOTS, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      break; // idle for a second: the sender is gone or finished
    }
    for (int i = 0; i < n; i++) {
      int seg = 0;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != NULL; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c))
        if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) memcpy(&seg, CMSG_DATA(c), sizeof seg);
      unsigned len = msgs[i].msg_len;
      count += seg > 0 ? (len + seg - 1) / seg : 1;
    }
    if (count >= next_ack || count >= total) {
      uint32_t c = (uint32_t)count;
      sendto(fd, &c, sizeof c, 0, (struct sockaddr *)&from[n - 1], sizeof from[n - 1]);
      next_ack = (count / ack_every + 1) * ack_every;
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s <datagram bytes> <datagrams> <window> <ack every>\n", argv[0]);
    return 1;
  }
  int size = atoi(argv[1]);
  long total = atol(argv[2]);
  long window = atol(argv[3]);
  int ack_every = atoi(argv[4]);
  int per_message = 65000 / size; // below the 65,507 bytes of one IPv4 UDP datagram
  if (size < 8 || size > 9000 || total < 1 || window < per_message || ack_every < 1 || per_message > 64) {
    fprintf(stderr, "bad arguments\n");
    return 1;
  }
  struct sockaddr_in sink, self;
  int rfd = udp_socket(&sink);
  pid_t child = fork();
  if (child == 0) {
    receive(rfd, total, ack_every);
    _exit(0);
  }
  close(rfd);
  int fd = udp_socket(&self);
  if (connect(fd, (struct sockaddr *)&sink, sizeof sink) != 0) {
    perror("connect");
    return 2;
  }
  if (setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &size, sizeof size) != 0) {
    perror("UDP_SEGMENT");
    return 3;
  }
  char *payload = calloc(per_message, size);
  struct mmsghdr msgs[MESSAGES];
  struct iovec iov[MESSAGES];
  long sent = 0, acked = 0;
  double t0 = now(), t_ack = t0;
  while (acked < total) {
    // as many GSO messages as the window allows, one sendmmsg
    int m = 0;
    while (m < MESSAGES && sent < total && sent - acked + per_message <= window) {
      long k = total - sent < per_message ? total - sent : per_message;
      iov[m] = (struct iovec){payload, (size_t)(k * size)};
      msgs[m].msg_hdr = (struct msghdr){.msg_iov = &iov[m], .msg_iovlen = 1};
      sent += k;
      m++;
    }
    for (int done = 0; done < m;) {
      int r = sendmmsg(fd, msgs + done, m - done, 0);
      if (r < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == ENOBUFS) continue;
        perror("sendmmsg");
        return 4;
      }
      done += r;
    }
    // answers: wait when the window is full (or all is sent), else take what is there
    int full = sent >= total || sent - acked + per_message > window;
    struct pollfd p = {fd, POLLIN, 0};
    int ready = poll(&p, 1, full ? 200 : 0);
    if (ready == 0 && full) break; // a datagram lost in the kernel would hold the window forever
    uint32_t c;
    while (recv(fd, &c, sizeof c, MSG_DONTWAIT) == sizeof c) {
      if ((long)c > acked) {
        acked = c;
        t_ack = now();
      }
    }
  }
  double sender_cpu = cpu(RUSAGE_SELF);
  kill(child, SIGTERM);
  waitpid(child, NULL, 0);
  printf("{\"datagrams\":%ld,\"seconds\":%.6f,\"senderCpu\":%.6f,\"receiverCpu\":%.6f,\"lost\":%ld}\n", acked, t_ack - t0, sender_cpu, cpu(RUSAGE_CHILDREN), total - acked);
  return 0;
}
