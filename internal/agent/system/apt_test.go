package system

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// fakeDpkg is a package database behind dpkg-query and apt-get.
func fakeDpkg(t *testing.T, installed map[string]string, aptFail string) *hosttest.Runner {
	r := hosttest.NewRunner(t)
	r.Handle("dpkg-query", func(c host.Command) (string, error) {
		var out strings.Builder
		status := 0
		for _, p := range c.Argv[3:] {
			if v, ok := installed[p]; ok {
				out.WriteString(p + "\tii \t" + v + "\n")
			} else {
				status = 1
			}
		}
		if status != 0 {
			return out.String(), hosttest.Fail(c, 1, "dpkg-query: no packages found")
		}
		return out.String(), nil
	})
	r.Handle("apt-get", func(c host.Command) (string, error) {
		if c.Argv[1] == "update" {
			return "Reading package lists...\n", nil
		}
		if aptFail != "" {
			return "", hosttest.Fail(c, 100, aptFail)
		}
		installed[c.Argv[len(c.Argv)-1]] = "1.0"
		return "Setting up " + c.Argv[len(c.Argv)-1] + " (1.0) ...\n", nil
	})
	return r
}

func TestApt_InstallsWhatIsMissing(t *testing.T) {
	r := fakeDpkg(t, map[string]string{"jq": "1.6"}, "")
	var lines, progress []string
	apt := Apt{Host: hosttest.New(t, r), Line: func(l string) { lines = append(lines, l) }}
	did, versions, err := apt.Install(context.Background(), []string{"jq", "libxml2-utils"}, func(p string) { progress = append(progress, p) })
	if err != nil || !slices.Equal(did, []string{"libxml2-utils"}) || versions["jq"] != "1.6" || versions["libxml2-utils"] != "1.0" {
		t.Fatalf("install: did %v, versions %v, %v", did, versions, err)
	}
	// One lock timeout for every apt-get, whoever installs.
	for _, c := range r.Calls() {
		if c[0] == "apt-get" && !slices.Contains(c, "DPkg::Lock::Timeout=300") {
			t.Errorf("%q does not wait %s for dpkg's lock", c, LockTimeout)
		}
	}
	if !slices.Contains(progress, "installing libxml2-utils") || !slices.Contains(progress, "Setting up libxml2-utils (1.0) ...") || !slices.Contains(lines, "Reading package lists...") {
		t.Errorf("progress %q, lines %q", progress, lines)
	}

	// All there: nothing but the question.
	r.Reset()
	if did, _, err := apt.Install(context.Background(), []string{"jq", "libxml2-utils"}, nil); err != nil || did != nil {
		t.Errorf("second install: %v %v", did, err)
	}
	if calls := r.CallLines(); len(calls) != 1 || !strings.HasPrefix(calls[0], "dpkg-query") {
		t.Errorf("second install ran %q", calls)
	}
}

func TestApt_ErrorSaysWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		out, code, want string
	}{
		{"E: Unable to locate package nosuch", protocol.CodeCommandFailed, "apt-get install failed (exit status 100): E: Unable to locate package nosuch; fix the cause (apt's output is below) and run update again"},
		{"E: You don't have enough free space in /var/cache/apt/archives/.", protocol.CodeDiskFull, "disk is full"},
	} {
		apt := Apt{Host: hosttest.New(t, fakeDpkg(t, map[string]string{}, tc.out)), Again: "run update again"}
		_, _, err := apt.Install(context.Background(), []string{"nosuch"}, nil)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != tc.code || !strings.Contains(pe.Message, tc.want) || !slices.Contains(pe.Tail, tc.out) {
			t.Errorf("%s: %v", tc.out, err)
		}
	}
}
