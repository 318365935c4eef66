package pm2

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// cronField is one field of a cron expression: its range and the names it
// takes (crontab(5): jan..dec, sun..sat).
type cronField struct {
	name     string
	min, max int
	names    []string // names[i] is the value min+i
}

var (
	secondField = cronField{name: "second", max: 59}
	minuteField = cronField{name: "minute", max: 59}
	hourField   = cronField{name: "hour", max: 23}
	domField    = cronField{name: "day of month", min: 1, max: 31}
	monthField  = cronField{name: "month", min: 1, max: 12,
		names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}}
	// 7 is Sunday too, as in crontab(5).
	dowField = cronField{name: "day of week", max: 7,
		names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"}}
)

// cronMacros are crontab(5)'s shorthands that OnCalendar= can express.
var cronMacros = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0", // Sunday, where systemd's "weekly" is Monday
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// CronToCalendar writes a cron expression (5 fields, or 6 with seconds
// first as PM2's croner takes them) as a systemd OnCalendar= value. It
// refuses what a calendar event cannot say the same way.
func CronToCalendar(expr string) (string, error) {
	cal, err := cronToCalendar(strings.TrimSpace(expr))
	if err != nil {
		return "", fmt.Errorf("cron %q: %w", expr, err)
	}
	return cal, nil
}

func cronToCalendar(expr string) (string, error) {
	if m, ok := cronMacros[strings.ToLower(expr)]; ok {
		expr = m
	} else if strings.HasPrefix(expr, "@") {
		return "", errors.New("want 5 fields or @yearly, @monthly, @weekly, @daily, @hourly")
	}
	fields := strings.Fields(expr)
	switch len(fields) {
	case 5:
		fields = append([]string{"0"}, fields...)
	case 6:
	default:
		return "", fmt.Errorf("%d fields: want minute hour day-of-month month day-of-week", len(fields))
	}
	sec, minute, hour, dom, month, dow := fields[0], fields[1], fields[2], fields[3], fields[4], fields[5]
	// cron runs when either day field matches if both are restricted;
	// OnCalendar= wants both to match.
	if !isStar(dom) && !isStar(dow) {
		return "", errors.New("both day of month and day of week are set: cron runs on either, OnCalendar= only on both; keep one")
	}
	var parts [6]string
	for i, f := range []struct {
		text  string
		field cronField
	}{{sec, secondField}, {minute, minuteField}, {hour, hourField}, {dom, domField}, {month, monthField}, {dow, dowField}} {
		set, err := f.field.parse(f.text)
		if err != nil {
			return "", err
		}
		if i == 5 {
			parts[i] = weekdays(set)
		} else {
			parts[i] = f.field.format(set)
		}
	}
	cal := fmt.Sprintf("*-%s-%s %s:%s:%s", parts[4], parts[3], parts[2], parts[1], parts[0])
	if parts[5] != "" {
		cal = parts[5] + " " + cal
	}
	return cal, nil
}

func isStar(s string) bool { return s == "*" || s == "?" }

// parse reads one field into the set of values it allows, indexed by
// value: comma-separated items, each *, N, A-B, with an optional /STEP.
func (f cronField) parse(text string) ([]bool, error) {
	set := make([]bool, f.max+1)
	for item := range strings.SplitSeq(text, ",") {
		lo, hi, step, err := f.item(item)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", f.name, text, err)
		}
		for v := lo; v <= hi; v += step {
			set[v] = true
		}
	}
	return set, nil
}

// item reads one list item as a range and a step.
func (f cronField) item(item string) (lo, hi, step int, err error) {
	rng, stepText, hasStep := strings.Cut(item, "/")
	step = 1
	if hasStep {
		if step, err = strconv.Atoi(stepText); err != nil || step < 1 {
			return 0, 0, 0, fmt.Errorf("step %q: want a positive number", stepText)
		}
	}
	if isStar(rng) {
		return f.min, f.max, step, nil
	}
	a, b, isRange := strings.Cut(rng, "-")
	if lo, err = f.value(a); err != nil {
		return 0, 0, 0, err
	}
	hi = lo
	switch {
	case isRange:
		if hi, err = f.value(b); err != nil {
			return 0, 0, 0, err
		}
		if hi < lo {
			return 0, 0, 0, fmt.Errorf("range %s: want the lower bound first", rng)
		}
	case hasStep:
		hi = f.max // N/STEP: from N to the end, as croner reads it
	}
	return lo, hi, step, nil
}

// value reads one number or name of the field.
func (f cronField) value(s string) (int, error) {
	for i, name := range f.names {
		if strings.EqualFold(s, name) {
			return f.min + i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a number from %d to %d (L, W and # have no OnCalendar= equivalent)", s, f.min, f.max)
	}
	if n < f.min || n > f.max {
		return 0, fmt.Errorf("%d: want %d to %d", n, f.min, f.max)
	}
	return n, nil
}

// format writes a set of values in calendar-event syntax: * for all,
// START/STEP for every STEP-th value to the end, else a list of values
// and A..B ranges.
func (f cronField) format(set []bool) string {
	var vals []int
	for v := f.min; v <= f.max; v++ {
		if set[v] {
			vals = append(vals, v)
		}
	}
	if len(vals) == f.max-f.min+1 {
		return "*"
	}
	if len(vals) > 2 {
		step := vals[1] - vals[0]
		progression := step > 1 && vals[len(vals)-1]+step > f.max
		for i := 1; i < len(vals) && progression; i++ {
			progression = vals[i]-vals[i-1] == step
		}
		if progression {
			return fmt.Sprintf("%02d/%d", vals[0], step)
		}
	}
	return runs(vals, func(v int) string { return fmt.Sprintf("%02d", v) })
}

// weekdays writes a day-of-week set as systemd's names, Monday first as
// systemd orders them; "" for every day.
func weekdays(set []bool) string {
	set[0] = set[0] || set[7]
	names := []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
	var days []int
	for i := range names {
		if set[(i+1)%7] {
			days = append(days, i)
		}
	}
	if len(days) == 7 {
		return ""
	}
	return runs(days, func(d int) string { return names[d] })
}

// runs writes sorted values as a list, with runs of three or more as
// A..B ranges.
func runs(vals []int, name func(int) string) string {
	var items []string
	for i := 0; i < len(vals); {
		j := i
		for j+1 < len(vals) && vals[j+1] == vals[j]+1 {
			j++
		}
		if j-i >= 2 {
			items = append(items, name(vals[i])+".."+name(vals[j]))
		} else {
			for k := i; k <= j; k++ {
				items = append(items, name(vals[k]))
			}
		}
		i = j + 1
	}
	return strings.Join(items, ",")
}
