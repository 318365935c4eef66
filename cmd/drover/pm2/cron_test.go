package pm2

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/droverd/drover/testdata/testbin"
)

var cronTable = []struct{ cron, calendar string }{
	{"0 3 * * *", "*-*-* 03:00:00"},
	{"*/15 * * * *", "*-*-* *:00/15:00"},
	{"5 */2 * * *", "*-*-* 00/2:05:00"},
	{"30 4 1,15 * *", "*-*-01,15 04:30:00"},
	{"0 0 1 */3 *", "*-01/3-01 00:00:00"},
	{"0 9-17 * * mon-fri", "Mon..Fri *-*-* 09..17:00:00"},
	{"0 9 * * 1-5", "Mon..Fri *-*-* 09:00:00"},
	{"0 0 * * 0", "Sun *-*-* 00:00:00"},
	{"0 0 * * 7", "Sun *-*-* 00:00:00"},
	{"0 0 * * SAT,SUN", "Sat,Sun *-*-* 00:00:00"},
	{"0 0 * * 0-6", "*-*-* 00:00:00"},
	{"0 12 * jan,jul *", "*-01,07-* 12:00:00"},
	{"0 12 * mar-nov *", "*-03..11-* 12:00:00"},
	{"0 1-5,7 * * *", "*-*-* 01..05,07:00:00"},
	{"10-40/10 * * * *", "*-*-* *:10,20,30,40:00"},
	{"5/20 * * * *", "*-*-* *:05/20:00"},
	{"0 0 ? * mon", "Mon *-*-* 00:00:00"},
	{"30 */10 * * * *", "*-*-* *:00/10:30"}, // croner's seconds first
	{"@daily", "*-*-* 00:00:00"},
	{"@weekly", "Sun *-*-* 00:00:00"},
	{"@monthly", "*-*-01 00:00:00"},
	{"@yearly", "*-01-01 00:00:00"},
	{"@hourly", "*-*-* *:00:00"},
}

func TestCronToCalendar(t *testing.T) {
	for _, c := range cronTable {
		got, err := CronToCalendar(c.cron)
		if err != nil || got != c.calendar {
			t.Errorf("%q: %q, %v; want %q", c.cron, got, err, c.calendar)
		}
	}
}

// systemd reads every calendar event the converter writes.
func TestCronCalendarsParse(t *testing.T) {
	analyze := testbin.Tool(t, "systemd-analyze")
	args := []string{"calendar"}
	for _, c := range cronTable {
		args = append(args, c.calendar)
	}
	if out, err := exec.Command(analyze, args...).CombinedOutput(); err != nil {
		t.Fatalf("systemd-analyze calendar: %v\n%s", err, out)
	}
}

// What OnCalendar= cannot say the same way is refused, saying why.
func TestCronErrors(t *testing.T) {
	for _, c := range []struct{ cron, want string }{
		{"", "0 fields"},
		{"* * *", "3 fields"},
		{"0 0 1 * mon", "both day of month and day of week"},
		{"60 * * * *", "minute \"60\": 60: want 0 to 59"},
		{"0 24 * * *", "hour"},
		{"0 0 0 * *", "day of month"},
		{"0 0 * 13 *", "month"},
		{"0 0 * * 8", "day of week"},
		{"0 0 L * *", "L, W and # have no OnCalendar= equivalent"},
		{"0 0 * * 5#3", "no OnCalendar= equivalent"},
		{"*/0 * * * *", "step \"0\": want a positive number"},
		{"30-10 * * * *", "want the lower bound first"},
		{"@reboot", "want 5 fields or @yearly"},
		{"0 0 * * fri-mon", "want the lower bound first"},
	} {
		_, err := CronToCalendar(c.cron)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.cron, err, c.want)
		}
	}
}
