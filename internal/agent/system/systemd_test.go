package system

import (
	"context"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
)

// answers are systemd's, for the commands these tests expect.
var answers = map[string]string{
	"systemctl daemon-reload": "",
	"systemctl start toppcloud-app-proxy@blog.1.socket toppcloud-app@blog.1.service":     "",
	"systemctl stop --no-block toppcloud-app@blog.1.service":                             "",
	"systemctl stop --no-block toppcloud-app@blog.2.service":                             "ERR:Failed to stop toppcloud-app@blog.2.service: Unit toppcloud-app@blog.2.service not loaded.",
	"systemctl stop --no-block toppcloud-app@blog.3.service":                             "ERR:Unit toppcloud-app@blog.3.service does not exist",
	"systemctl stop --no-block toppcloud-app@blog.4.service":                             "ERR:Access denied",
	"journalctl --unit toppcloud-app@blog.1.service --lines 80 --no-pager --output cat":  "a\nb\n",
	"journalctl --unit toppcloud-app@blog.2.service --lines 80 --no-pager --output cat":  "",
	"systemctl is-enabled a.service":                                                     "enabled\n",
	"systemctl is-enabled b.service":                                                     "static\n",
	"systemctl is-enabled c.service":                                                     "ERR:disabled",
	"systemctl enable --quiet c.service":                                                 "",
	"systemctl is-active a.service c.service":                                            "active\ninactive\n",
	"systemctl reload postgresql@15-main":                                                "",
	"systemctl reset-failed toppcloud-run-blog-1.service":                                "",
	"systemctl show --property=ExecMainCode,ExecMainStatus toppcloud-run-blog-1.service": "ExecMainCode=1\nExecMainStatus=7\n",
}

func fakeSystemd(t *testing.T) (Systemd, *hosttest.Runner) {
	r := hosttest.NewRunner(t)
	h := hosttest.Answers(t, answers)
	r.Handle("systemctl", h)
	r.Handle("journalctl", h)
	return Systemd{Runner: r}, r
}

func TestSystemd_Commands(t *testing.T) {
	s, _ := fakeSystemd(t)
	ctx := context.Background()
	if err := s.DaemonReload(ctx); err != nil {
		t.Error(err)
	}
	if err := s.Start(ctx, "toppcloud-app-proxy@blog.1.socket", "toppcloud-app@blog.1.service"); err != nil {
		t.Error(err)
	}
	if err := s.Stop(ctx, "toppcloud-app@blog.1.service"); err != nil {
		t.Error(err)
	}
	for _, missing := range []string{"toppcloud-app@blog.2.service", "toppcloud-app@blog.3.service"} {
		if err := s.Stop(ctx, missing); err != nil {
			t.Errorf("stopping a missing unit: %v", err)
		}
	}
	if err := s.Stop(ctx, "toppcloud-app@blog.4.service"); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Errorf("a refused stop: %v", err)
	}
	tail, err := s.Journal(ctx, "toppcloud-app@blog.1.service", 80, "cat")
	if err != nil || strings.Join(tail, "|") != "a|b" {
		t.Errorf("tail %q, %v", tail, err)
	}
	if tail, err := s.Journal(ctx, "toppcloud-app@blog.2.service", 80, "cat"); err != nil || tail != nil {
		t.Errorf("empty journal: %q, %v", tail, err)
	}
}

func TestSystemd_EnableOnlyWhenNeeded(t *testing.T) {
	s, r := fakeSystemd(t)
	ctx := context.Background()
	for unit, want := range map[string]bool{"a.service": false, "b.service": false, "c.service": true} {
		if changed, err := s.Enable(ctx, unit); err != nil || changed != want {
			t.Errorf("enable %s: changed %v, %v; want %v", unit, changed, err, want)
		}
	}
	if got := s.States(ctx, "a.service", "c.service"); strings.Join(got, " ") != "active inactive" {
		t.Errorf("states %q", got)
	}
	if n := len(r.Calls()); n != 5 {
		t.Errorf("%d commands, want 5: %q", n, r.CallLines())
	}
}

// TestSystemd_ServerAndRunCalls: what services (reload after a changed
// pg_hba.conf) and the agent's run (the exit status of a failed
// transient unit, then forgetting it) ask systemd, word for word.
func TestSystemd_ServerAndRunCalls(t *testing.T) {
	s, r := fakeSystemd(t)
	ctx := context.Background()
	if err := s.Reload(ctx, "postgresql@15-main"); err != nil {
		t.Error(err)
	}
	show, err := s.Show(ctx, "toppcloud-run-blog-1.service", "ExecMainCode", "ExecMainStatus")
	if err != nil || show["ExecMainCode"] != "1" || show["ExecMainStatus"] != "7" {
		t.Errorf("show %q, %v", show, err)
	}
	if err := s.ResetFailed(ctx, "toppcloud-run-blog-1.service"); err != nil {
		t.Error(err)
	}
	want := []string{
		"systemctl reload postgresql@15-main",
		"systemctl show --property=ExecMainCode,ExecMainStatus toppcloud-run-blog-1.service",
		"systemctl reset-failed toppcloud-run-blog-1.service",
	}
	if got := r.CallLines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
