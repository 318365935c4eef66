#!/bin/sh
# changelog.sh PACKAGE VERSION: prints, gzipped as Debian wants it
# (gzip -9n, reproducible), a Debian changelog with one entry for this
# build. The project's history is its git log; the entry names the commit
# and is dated like it, so rebuilding the same commit gives the same file.
set -eu
pkg=$1 version=$2
cd "$(dirname "$0")/.."
: "${PKG_MAINTAINER:=drover developers <drover@users.noreply.github.com>}"
{
	printf '%s (%s) unstable; urgency=medium\n\n' "$pkg" "$version"
	printf '  * Built from git commit %s.\n' "$(git rev-parse --short HEAD)"
	printf '    History: https://github.com/droverd/drover/commits/%s\n\n' "$(git rev-parse --short HEAD)"
	printf ' -- %s  %s\n' "$PKG_MAINTAINER" "$(git log -1 --format=%cD)"
} | gzip -9n
