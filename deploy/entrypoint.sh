#!/bin/sh
# The image's entrypoint. `docker run IMAGE <command> [args...]`:
#   ingest | router | bot | outbox | history | console ...   python -m services.<command>
#   migrate                  create the database if needed and apply the store's migrations, once
#   simulator [args...]      the WhatsApp Cloud API simulator, in local-stack images only
#   probe PORT [PATH]        exit 0 iff http://127.0.0.1:PORT/PATH (default /readyz) answers 2xx
#   anything else            run as a plain command (python, sh, ...)
# Every branch execs, so the Python process is PID 1 and receives SIGTERM itself.
set -eu

app_dir=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)

usage() {
  sed -n '2,7s/^# \{0,1\}//p' "$0"
}

if [ "$#" -eq 0 ]; then
  usage >&2
  exit 64
fi
command=$1
shift

case "$command" in
  help | -h | --help)
    usage
    ;;
  migrate)
    exec python -c '
import asyncio

from baton.logging import configure_logging
from baton.settings import Settings
from baton.store import open_store


async def migrate(url: str) -> None:
    store = await open_store(url, migrate=True)
    await store.close()


settings = Settings()
configure_logging("migrate", level=settings.log_level, json=settings.log_json)
asyncio.run(migrate(settings.store_url))
' "$@"
    ;;
  simulator)
    if [ ! -d "$app_dir/simulator" ]; then
      echo "this image has no simulator: build it with --build-arg BATON_WITH_SIMULATOR=true" >&2
      exit 64
    fi
    # Sign status webhooks and accept Graph calls with the same secrets Baton uses; arguments
    # given after `simulator` come last, so they win.
    if [ -n "${BATON_APP_SECRET:-}" ]; then
      set -- --app-secret "$BATON_APP_SECRET" "$@"
    fi
    if [ -n "${BATON_ACCESS_TOKEN:-}" ]; then
      set -- --token "$BATON_ACCESS_TOKEN" "$@"
    fi
    exec python -m simulator serve \
      --host "${SIMULATOR_HOST:-0.0.0.0}" \
      --port "${SIMULATOR_PORT:-8090}" \
      --webhook-url "${SIMULATOR_WEBHOOK_URL:-http://ingest:8080/webhook}" \
      "$@"
    ;;
  probe)
    if [ "$#" -lt 1 ]; then
      echo "usage: probe PORT [PATH]" >&2
      exit 64
    fi
    exec python -c '
import sys
import urllib.request

urllib.request.urlopen(sys.argv[1], timeout=3)
' "http://127.0.0.1:$1${2:-/readyz}"
    ;;
  *)
    if [ -f "$app_dir/services/$command/__main__.py" ]; then
      exec python -m "services.$command" "$@"
    fi
    exec "$command" "$@"
    ;;
esac
