#!/usr/bin/env bash
# Install Debian's chromium for the JupyterLab browser test (tests/test_browser.py).
#
# Playwright's own browser download is not used (it needs hosts other than the package mirrors);
# the test drives /usr/bin/chromium instead. Safe to run again: when the browser is already there
# this only checks it and returns at once. Needs root (apt-get) when something must be installed;
# without root (a laptop) it says how to enable the browser test and exits 0, so that `make test`
# runs everything else and the browser test skips itself. Under CI (CI set) a missing browser that
# cannot be installed is an error.
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

cannot_install() {  # $1: why
    if [ -n "${CI:-}" ]; then
        echo "install_browser.sh: $1 (CI is set, so the browser test must run)." >&2
        exit 1
    fi
    echo "install_browser.sh: $1; the JupyterLab browser test will be skipped. To enable it:" \
         "sudo apt-get install -y --no-install-recommends ${PACKAGES[*]}" >&2
    exit 0
}

if [ "$(id -u)" -ne 0 ]; then
    cannot_install "$CHROMIUM (or a font) is missing and installing it needs root"
fi

if ! command -v apt-get >/dev/null 2>&1; then
    cannot_install "apt-get not found, so $CHROMIUM cannot be installed here"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null

if [ ! -x "$CHROMIUM" ]; then
    echo "install_browser.sh: installed ${PACKAGES[*]} but $CHROMIUM is still missing." >&2
    exit 1
fi
echo "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
