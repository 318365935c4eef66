#!/usr/bin/env bash
# check.sh DIST VERSION: checks the packages `make deb rpm` built into DIST
# (make packages, part of make test): lintian and rpmlint, what each
# package holds and declares, and an RPM install, upgrade and erase in a
# scratch root with a stand-in systemctl that records what the scriptlets
# asked of it. The real install/upgrade/remove/purge under systemd is the
# lab's (testdata/lab/packages_test.go).
set -euo pipefail
dist=$1 version=$2
cd "$(dirname "$0")/.."
arch=$(dpkg --print-architecture)
rpmarch=$(uname -m)
passed=0 failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
contains() { grep -qF -- "$2" <<<"$1"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

declare -A deb rpm
for p in drover myapp; do
	deb[$p]=$dist/${p}_${version}-1_${arch}.deb
	rpm[$p]=$dist/${p}-${version}-1.${rpmarch}.rpm
	for f in "${deb[$p]}" "${rpm[$p]}"; do
		[ -f "$f" ] || { echo "FAIL $f is missing: run make deb rpm"; exit 1; }
	done
done

echo "== lintian (accepted findings: packaging/lintian/*)"
# Every accepted warning is overridden in the package, with its reason, so
# any E: or W: line left is new and fails. (--fail-on would count the
# overridden ones too once --show-overrides lists them.)
out=$(lintian --display-info --show-overrides "${deb[@]}" 2>&1 | grep -v 'running with root privileges' || true)
echo "$out"
check "lintian: no errors, no warnings not overridden" bash -c '! grep -q "^[EW]: " <<<"$0"' "$out"
check "lintian: ran on both packages" bash -c 'grep -q "^O: drover: " <<<"$0" && grep -q "^O: myapp: " <<<"$0"' "$out"

echo "== rpmlint (accepted findings: packaging/rpmlint.toml)"
out=$(rpmlint -c packaging/rpmlint.toml "${rpm[@]}" 2>&1) || true
echo "$out" | sed -n '/^checks:/,$p'
check "rpmlint: 0 errors, 0 warnings" contains "$out" " 0 errors, 0 warnings"

echo "== .deb contents"
for p in drover myapp; do
	x=$tmp/deb-$p
	dpkg-deb -x "${deb[$p]}" "$x"
	dpkg-deb -e "${deb[$p]}" "$x/DEBIAN"
	check "$p.deb: version $version-1" test "$(dpkg-deb -f "${deb[$p]}" Version)" = "$version-1"
	check "$p.deb: /usr/bin/$p is a static executable" bash -c "file -L '$x/usr/bin/$p' | grep -q 'ELF.*executable.*statically linked'"
	check "$p.deb: /usr/bin/$p is stripped" bash -c "file -L '$x/usr/bin/$p' | grep -q ', stripped'"
	check "$p.deb: man page $p(1)" bash -c "zcat '$x/usr/share/man/man1/$p.1.gz' | grep -q '^\.TH ${p^^} 1'"
	check "$p.deb: DEP-5 copyright, Apache-2.0" bash -c "head -1 '$x/usr/share/doc/$p/copyright' | grep -q copyright-format/1.0 && grep -q '^License: Apache-2.0' '$x/usr/share/doc/$p/copyright'"
	check "$p.deb: changelog.Debian.gz names $version-1" bash -c "zcat '$x/usr/share/doc/$p/changelog.Debian.gz' | head -1 | grep -qF '$p ($version-1)'"
done
x=$tmp/deb-drover
check "drover.deb: drover version says $version" contains "$("$x/usr/bin/drover" version 2>&1)" "$version"
for f in /usr/share/bash-completion/completions/drover /usr/share/zsh/vendor-completions/_drover /usr/share/fish/vendor_completions.d/drover.fish; do
	check "drover.deb: completion $f" grep -q 'drover' "$x$f"
done
check "drover.deb: bash completion is valid bash" bash -n "$x/usr/share/bash-completion/completions/drover"
check "drover.deb: units/ as examples" cmp -s units/myapp.service "$x/usr/share/doc/drover/examples/myapp.service"
check "drover.deb: postinst only, no units" bash -c "test \"\$(ls '$x/DEBIAN' | grep 'inst\|rm')\" = postinst && ! find '$x' -path '*/systemd/system/*' | grep -q ."
check "drover.deb: postinst is valid sh" sh -n "$x/DEBIAN/postinst"
check "drover.deb: /etc/default/drover is a conffile" grep -qx /etc/default/drover "$x/DEBIAN/conffiles"
check "drover.deb: the node preload is the one drover embeds" cmp -s supervisor/nodejs/drover.js "$x/usr/lib/drover/node/drover.js"
x=$tmp/deb-myapp
check "myapp.deb: depends on drover and init-system-helpers" bash -c "dpkg-deb -f '${deb[myapp]}' Depends | grep -q '^drover, init-system-helpers'"
check "myapp.deb: shipped units are units/" bash -c "cmp -s units/myapp.socket '$x/usr/lib/systemd/system/myapp.socket' && cmp -s units/myapp.service '$x/usr/lib/systemd/system/myapp.service'"
check "myapp.deb: /etc/myapp/myapp.conf is its only conffile" test "$(cat "$x/DEBIAN/conffiles")" = /etc/myapp/myapp.conf
check "myapp.deb: postinst enables and starts the socket" bash -c "grep -q 'deb-systemd-helper enable \"\$socket\"' '$x/DEBIAN/postinst' && grep -q 'deb-systemd-invoke start \"\$socket\"' '$x/DEBIAN/postinst'"
check "myapp.deb: postinst reloads on upgrade" grep -q 'deb-systemd-invoke try-reload-or-restart "$service"' "$x/DEBIAN/postinst"
check "myapp.deb: prerm stops both units on remove only" grep -q '"$1" = remove .*deb-systemd-invoke stop myapp.socket myapp.service\|deb-systemd-invoke stop myapp.socket myapp.service' "$x/DEBIAN/prerm"
check "myapp.deb: postrm purges the enable state" grep -q 'deb-systemd-helper purge myapp.socket myapp.service' "$x/DEBIAN/postrm"
for s in postinst prerm postrm; do
	check "myapp.deb: $s is valid sh" sh -n "$x/DEBIAN/$s"
done

echo "== .rpm metadata (rpm -qpi, -qpl, --scripts)"
for p in drover myapp; do
	info=$(rpm -qpi "${rpm[$p]}" 2>/dev/null)
	check "$p.rpm: -qpi Version $version" contains "$info" $'\nVersion     : '"$version"$'\n'
	check "$p.rpm: -qpi Release 1" contains "$info" $'\nRelease     : 1\n'
	check "$p.rpm: -qpi License Apache-2.0" contains "$info" $'\nLicense     : Apache-2.0\n'
	list=$(rpm -qpl "${rpm[$p]}" 2>/dev/null)
	check "$p.rpm: -qpl has /usr/bin/$p" grep -qx "/usr/bin/$p" <<<"$list"
	check "$p.rpm: -qpl has its man page" grep -qx "/usr/share/man/man1/$p.1.gz" <<<"$list"
	docs=$(rpm -qpd "${rpm[$p]}" 2>/dev/null)
	check "$p.rpm: man page is %doc" grep -qx "/usr/share/man/man1/$p.1.gz" <<<"$docs"
	check "$p.rpm: copyright is %doc" grep -qx "/usr/share/doc/$p/copyright" <<<"$docs"
done
list=$(rpm -qpl "${rpm[drover]}" 2>/dev/null)
for f in /usr/share/bash-completion/completions/drover /usr/share/zsh/site-functions/_drover /usr/share/fish/vendor_completions.d/drover.fish; do
	check "drover.rpm: -qpl has completion $f" grep -qx "$f" <<<"$list"
done
check "drover.rpm: posttrans runs drover upgrade --all" bash -c "rpm -qp --scripts '${rpm[drover]}' 2>/dev/null | grep -q 'drover upgrade --all'"
check "drover.rpm: -qpl has the node preload" bash -c "rpm -qpl '${rpm[drover]}' 2>/dev/null | grep -qx /usr/lib/drover/node/drover.js"
check "myapp.rpm: requires drover" bash -c "rpm -qp --requires '${rpm[myapp]}' 2>/dev/null | grep -qx drover"
check "myapp.rpm: /etc/myapp/myapp.conf is %config(noreplace)" bash -c "rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' '${rpm[myapp]}' 2>/dev/null | grep -qx 'cn /etc/myapp/myapp.conf'"
scripts=$(rpm -qp --scripts "${rpm[myapp]}" 2>/dev/null)
for s in postinstall preuninstall postuninstall; do
	check "myapp.rpm: has a $s scriptlet" contains "$scripts" "$s scriptlet (using /bin/sh)"
done

echo "== RPM install, upgrade, erase in a scratch root (rpm --root, --nodeps)"
# The scriptlets run chrooted into the root, so it gets a /bin/sh (this
# host's dash and the libraries it needs), /dev/null, /run/systemd/system
# (systemd "running") and a systemctl that only logs its arguments.
root=$tmp/root
mkdir -p "$root"/{bin,usr/bin,dev,run/systemd/system,var/log,tmp}
for f in /bin/sh $(ldd "$(readlink -f /bin/sh)" | grep -o '/[^ ]*'); do
	mkdir -p "$root$(dirname "$f")"
	cp -L "$f" "$root$f"
done
mknod -m 666 "$root/dev/null" c 1 3
printf '#!/bin/sh\necho "$*" >> /var/log/systemctl.log\n' > "$root/usr/bin/systemctl"
chmod 755 "$root/usr/bin/systemctl"
calls() { cat "$root/var/log/systemctl.log" 2>/dev/null; : > "$root/var/log/systemctl.log"; }
rpm --root "$root" --initdb
rpm --root "$root" -i --nodeps "${rpm[drover]}" "${rpm[myapp]}" 2>&1
check "rpm -i: both installed" rpm --root "$root" -q drover myapp
check "rpm -i: files in place" test -x "$root/usr/bin/drover" -a -x "$root/usr/bin/myapp" -a -f "$root/usr/lib/systemd/system/myapp.socket" -a -f "$root/etc/myapp/myapp.conf"
got=$(calls)
echo "  systemctl calls: ${got//$'\n'/; }"
check "rpm -i: %post presets both units, starts nothing" test "$got" = "--no-reload preset myapp.socket myapp.service"
echo "# edited by the admin" >> "$root/etc/myapp/myapp.conf"
# The same package again is an upgrade for the scriptlets: new %post with
# $1=2, then the old one's %preun and %postun with $1=1.
rpm --root "$root" -U --nodeps --replacepkgs "${rpm[myapp]}" 2>&1
got=$(calls)
echo "  systemctl calls: ${got//$'\n'/; }"
check "rpm -U: %postun daemon-reloads and reloads, no preset, no stop" test "$got" = $'daemon-reload\ntry-reload-or-restart myapp.service'
check "rpm -U: the admin's conffile edit is kept" grep -q "edited by the admin" "$root/etc/myapp/myapp.conf"
rpm --root "$root" -e myapp drover 2>&1
got=$(calls)
echo "  systemctl calls: ${got//$'\n'/; }"
check "rpm -e: %preun disables and stops both, %postun daemon-reloads" test "$got" = $'--no-reload disable --now myapp.socket myapp.service\ndaemon-reload'
check "rpm -e: files gone" test ! -e "$root/usr/bin/myapp" -a ! -e "$root/usr/bin/drover" -a ! -e "$root/usr/lib/systemd/system/myapp.service"
check "rpm -e: the edited conffile is kept as .rpmsave" test -f "$root/etc/myapp/myapp.conf.rpmsave" -a ! -e "$root/etc/myapp/myapp.conf"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
