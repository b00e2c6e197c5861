#!/usr/bin/env bash
# Install what tests/test_browser.py needs: Debian's chromium (Playwright's own browser
# download needs the open internet) and Playwright's Python package, which drives it
# through executable_path=/usr/bin/chromium. Idempotent: a second run is quick.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    sudo_=""
    if [ "$(id -u)" -ne 0 ]; then sudo_="sudo"; fi
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if ! python -c "import playwright" >/dev/null 2>&1; then
    python -m pip install -q playwright
fi

chromium --version
python -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"
