#!/usr/bin/env bash
# A real browser for the report test: Debian's chromium and its chromedriver (apt-get, like the
# SLURM tests' daemons). Idempotent: nothing to do when both are on PATH.
set -euo pipefail
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi
chromium --version
