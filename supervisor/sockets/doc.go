// Package sockets owns the listening sockets drover shares with its
// workers: the ones systemd passes by socket activation (LISTEN_FDS,
// LISTEN_FDNAMES, LISTEN_PID, validated exactly), and in dev mode the
// --listen addresses drover opens itself, blocking, as systemd opens them.
//
// Specs: sd_listen_fds(3) and sd_listen_fds_with_names(3); systemd.socket(5)
// (ListenStream=, FileDescriptorName=, Accept=no).
package sockets
