#!/usr/bin/env bash
# Start the services the tests need if they are not answering (this machine kind starts
# them before each session; a stopped one is started with the same commands).
set -u

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! redis_up; then
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 30); do redis_up && break; sleep 1; done
fi
# The IMAP ingestion tests start their own Dovecot on a free loopback port (tests/feedback/test_imap.py).
if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then
  echo "services: installing dovecot-imapd"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q dovecot-imapd >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dovecot-imapd >/dev/null 2>&1; } \
    || echo "services: could not install dovecot-imapd" >&2
fi
# The DNS tests start their own NSD authoritative server on a free loopback port (tests/dnsserver.py).
if ! command -v nsd >/dev/null 2>&1 && [ ! -x /usr/sbin/nsd ]; then
  echo "services: installing nsd"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q nsd >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q nsd >/dev/null 2>&1; } \
    || echo "services: could not install nsd" >&2
fi
# The web admin's browser tests drive Debian's chromium with Playwright (tests/web/admin/test_browser.py);
# CJK fonts so the Chinese pages and screenshots render.
if ! command -v chromium >/dev/null 2>&1 || [ ! -d /usr/share/fonts/opentype/noto ]; then
  echo "services: installing chromium and fonts-noto-cjk"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium fonts-noto-cjk >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium fonts-noto-cjk >/dev/null 2>&1; } \
    || echo "services: could not install chromium" >&2
fi
pg_up || { echo "services: PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
redis_up || { echo "services: Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }
