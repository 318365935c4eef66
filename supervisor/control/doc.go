// Package control is drover's control socket: the protocol `drover reload`
// (systemd's ExecReload=), `drover status` and `drover scale` speak to a
// running drover, its server with the peer-credential check, and its
// client.
//
// The protocol is drover's own: one JSON Request on one line, one JSON
// Response on one line, then the connection closes. Its field names are
// part of drover's interface (`drover status --json` prints Status): fields
// are only ever added. Peer credentials: SO_PEERCRED in unix(7).
package control
