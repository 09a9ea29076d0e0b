package schedule

import (
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCalendar(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []string
	}{
		{"* * * * *", []string{"*-*-* *:*:00"}},
		{"*/15 9-17 * * mon-fri", []string{"Mon..Fri *-*-* 9..17:0,15,30,45:00"}},
		{"30 2 * * *", []string{"*-*-* 2:30:00"}},
		{"@daily", []string{"*-*-* 0:0:00"}},
		{"@HOURLY", []string{"*-*-* *:0:00"}},
		{"@weekly", []string{"Sun *-*-* 0:0:00"}},
		{"@yearly", []string{"*-1-1 0:0:00"}},
		{"0 0 1,15 * *", []string{"*-*-1,15 0:0:00"}},
		// Both days restricted: either matches, as in cron.
		{"0 12 13 * fri", []string{"Fri *-*-* 12:0:00", "*-*-13 12:0:00"}},
		// A step on the day of the month still counts as "*" (AND).
		{"0 0 */2 * sun", []string{"Sun *-*-1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 0:0:00"}},
		{"0 0 * jan,jul 7", []string{"Sun *-1,7-* 0:0:00"}},
		{"0 0 * * 0,7", []string{"Sun *-*-* 0:0:00"}},
		{"0 0 * * 5-7", []string{"Sun,Fri,Sat *-*-* 0:0:00"}},
		{"5,6 0 * * *", []string{"*-*-* 0:5,6:00"}},
		{"0-4/2 0 * * *", []string{"*-*-* 0:0,2,4:00"}},
		{"0 0 29 2 *", []string{"*-2-29 0:0:00"}},
		{"  1   2  3  4  5 ", []string{"Fri *-4-* 2:1:00", "*-4-3 2:1:00"}},
	} {
		s, err := Parse(tc.spec)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.spec, err)
			continue
		}
		if got := s.Calendar(); !slices.Equal(got, tc.want) {
			t.Errorf("Parse(%q).Calendar() = %q, want %q", tc.spec, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"* * * *", "five"},
		{"* * * * * *", "five"},
		{"60 * * * *", `minute: "60" is not a number from 0 to 59`},
		{"* 24 * * *", "hour"},
		{"* * 0 * *", "day of month"},
		{"* * * 13 *", "month"},
		{"* * * foo *", "or a name (jan, feb"},
		{"* * * * 8", "day of week"},
		{"*/0 * * * *", "step"},
		{"*/61 * * * *", "step"},
		{"5/10 * * * *", "a step goes after *"},
		{"10-5 * * * *", "backwards"},
		{"1,,2 * * * *", "empty"},
		{"0 0 30 2 *", "never runs"},
		{"0 0 31 4,6 *", "never runs"},
		{"@reboot", "worker"},
		{"@often", "not a schedule shortcut"},
	} {
		_, err := Parse(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tc.spec, err, tc.want)
		}
	}
	// Both days restricted: 30 February never comes, Fridays do.
	if _, err := Parse("0 0 30 2 fri"); err != nil {
		t.Errorf("0 0 30 2 fri: %v", err)
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct{ in, spec, rest string }{
		{"* * * * *  /cron/tick", "* * * * *", "/cron/tick"},
		{"@daily script:bin/clean --all  now", "@daily", "script:bin/clean --all  now"},
		{"0 3 * * 1\tscript:x", "0 3 * * 1", "script:x"},
		{"* * * * *", "* * * * *", ""},
	} {
		spec, rest, err := Split(tc.in)
		if err != nil || spec != tc.spec || rest != tc.rest {
			t.Errorf("Split(%q) = %q, %q, %v; want %q, %q", tc.in, spec, rest, err, tc.spec, tc.rest)
		}
	}
	if _, _, err := Split("* * /x"); err == nil {
		t.Error("Split of three fields: no error")
	}
}

// matches is cron's own rule, written out: the reference the systemd
// events are checked against.
func (s *Schedule) matches(t time.Time) bool {
	dom := slices.Contains(s.Days, t.Day())
	dow := slices.Contains(s.Weekdays, int(t.Weekday()))
	day := dom && dow
	if !s.DayStar && !s.WeekdayStar {
		day = dom || dow
	}
	return day && slices.Contains(s.Minutes, t.Minute()) && slices.Contains(s.Hours, t.Hour()) &&
		slices.Contains(s.Months, int(t.Month()))
}

var elapseRE = regexp.MustCompile(`(?m)^\s*(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC$`)

// TestCalendarAgainstSystemd asks this machine's systemd when the
// rendered events fire and compares the first runs with cron's rule.
func TestCalendarAgainstSystemd(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("no systemd-analyze here")
	}
	const n = 40
	base := time.Date(2027, 1, 30, 22, 58, 0, 0, time.UTC)
	// Runs within two years are compared (n at most): 29 February comes
	// once in them.
	end := base.AddDate(2, 0, 0)
	for _, spec := range []string{
		"* * * * *", "*/7 * * * *", "0 */5 * * *", "*/15 9-17 * * mon-fri", "0 12 13 * fri",
		"0 0 */2 * sun", "30 4 1,15,31 * *", "0 0 29 2 *", "@weekly", "0 0 * jan,jul 7", "59 23 31 dec *",
		"0 0 31 * 1", "1-3,58 22,23 * * 6",
	} {
		s, err := Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		var got []time.Time
		for _, ev := range s.Calendar() {
			cmd := exec.Command("systemd-analyze", "calendar", "--iterations=90",
				"--base-time="+base.Format("2006-01-02 15:04:05")+" UTC", ev)
			cmd.Env = []string{"TZ=UTC", "LC_ALL=C"}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze calendar %q: %v\n%s", ev, err, out)
			}
			for _, m := range elapseRE.FindAllStringSubmatch(string(out), -1) {
				at, err := time.Parse("2006-01-02 15:04:05", m[1])
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, at)
			}
		}
		slices.SortFunc(got, func(a, b time.Time) int { return a.Compare(b) })
		got = slices.DeleteFunc(slices.Compact(got), func(at time.Time) bool { return at.After(end) })
		var want []time.Time
		for at := base.Add(time.Minute); len(want) < n && !at.After(end); at = at.Add(time.Minute) {
			if s.matches(at) {
				want = append(want, at)
			}
		}
		if len(want) == 0 || len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
			t.Errorf("%s (%q):\nsystemd %v\ncron    %v", spec, s.Calendar(), got[:min(len(got), len(want))], want)
		}
	}
}
