#!/usr/bin/env bash
# Install Debian's chromium for the report test's headless-browser check (tests/report) when it is
# missing and we are root with apt-get. Quiet, and never fails the caller: without a browser that check skips.
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1; then
        echo "setup_browser: could not install chromium; the report's browser test will be skipped" >&2
    fi
else
    echo "setup_browser: chromium not found (install it as root: apt-get install chromium); the report's browser test will be skipped" >&2
fi
exit 0
