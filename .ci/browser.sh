# Sourced by `make test`: the browser tests drive Debian's Chromium with Playwright (never a downloaded
# browser) and need CJK fonts to render the Chinese pages; install both if missing (like postgres.sh).
if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null) || true
  fi
fi
[ -x /usr/bin/chromium ] || echo "Chromium not available: the browser tests will fail" >&2
