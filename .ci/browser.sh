# Sourced by `make test`: the browser tests drive Debian's Chromium with Playwright (never a downloaded
# browser). They need CJK fonts for the Chinese pages and Chromium's Chinese UI strings (chromium-l10n:
# the date pickers); install what is missing (like postgres.sh does for PostgreSQL).
if [ ! -x /usr/bin/chromium ] || [ ! -f /usr/lib/chromium/locales/zh-CN.pak ] || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-l10n fonts-noto-cjk >/dev/null) || true
  fi
fi
[ -x /usr/bin/chromium ] || echo "Chromium not available: the browser tests will fail" >&2
