package main

import (
	"github.com/spf13/pflag"

	"github.com/droverd/drover/supervisor"
	"github.com/droverd/drover/supervisor/sockets"
)

// metricsOptions are drover run's Prometheus endpoint flags.
type metricsOptions struct {
	socket string
	listen *sockets.ListenSpec
}

func (o *metricsOptions) flags(fs *pflag.FlagSet) {
	fs.StringVar(&o.socket, "metrics-socket", "", "serve Prometheus metrics at /metrics on the socket systemd passes under this name (FileDescriptorName=); it is kept from the workers")
	fs.Func("metrics-listen", "`ADDR` to serve Prometheus metrics at /metrics on, a socket drover opens itself (127.0.0.1:9100 or unix:/path); with --metrics-socket, only when systemd passed none", func(s string) error {
		spec, err := sockets.ParseListen(s)
		if err == nil {
			o.listen = &spec
		}
		return err
	})
}

func (o *metricsOptions) apply(cfg *supervisor.Config) {
	cfg.MetricsSocket = o.socket
	cfg.MetricsListen = o.listen
}
