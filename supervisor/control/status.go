package control

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Status is what `drover status` shows of a running drover: the JSON form
// is part of drover's interface (drover status --json), so fields are only
// ever added.
type Status struct {
	Pid int `json:"pid"`
	// Version is drover's; Started when it first started, Upgraded and
	// UpgradedFrom when and from which version drover upgrade last
	// replaced it in place.
	Version      string    `json:"version,omitempty"`
	Started      time.Time `json:"started,omitzero"`
	Upgraded     time.Time `json:"upgraded,omitzero"`
	UpgradedFrom string    `json:"upgraded_from,omitempty"`
	// State: starting, serving, reloading, rolling-back or stopping.
	State      string `json:"state"`
	StatusText string `json:"status_text"`
	// Generation is the one serving; during a reload, the new one shows in
	// status_text and in processes.
	Generation int `json:"generation"`
	// Workers is the number of slots; Ready how many have a ready worker.
	Workers         int            `json:"workers"`
	Ready           int            `json:"ready"`
	Restarts        int            `json:"restarts"`
	Recycles        int            `json:"recycles"`
	Reloads         int            `json:"reloads"`
	LastReloadError string         `json:"last_reload_error,omitempty"`
	Sockets         []string       `json:"sockets"`
	Command         []string       `json:"command"`
	Processes       []WorkerStatus `json:"processes"`
}

// WorkerStatus is one worker process, or a slot waiting to restart one.
type WorkerStatus struct {
	Slot int `json:"slot"`
	// Pid is 0 for a slot backing off before a restart.
	Pid        int `json:"pid,omitempty"`
	Generation int `json:"generation,omitempty"`
	// State: starting, ready, draining, hung or backing-off.
	State   string    `json:"state"`
	Started time.Time `json:"started,omitzero"`
	// Restarts counts the slot's restarts since drover started.
	Restarts int `json:"restarts"`
	// CPUPercent is the share of one CPU used over a short sample; RSSBytes
	// the resident memory. Both 0 when /proc could not be read.
	CPUPercent float64 `json:"cpu_percent"`
	RSSBytes   int64   `json:"rss_bytes"`
	// Status is the worker's own STATUS= line, if it sent one.
	Status string `json:"status,omitempty"`
	// Recycles counts the slot's zero-downtime replacements (memory, age,
	// liveness), apart from Restarts; LastRecycle is the last one's reason.
	Recycles    int    `json:"recycles"`
	LastRecycle string `json:"last_recycle,omitempty"`
	// MemoryBytes is the worker's memory with its descendants at the last
	// health sample (0 before one, or without --max-memory).
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// LastPing is the worker's last WATCHDOG=1 (--worker-watchdog).
	LastPing time.Time `json:"last_ping,omitzero"`
}

// ParseScale parses drover scale's count: N, +N or -N.
func ParseScale(s string) (relative bool, n int, err error) {
	relative = strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-")
	n, err = strconv.Atoi(s)
	if err != nil || (!relative && n < 1) || (relative && n == 0) {
		return false, 0, fmt.Errorf("scale %q: want a count of at least 1, +N or -N", s)
	}
	return relative, n, nil
}
