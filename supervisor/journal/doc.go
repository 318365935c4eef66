// Package journal speaks journald's native protocol: entries as datagrams
// of KEY=value fields (the binary-safe form for values with newlines), a
// sealed memfd for entries too big for a datagram, a send deadline and the
// fallback rule shared by every writer (Link), and drover's own log as a
// logrus Hook. journaltest holds a fake journald for tests.
//
// Spec: https://systemd.io/JOURNAL_NATIVE_PROTOCOL/ and systemd.journal-fields(7);
// JOURNAL_STREAM in systemd.exec(5).
package journal
