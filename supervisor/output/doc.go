// Package output carries worker output to the log. Each worker's stdout
// and stderr are pipes that drover reads (Capture); every line becomes one log entry for a Sink (journald, or text
// on drover's own stdout and stderr in dev mode).
//
// The contract, in the words the README uses:
//
//   - One entry per line. PRIORITY is 6 (info) for stdout and 3 (err) for
//     stderr; a line that starts with a syslog prefix <0> to <7> gets that
//     priority instead, and the prefix is removed, as journald does for
//     StandardOutput=journal (SyslogLevelPrefix=).
//   - Long lines are kept whole up to 48 KiB (journald's LineMax= default).
//     A longer line is split into 48 KiB entries without losing a byte;
//     every entry but the last of such a line has DROVER_LINE_BREAK=line-max,
//     so the line is the concatenation of an entry with DROVER_LINE_BREAK=line-max
//     and the entries after it, up to one without. The syslog prefix is read
//     from the first piece only; the others inherit its priority.
//   - A last line without a newline is sent when the worker closes its
//     output (it exits), with DROVER_LINE_BREAK=eof.
//   - Bytes are passed as they are: NULs and invalid UTF-8 reach the journal
//     unchanged (journalctl shows such a message as "blob data" unless -a).
//     In dev mode the text is escaped for the terminal instead.
//   - drover reads a worker's output continuously into a queue of up to
//     4 MiB per stream, so a worker never waits on the journal. If the queue
//     is full, drover waits for the log sink to make room, at most 100ms at
//     a time: a fast writer is slowed to the journal's pace, never stopped.
//     If the sink frees nothing for 100ms (journald hung), drover drops
//     whole lines until the queue is half empty, and then logs, in the same
//     stream, at priority 4: "drover: N lines of worker output dropped",
//     with DROVER_DROPPED=N. Nothing is lost while the sink keeps moving.
//
// Specs: journald's line handling for StandardOutput=journal (LineMax= in
// journald.conf(5), SyslogLevelPrefix= in systemd.exec(5)); the journal
// entries themselves are package journal's.
package output
