/**
 * How a softroce peer on the host meets the rxe-vm guest: perl makes the host's RoCE UDP socket on
 * port 4791 of the tap link's address (IP_PMTUDISC_DO on IPv4, UDP_NO_CHECK6_RX on IPv6, as kernel
 * rxe interop needs), clears its close-on-exec flag and execs node on the child script with the
 * socket's fd in SOFTROCE_FD. Run it in the guest's netns: `guest.run('perl', roceLauncherArgs(…))`.
 * Used by softroce's and provider-verbs' guest tests.
 */

const LAUNCHER = `use Socket qw(:all); use Fcntl; my ($v6, $port, $addr) = splice(@ARGV, 0, 3);
  socket(my $s, $v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0) or die "socket: $!";
  $v6 ? setsockopt($s, 17, 102, 1) : setsockopt($s, IPPROTO_IP, 10, 2) or die "setsockopt: $!";
  bind($s, $v6 ? pack_sockaddr_in6($port, inet_pton(AF_INET6, $addr)) : pack_sockaddr_in($port, inet_aton($addr))) or die "bind $addr: $!";
  fcntl($s, F_SETFD, 0) or die; $ENV{SOFTROCE_FD} = fileno($s); exec(@ARGV) or die "exec: $!"`

/** perl's arguments: the launcher for family `fam` (host 10.77.0.1 / fd77::1), then node, `script` and its `args`. */
export function roceLauncherArgs(fam: 4 | 6, script: string, ...args: string[]): string[] {
  return ['-e', LAUNCHER, fam === 6 ? '1' : '0', '4791', fam === 4 ? '10.77.0.1' : 'fd77::1', process.execPath, script, ...args]
}
