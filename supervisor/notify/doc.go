// Package notify speaks the sd_notify protocol both ways: Systemd sends
// drover's own state to systemd (READY=1, RELOADING=1, STOPPING=1, STATUS=,
// WATCHDOG=1, EXTEND_TIMEOUT_USEC=), and Listener is the NOTIFY_SOCKET
// drover gives its workers, so a program that notifies systemd notifies
// drover unchanged.
//
// Spec: sd_notify(3) and systemd.service(5) (Type=notify, NotifyAccess=).
package notify
