#!/usr/bin/env bash
# Make sure Redis answers at $1 (default $REDIS_URL). When it does not and the URL points at
# this machine, start a local redis-server bound to loopback, installing it with apt if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

url=${1:-${REDIS_URL:-redis://127.0.0.1:6379/0}}
read -r host port < <(url_host_port "$url" 6379)

redis_answers() { # a PING that gets any RESP reply (+PONG, or -NOAUTH from a protected server)
  timeout 3 bash -c "exec 3<>/dev/tcp/$host/$port && printf 'PING\r\n' >&3 && IFS= read -r reply <&3 && [[ \$reply == [+-]* ]]" 2>/dev/null
}

redis_answers && exit 0
is_loopback "$host" || die "Redis at $url does not answer; start it or set REDIS_URL."
command -v redis-server >/dev/null || apt_install redis-server
mkdir -p var/redis
log "starting redis-server on 127.0.0.1:$port (data in memory only, log var/redis/redis-$port.log)"
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --dir "$PWD/var/redis" --logfile "$PWD/var/redis/redis-$port.log" --pidfile "$PWD/var/redis/redis-$port.pid"
wait_for 10 redis_answers || die "redis-server did not come up; see var/redis/redis-$port.log"
