#!/usr/bin/env bash
# Install Debian's chromium for the JupyterLab browser test (tests/test_browser.py).
#
# Playwright's own browser download is not used (it needs hosts other than the package mirrors);
# the test drives /usr/bin/chromium instead. Safe to run again: when the browser is already there
# this only checks it and returns at once. Needs root (apt-get) when something must be installed.
#
# Environment:
#   PEMD_CHROMIUM  path of the browser binary to look for (default /usr/bin/chromium)
set -euo pipefail

CHROMIUM=${PEMD_CHROMIUM:-/usr/bin/chromium}
# Fonts so that screenshots show text (DejaVu is small and covers JupyterLab's UI text).
PACKAGES=(chromium fonts-dejavu-core)

have_fonts() {
    [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && return 0
    command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list 2>/dev/null | head -n 1)" ]
}

if [ -x "$CHROMIUM" ] && have_fonts; then
    echo "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install_browser.sh: $CHROMIUM (or a font) is missing and installing it needs root." >&2
    echo "Run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PACKAGES[*]}" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: apt-get not found; install chromium so that $CHROMIUM exists." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null

if [ ! -x "$CHROMIUM" ]; then
    echo "install_browser.sh: installed ${PACKAGES[*]} but $CHROMIUM is still missing." >&2
    exit 1
fi
echo "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
