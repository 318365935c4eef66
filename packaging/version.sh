#!/bin/sh
# Prints the package version of this checkout, made from `git describe` so
# that dpkg and rpm order builds the way git does. Tags are vX.Y.Z:
#   at tag v1.2.3                      -> 1.2.3
#   at tag v1.3.0-rc1                  -> 1.3.0~rc1        ("~" sorts before 1.3.0)
#   5 commits after v1.2.3, abc1234    -> 1.2.3+git5.abc1234 (after 1.2.3, before 1.2.4)
#   no tag yet, 23 commits, abc1234    -> 0.0.0~git23.abc1234 (before any release)
#   uncommitted changes                -> the above with .dirty appended
# The commit count grows along a branch, so later builds sort later. The
# packages add the revision ("-1") themselves.
set -eu
cd "$(dirname "$0")/.."
dirty=""
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || dirty=".dirty"
if d=$(git describe --tags --long --match 'v[0-9]*' 2>/dev/null); then
	# vTAG-COUNT-gSHA; TAG itself may contain "-".
	sha=${d##*-g}
	rest=${d%-g*}
	count=${rest##*-}
	tag=${rest%-*}
	base=$(printf '%s' "${tag#v}" | tr '-' '~')
	if [ "$count" = 0 ] && [ -z "$dirty" ]; then
		echo "$base"
	else
		echo "$base+git$count.$sha$dirty"
	fi
else
	echo "0.0.0~git$(git rev-list --count HEAD).$(git rev-parse --short HEAD)$dirty"
fi
