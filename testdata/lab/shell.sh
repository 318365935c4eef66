#!/usr/bin/env bash
# make lab-shell DISTRO=trixie: boot that distro with the current build of
# drover, the example worker and units/ installed, and open a shell in it.
# Extra arguments go to the program, e.g.: shell.sh -c 'systemctl status' bookworm
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go run ./testdata/lab/shell "$@"
