#!/usr/bin/env bash
# unpack-deb.sh PACKAGE DIR: Debian's PACKAGE for this machine's release,
# unpacked into DIR without installing it (no maintainer scripts run, no
# service starts). For tools the tests use from a package that would
# otherwise start a daemon here (prometheus).
set -euo pipefail
pkg=$1 dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
apt-get download "$pkg" 2>/dev/null || { apt-get update -qq && apt-get download "$pkg"; }
mkdir -p "$dir.new"
dpkg-deb -x "$pkg"_*.deb "$dir.new"
rm -rf "$dir"
mv "$dir.new" "$dir"
echo "unpacked $(basename "$pkg"_*.deb) into $dir"
