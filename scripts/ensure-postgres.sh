#!/usr/bin/env bash
# Make sure PostgreSQL answers at $1 (a postgres:// URL). When it does not and the URL points at
# this machine, start the local cluster, installing PostgreSQL with apt if missing, and give the
# URL's user the URL's password so password (or trust) authentication works.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

url=${1:?usage: ensure-postgres.sh postgres://user:pass@host:port/db}
read -r host port < <(url_host_port "$url" 5432)
creds=${url#*://}; creds=${creds%%@*}
user=${creds%%:*}; password=${creds#*:}
[[ "$creds" == *:* ]] || password=""

postgres_answers() { tcp_open "$host" "$port"; }

postgres_answers && exit 0
is_loopback "$host" || die "PostgreSQL at $host:$port does not answer; start it or fix the URL."
installed_now=0
if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  apt_install postgresql
  installed_now=1
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! ls /etc/postgresql/"$version"/main >/dev/null 2>&1; then
  log "creating PostgreSQL $version cluster 'main'"
  pg_createcluster "$version" main --port "$port" >/dev/null
fi
log "starting PostgreSQL $version on port $port"
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
wait_for 30 postgres_answers || die "PostgreSQL did not come up; see /var/log/postgresql/"
if [[ $installed_now -eq 1 && -n "$password" ]]; then
  log "setting the password of role '$user' (fresh install)"
  su postgres -c "psql -q -p $port -c \"DO \\\$\\\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user') THEN CREATE ROLE \\\"$user\\\" LOGIN SUPERUSER; END IF;
    ALTER ROLE \\\"$user\\\" PASSWORD '$password'; END \\\$\\\$;\""
fi
