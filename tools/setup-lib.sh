# setup-lib.sh - sourced by the project's setup scripts (tools/rxe-vm/build.sh, tools/setup-host.sh,
# .ci/run): detect and install Debian packages, and report a failed step with its command, exit code
# and the last lines of its output instead of ending silently.
#
#   source tools/setup-lib.sh
#   setup_begin NAME LOGFILE   # NAME prefixes messages; the script's stderr is also kept in LOGFILE
#   setup_step "host packages" # names the step a failure is reported under
#   missing_packages PKG...    # prints the ones not installed, one per line (never fails)
#   install_packages PKG...    # apt-get install, non-interactive, with apt-get update when needed

SETUP_NAME=setup SETUP_STEP=start SETUP_LOG=

setup_begin() { # NAME LOGFILE
  SETUP_NAME=$1 SETUP_LOG=$2
  : > "$SETUP_LOG"
  # Keep a copy of everything written to stderr, so a failure can show its last lines.
  exec 8>&2 2> >(tee -a "$SETUP_LOG" >&8)
  set -E
  trap 'setup_failed $? $LINENO "$BASH_COMMAND"' ERR
}

setup_step() { SETUP_STEP=$1; }

setup_failed() { # CODE LINE COMMAND
  local code=$1 line=$2 cmd=$3
  # Subshells, command and process substitutions inherit the trap (set -E); their failures are
  # the caller's to judge (e.g. SIGPIPE of `tail` feeding `xz`), so only the script itself reports.
  [ "$BASHPID" = "$$" ] || return "$code"
  trap - ERR
  sleep 0.2 # let tee write the failed command's last output
  {
    echo "[$SETUP_NAME] FAILED at step '$SETUP_STEP': \`$cmd\` exited with code $code (${BASH_SOURCE[1]:-$0}:$line)"
    if [ -n "$SETUP_LOG" ] && [ -s "$SETUP_LOG" ]; then
      echo "[$SETUP_NAME] last lines of output (full log: $SETUP_LOG):"
      tail -n 25 "$SETUP_LOG" | sed 's/^/    | /'
    fi
  } >&8
  exit "$code"
}

missing_packages() { # PKG...: prints each one that is not installed
  # dpkg-query exits 1 when any package was never installed ("no packages found matching ...");
  # the packages it does know are still listed, so its status is not the answer, its output is.
  local status
  status=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null || true)
  local p
  for p in "$@"; do
    grep -qx "$p installed" <<<"$status" || echo "$p"
  done
}

install_packages() { # PKG...
  [ $# -gt 0 ] || return 0
  echo "[$SETUP_NAME] installing with apt-get: $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  local opts=(-y -qq --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  # Lists may be missing or stale on a fresh machine: update and try again before giving up.
  if ! apt-get install "${opts[@]}" "$@" >&2; then
    echo "[$SETUP_NAME] apt-get install failed; running apt-get update and trying again" >&2
    apt-get update -qq >&2
    apt-get install "${opts[@]}" "$@" >&2
  fi
  local still
  still=$(missing_packages "$@")
  if [ -n "$still" ]; then
    echo "[$SETUP_NAME] apt-get reported success but these are still not installed: $(echo $still)" >&2
    return 1
  fi
}
