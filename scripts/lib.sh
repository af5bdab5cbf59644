# Shared helpers for the ensure-* scripts. Source it; do not run it.

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# url_host URL DEFAULT_PORT -> prints "host port" of a scheme://[user[:pass]@]host[:port][/...] URL
url_host_port() {
  local rest=${1#*://}
  rest=${rest%%/*}
  rest=${rest##*@}
  local host=${rest%:*} port=${rest##*:}
  [[ "$rest" == *:* ]] || { host=$rest; port=$2; }
  printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$2}"
}

is_loopback() { [[ "$1" == "127."* || "$1" == "localhost" || "$1" == "::1" || "$1" == "[::1]" ]]; }

tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# apt_install PACKAGE... : installs Debian packages when we are root on Debian, else explains and fails.
apt_install() {
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then
    log "installing $* with sudo apt-get"
    sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    die "$* is not installed and cannot be installed automatically here (needs root on Debian/Ubuntu). Install it, or point the URL at a running server."
  fi
}

wait_for() { # wait_for SECONDS CMD... : retries CMD every 0.2 s
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
