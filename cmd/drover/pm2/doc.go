// Package pm2 reads PM2 ecosystem files and maps each app to what drover
// init writes: the command, WorkingDirectory=, Environment=, drover run's
// flags, the socket's port and a reload timer for cron_restart. Options
// with no drover or systemd equivalent come back as Unmapped, each with
// what to do instead, so that drover init --from-pm2 drops none silently.
//
// The options are PM2's, as documented at
// https://pm2.keymetrics.io/docs/usage/application-declaration/; cron
// expressions are the 5-field (or, as croner takes them, 6-field) syntax
// of crontab(5), written as systemd.time(7) calendar events.
package pm2
