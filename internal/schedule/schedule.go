// Package schedule reads cron schedules, the five fields "MIN HOUR DOM
// MON DOW" of crontab(5) and its @daily-style shortcuts, and turns them
// into systemd calendar events (systemd.time(7)) that fire at exactly the
// same minutes.
//
// Parsed by hand because the job is small and exactness matters: the
// common Go cron packages compute next times themselves (we hand the
// schedule to systemd's timers instead) and disagree with Vixie cron on
// details this package keeps, such as day-of-month and day-of-week
// being alternatives when both are restricted.
package schedule

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Schedule is a parsed cron schedule: the set of values each field
// allows.
type Schedule struct {
	// Spec is the schedule as written (whitespace normalized).
	Spec string
	// Minutes 0-59, Hours 0-23, Days (of the month) 1-31, Months 1-12,
	// Weekdays 0-6 (0 is Sunday), each sorted.
	Minutes, Hours, Days, Months, Weekdays []int
	// DayStar and WeekdayStar say the field started with "*". As in
	// Vixie cron, when neither does, a day matches if either its day of
	// the month or its day of the week does; otherwise both must.
	DayStar, WeekdayStar bool
}

// Shortcuts are the @names Parse accepts in place of the five fields.
var Shortcuts = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

type field struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i
}

var (
	monthNames = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
	dayNames   = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
	fields     = [5]field{
		{name: "minute", min: 0, max: 59},
		{name: "hour", min: 0, max: 23},
		{name: "day of month", min: 1, max: 31},
		{name: "month", min: 1, max: 12, names: monthNames},
		// 7 is Sunday too, as in crontab(5).
		{name: "day of week", min: 0, max: 7, names: dayNames},
	}
)

// Split takes a schedule off the front of s: the five fields, or one
// @shortcut. It returns the schedule's text and the rest of s, trimmed.
func Split(s string) (spec, rest string, err error) {
	words := strings.Fields(s)
	n := 5
	if len(words) > 0 && strings.HasPrefix(words[0], "@") {
		n = 1
	}
	if len(words) < n {
		return "", "", fmt.Errorf("%q: a schedule is five fields, MIN HOUR DOM MON DOW (such as 30 2 * * *), or @hourly, @daily, @weekly, @monthly, @yearly", strings.TrimSpace(s))
	}
	rest = strings.TrimSpace(s)
	for range n {
		rest = strings.TrimLeft(rest[len(strings.Fields(rest)[0]):], " \t")
	}
	return strings.Join(words[:n], " "), rest, nil
}

// Parse reads a schedule: five fields, each "*", a value, a range
// "A-B", a step "*/N" or "A-B/N", or a comma-separated list of those;
// months and days of the week may be given by their English three-letter
// names. A schedule no date ever matches (such as 0 0 30 2 *) is an
// error.
func Parse(spec string) (*Schedule, error) {
	spec = strings.Join(strings.Fields(spec), " ")
	text := spec
	if strings.HasPrefix(spec, "@") {
		expanded, ok := Shortcuts[strings.ToLower(spec)]
		if !ok {
			if strings.EqualFold(spec, "@reboot") {
				return nil, errors.New("@reboot is not a schedule toppcloud runs: a process that starts with the app is a worker (worker.NAME = ...)")
			}
			return nil, fmt.Errorf("%q is not a schedule shortcut (use @hourly, @daily, @weekly, @monthly or @yearly)", spec)
		}
		text = expanded
	}
	parts := strings.Fields(text)
	if len(parts) != 5 {
		return nil, fmt.Errorf("%q has %d fields; a schedule has five: MIN HOUR DOM MON DOW", spec, len(parts))
	}
	s := &Schedule{Spec: spec}
	sets := [5]*[]int{&s.Minutes, &s.Hours, &s.Days, &s.Months, &s.Weekdays}
	for i, p := range parts {
		vals, err := fields[i].parse(p)
		if err != nil {
			return nil, fmt.Errorf("%q: %s: %w", spec, fields[i].name, err)
		}
		*sets[i] = vals
	}
	s.DayStar = strings.HasPrefix(parts[2], "*")
	s.WeekdayStar = strings.HasPrefix(parts[4], "*")
	// Sunday is 0 and 7.
	for i, d := range s.Weekdays {
		if d == 7 {
			s.Weekdays[i] = 0
		}
	}
	slices.Sort(s.Weekdays)
	s.Weekdays = slices.Compact(s.Weekdays)
	if !s.possible() {
		return nil, fmt.Errorf("%q never runs: none of its months has such a day", spec)
	}
	return s, nil
}

// daysIn is the most days each month can have (February in leap years).
var daysIn = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// possible reports whether some date matches. Only the day of the month
// can rule every date out (30 February), and only when it alone decides.
func (s *Schedule) possible() bool {
	if !s.DayStar && !s.WeekdayStar || s.DayStar {
		return true
	}
	for _, m := range s.Months {
		if s.Days[0] <= daysIn[m] {
			return true
		}
	}
	return false
}

func (f field) parse(p string) ([]int, error) {
	if p == "" {
		return nil, errors.New("empty")
	}
	var out []int
	for _, item := range strings.Split(p, ",") {
		if item == "" {
			return nil, fmt.Errorf("%q: an empty item in the list", p)
		}
		vals, err := f.item(item)
		if err != nil {
			return nil, err
		}
		out = append(out, vals...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (f field) item(item string) ([]int, error) {
	rng, stepText, hasStep := strings.Cut(item, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || n < 1 || n > f.max-f.min+1 {
			return nil, fmt.Errorf("%q: the step after / must be a number from 1 to %d", item, f.max-f.min+1)
		}
		step = n
	}
	lo, hi := f.min, f.max
	switch {
	case rng == "*":
	case strings.Contains(rng, "-"):
		a, b, _ := strings.Cut(rng, "-")
		var err error
		if lo, err = f.value(a); err != nil {
			return nil, err
		}
		if hi, err = f.value(b); err != nil {
			return nil, err
		}
		if lo > hi {
			return nil, fmt.Errorf("%q: the range runs backwards", item)
		}
	default:
		if hasStep {
			return nil, fmt.Errorf("%q: a step goes after * or a range (such as */%d or %s-%d/%d)", item, step, rng, f.max, step)
		}
		v, err := f.value(rng)
		if err != nil {
			return nil, err
		}
		lo, hi = v, v
	}
	var out []int
	for v := lo; v <= hi; v += step {
		out = append(out, v)
	}
	return out, nil
}

func (f field) value(s string) (int, error) {
	if i := slices.Index(f.names, strings.ToLower(s)); i >= 0 {
		return f.min + i, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < f.min || n > f.max {
		what := fmt.Sprintf("a number from %d to %d", f.min, f.max)
		if f.names != nil {
			what += " or a name (" + f.names[0] + ", " + f.names[1] + ", ...)"
		}
		return 0, fmt.Errorf("%q is not %s", s, what)
	}
	return n, nil
}

// systemd's weekday names, Sunday first as cron counts.
var systemdDays = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// Calendar returns the systemd calendar events (OnCalendar= values) that
// together fire at exactly the schedule's minutes, in the node's time
// zone: one, or two when the day of the month and the day of the week are
// alternatives (systemd would require both).
func (s *Schedule) Calendar() []string {
	clock := fmt.Sprintf("%s:%s:00", list(s.Hours, 0, 23), list(s.Minutes, 0, 59))
	months := list(s.Months, 1, 12)
	days := list(s.Days, 1, 31)
	var weekdays []string
	if len(s.Weekdays) < 7 {
		for _, r := range runs(s.Weekdays) {
			switch {
			case r[0] == r[1]:
				weekdays = append(weekdays, systemdDays[r[0]])
			case r[1] == r[0]+1:
				weekdays = append(weekdays, systemdDays[r[0]], systemdDays[r[1]])
			default:
				weekdays = append(weekdays, systemdDays[r[0]]+".."+systemdDays[r[1]])
			}
		}
	}
	event := func(weekdays []string, days string) string {
		ev := fmt.Sprintf("*-%s-%s %s", months, days, clock)
		if len(weekdays) > 0 {
			ev = strings.Join(weekdays, ",") + " " + ev
		}
		return ev
	}
	if !s.DayStar && !s.WeekdayStar {
		return []string{event(weekdays, "*"), event(nil, days)}
	}
	return []string{event(weekdays, days)}
}

// list writes values as systemd does: "*" for the whole range, else
// values and A..B ranges separated by commas.
func list(vals []int, min, max int) string {
	if len(vals) == max-min+1 {
		return "*"
	}
	var parts []string
	for _, r := range runs(vals) {
		switch {
		case r[0] == r[1]:
			parts = append(parts, strconv.Itoa(r[0]))
		case r[1] == r[0]+1:
			parts = append(parts, strconv.Itoa(r[0]), strconv.Itoa(r[1]))
		default:
			parts = append(parts, fmt.Sprintf("%d..%d", r[0], r[1]))
		}
	}
	return strings.Join(parts, ",")
}

// runs groups sorted values into runs of consecutive ones, [first, last].
func runs(vals []int) [][2]int {
	var out [][2]int
	for _, v := range vals {
		if n := len(out); n > 0 && out[n-1][1] == v-1 {
			out[n-1][1] = v
			continue
		}
		out = append(out, [2]int{v, v})
	}
	return out
}
