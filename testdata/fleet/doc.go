// Package fleet proves the Ansible rollout (packaging/ansible, README "Many
// machines") on a fleet of lab containers: four hosts, bookworm and trixie
// mixed, each with sshd on a loopback port of its own and myapp on another,
// installed from the packages `make deb` builds, behind a real HAProxy
// (Debian's) on the test machine.
//
// TestFleet (`make fleet`, as root) installs myapp with the role, then,
// under constant load through HAProxy from the lab's load client (no
// retries), rolls out a good release across all four hosts and a broken
// one that must stop after the first host with that host still serving the
// previous version; a second run of the good release must change nothing;
// and bad input (an unreachable host, a host without drover, a package
// dpkg cannot read, a package apt cannot install) must stop the play with a
// clear message and no host changed. Every request through HAProxy must
// succeed.
//
// Containers, HAProxy and ansible-playbook are torn down by the pid the
// test started, in t.Cleanup and on SIGINT/SIGTERM (lab.HandleInterrupts).
package fleet
