#!/bin/sh
# Install the system packages the test suite needs on a fresh Debian/Ubuntu machine:
# headless Chromium, which tests/test_report.py uses to open the HTML report, and its chromium-driver,
# through which tests/test_label_browser.py (Selenium) clicks through the label page.
# Does nothing when both are already there; says so (and exits 0) where apt-get is missing.
set -eu

if { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } \
    && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: no apt-get here; install Chromium and chromium-driver yourself (the browser tests will skip)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
