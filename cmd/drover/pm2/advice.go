package pm2

// advice is what to do instead of each PM2 option drover init does not
// map, so that the list it prints says more than "not mapped".
var advice = map[string]string{
	"watch":         "drover does not watch files: after a deploy run systemctl reload NAME (or a systemd .path unit that runs it)",
	"ignore_watch":  "drover does not watch files (see watch)",
	"watch_delay":   "drover does not watch files (see watch)",
	"watch_options": "drover does not watch files (see watch)",

	"merge_logs":      "every worker's output goes to the journal, labelled by slot and pid: drover logs NAME",
	"combine_logs":    "every worker's output goes to the journal, labelled by slot and pid: drover logs NAME",
	"log_date_format": "the journal timestamps every line: journalctl -u NAME -o short-iso",
	"log_type":        "drover logs NAME; journalctl -u NAME -o json for structured output",
	"log_file":        "output goes to the journal: drover logs NAME, journalctl -u NAME",
	"log":             "output goes to the journal: drover logs NAME, journalctl -u NAME",
	"out_file":        "stdout goes to the journal: drover logs NAME, journalctl -u NAME",
	"output":          "stdout goes to the journal: drover logs NAME, journalctl -u NAME",
	"error_file":      "stderr goes to the journal (priority 3): journalctl -u NAME -p err",
	"error":           "stderr goes to the journal (priority 3): journalctl -u NAME -p err",
	"disable_logs":    "set StandardOutput=null and StandardError=null in a drop-in",
	"time":            "the journal timestamps every line",
	"pid_file":        "drover status NAME lists the workers' pids; systemctl show -p MainPID NAME is drover's",
	"pid":             "drover status NAME lists the workers' pids; systemctl show -p MainPID NAME is drover's",

	"instance_var":  "drover gives each worker DROVER_WORKER_ID (0..N-1): read it instead of NODE_APP_INSTANCE",
	"increment_var": "derive the value from DROVER_WORKER_ID (0..N-1); the workers share one socket, so ports need not differ",

	"treekill":              "drover kills each worker's whole process tree (its cgroup): nothing to set",
	"shutdown_with_message": "drover sends the stop signal (--stop-signal) rather than a message: handle the signal",
	"kill_retry_time":       "drover sends the stop signal once, then SIGKILL after --stop-timeout",
	"stop_exit_codes":       "drover restarts every worker that exits; a clean exit 0 during a drain is expected",
	"force":                 "drover init refuses to overwrite existing units; --force overwrites them",
	"namespace":             "unit names are the namespace: prefix the app names (api-web)",
	"append_env_to_name":    "unit names come from name: rename the app",
	"filter_env":            "the service sees only Environment= and systemd's own variables: nothing to filter",

	"source_map_support": "add --enable-source-maps to node_args",
	"node_version":       "put that node's path in interpreter",

	"vizion":            "deployment is your tool's job: after a deploy run systemctl reload NAME",
	"post_update":       "deployment is your tool's job: after a deploy run systemctl reload NAME",
	"autorestart_delay": "see restart_delay",

	"pmx":             "PM2's monitoring: drover serves Prometheus metrics (drover init --metrics ADDR)",
	"io":              "PM2's monitoring: drover serves Prometheus metrics (drover init --metrics ADDR)",
	"automation":      "PM2's monitoring: drover serves Prometheus metrics (drover init --metrics ADDR)",
	"trace":           "PM2's monitoring: drover serves Prometheus metrics (drover init --metrics ADDR)",
	"disable_trace":   "PM2's monitoring: drover serves Prometheus metrics (drover init --metrics ADDR)",
	"deep_monitoring": "PM2's monitoring: drover serves Prometheus metrics (drover init --metrics ADDR)",

	"gid": "the service runs with the user's group: set Group= in a drop-in",
}

// adviceFor is the advice for an unmapped option, false for an option
// drover init does not know.
func adviceFor(key string) (string, bool) {
	a, ok := advice[key]
	return a, ok
}
