// Package lab proves drover under a real, booted systemd: Debian bookworm
// (systemd 252) and trixie (systemd 257), each booted as a container with
// systemd-nspawn, with the freshly built drover, example worker (installed
// as /usr/bin/myapp), testworker and the shipped units/ installed.
//
// Run it as root with `make lab` (go test -v ./testdata/lab/; ./... skips
// testdata). TestLab runs every scenario on both distros, as subtests
// TestLab/<distro>/<scenario>, each logging the commands it ran inside the
// container and what they printed, then prints a pass/fail table: the
// start, handoff, restart, stop, readiness and watchdog scenarios of the
// foundation; reloads under load with rollback (reload_test.go); journald
// fields and bursts (journal_test.go); drover status, scale and init
// (operator_test.go). TestPackages installs, upgrades under load, removes
// and purges the .deb packages (packages_test.go).
//
// The first run installs systemd-container and debootstrap when missing and
// builds the root filesystems into /var/cache/drover-lab/<distro>-<key>,
// where key hashes everything that goes into one (distro, package list,
// preparation steps), so changing the list builds a new cache. A rootfs is
// built in a temporary directory and renamed into place, so an interrupted
// build never leaves a half cache behind. Containers boot with
// --volatile=overlay: a run never changes the cache.
//
// Files are bind-mounted read-only, except /usr/bin/myapp: a copy in the
// container's overlay (put back by every scenario's reset), so that a
// scenario can install new builds over it by rename, as a package upgrade
// does (reload-under-load).
//
// Containers share the host's network (no --private-network): each scenario
// listens on a port the kernel just handed out on 127.0.0.1, and the test
// talks HTTP to it from the host. Machines are torn down by the pid the lab
// started, in t.Cleanup and on SIGINT/SIGTERM; nspawn also gets
// Pdeathsig, for the case where the test binary itself is killed.
//
// `make lab-shell DISTRO=trixie` (shell.sh, package shell) boots one distro
// the same way and opens a shell inside it.
package lab
