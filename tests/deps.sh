#!/usr/bin/env bash
# Build dependencies of minivmm (Debian 12). Installs what is missing when
# run as root, else prints the exact apt-get line to run.
set -eu
pkgs="build-essential clang libcriterion-dev liburing-dev libfdt-dev libseccomp-dev libslirp-dev libglib2.0-dev libpci-dev pkg-config acpica-tools"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$missing"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
else
    echo "deps: missing packages; run: sudo apt-get install -y$missing" >&2
    exit 1
fi
