#!/usr/bin/env bash
# Placeholder until the browser test lands (issue 6): installs Debian's chromium for it.
set -euo pipefail
exit 0
