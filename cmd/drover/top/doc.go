// Package top is drover top's live screen: a bubbletea program that polls
// a running drover once a second and shows its unit, its workers (with a
// short CPU history each), a reload in progress and the workers' latest
// log lines, and lets the operator reload and scale it.
//
// It owns the screen and the keys, nothing else: where the data comes from
// (the control socket, systemd over D-Bus, the journal) is a Source that
// package main implements, so the model is tested with a fake one. What
// came from workers is shown with control characters escaped
// (output.Sanitize), as drover status does, so a worker cannot act on the
// operator's terminal.
package top
