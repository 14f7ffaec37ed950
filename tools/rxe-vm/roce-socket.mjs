// The host's RoCE UDP socket for a softroce peer in the guest's netns: node cannot set the socket
// options kernel rxe interop needs (IP_PMTUDISC_DO for IPv4, UDP_NO_CHECK6_RX for IPv6), so a perl
// one-liner makes the socket, binds it to the tap address on port 4791, and execs node with its fd
// in SOFTROCE_FD (softroce({ socket: { fd } })).

/** perl -e's program: argv v6 (0/1), port, address, then the command to exec. */
export const ROCE_SOCKET_LAUNCHER = `use Socket qw(:all); use Fcntl; my ($v6, $port, $addr) = splice(@ARGV, 0, 3);
  socket(my $s, $v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0) or die "socket: $!";
  $v6 ? setsockopt($s, 17, 102, 1) : setsockopt($s, IPPROTO_IP, 10, 2) or die "setsockopt: $!";
  bind($s, $v6 ? pack_sockaddr_in6($port, inet_pton(AF_INET6, $addr)) : pack_sockaddr_in($port, inet_aton($addr))) or die "bind $addr: $!";
  fcntl($s, F_SETFD, 0) or die; $ENV{SOFTROCE_FD} = fileno($s); exec(@ARGV) or die "exec: $!"`

/** perl's argv: run `script` with node (this process's), its RoCE socket on the host's tap address of family `fam`. */
export function roceSocketArgs(fam, script, args = []) {
  return ['-e', ROCE_SOCKET_LAUNCHER, fam === 6 ? '1' : '0', '4791', fam === 6 ? 'fd77::1' : '10.77.0.1', process.execPath, script, ...args]
}
