#!/bin/sh
# Install the system packages the test suite needs on a fresh Debian/Ubuntu machine:
# headless Chromium, which tests/test_report.py uses to open the HTML report.
# Does nothing when Chromium is already there; says so (and exits 0) where apt-get is missing.
set -eu

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: no apt-get here; install Chromium yourself (the report browser test will skip)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
