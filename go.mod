module github.com/droverd/drover

go 1.26.8

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/godbus/dbus/v5 v5.2.4
	github.com/sirupsen/logrus v1.10.2
	golang.org/x/sys v0.50.0
)
