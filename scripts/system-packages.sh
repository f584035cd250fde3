#!/usr/bin/env bash
# Install the Debian packages that are missing: the IPAexGothic font and poppler (slips),
# venv support, PostgreSQL (the production database the tests also run on), PgBouncer (the
# pooler test), pg_dump's client (the restore drill) and chromium.
set -euo pipefail
missing=()
fc-list 2>/dev/null | grep -qi ipaexg || missing+=(fonts-ipaexfont)
command -v pdftoppm >/dev/null || missing+=(poppler-utils)
command -v fc-match >/dev/null || missing+=(fontconfig)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v pg_isready >/dev/null || missing+=(postgresql)
[ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)  # the pooler test starts its own, in transaction mode
command -v promtool >/dev/null || missing+=(prometheus)  # promtool checks and unit-tests deploy/prometheus/alerts.yml
[ -x /usr/bin/chromium ] || missing+=(chromium)  # browser tests (Playwright drives Debian's chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
