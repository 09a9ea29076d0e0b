package instance

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// fakeExec answers exact command lines and fails on any other.
type fakeExec struct {
	t       *testing.T
	answers map[string]string
	calls   []string
}

func (f *fakeExec) run(_ context.Context, argv ...string) ([]byte, error) {
	line := strings.Join(argv, " ")
	f.calls = append(f.calls, line)
	out, ok := f.answers[line]
	if !ok {
		f.t.Errorf("unexpected command %q", line)
		return nil, errors.New("unexpected command")
	}
	if rest, ok := strings.CutPrefix(out, "ERR:"); ok {
		return nil, errors.New(rest)
	}
	return []byte(out), nil
}

func TestSystemctl_Exited(t *testing.T) {
	show := "systemctl show --property=ActiveState,SubState,Result,ExecMainStatus toppcloud-app@blog.1.service"
	for _, tc := range []struct {
		out     string
		exited  bool
		mention string
	}{
		{"ActiveState=active\nSubState=running\nResult=success\nExecMainStatus=0\n", false, ""},
		{"ActiveState=activating\nSubState=start\nResult=success\nExecMainStatus=0\n", false, ""},
		{"ActiveState=activating\nSubState=auto-restart\nResult=exit-code\nExecMainStatus=4\n", true, "exit status 4"},
		{"ActiveState=failed\nSubState=failed\nResult=exit-code\nExecMainStatus=3\n", true, "exit status 3"},
		{"ActiveState=inactive\nSubState=dead\nResult=success\nExecMainStatus=0\n", true, "inactive/dead"},
		{"ERR:no bus", false, ""},
	} {
		f := &fakeExec{t: t, answers: map[string]string{show: tc.out}}
		err := Systemctl{Exec: f.run}.Exited("blog.1")(context.Background())
		if (err != nil) != tc.exited || tc.exited && (!errors.Is(err, ErrExited) || !strings.Contains(err.Error(), tc.mention)) {
			t.Errorf("%q: %v", tc.out, err)
		}
	}
}

func TestSystemctl_Commands(t *testing.T) {
	f := &fakeExec{t: t, answers: map[string]string{
		"systemctl daemon-reload":                                                           "",
		"systemctl enable --now toppcloud-app@blog.1.service":                               "",
		"systemctl disable --now toppcloud-app@blog.1.service":                              "",
		"systemctl disable --now toppcloud-app@blog.2.service":                              "ERR:Unit toppcloud-app@blog.2.service does not exist",
		"journalctl --unit toppcloud-app@blog.1.service --lines 80 --no-pager --output cat": "a\nb\n",
	}}
	s := Systemctl{Exec: f.run}
	ctx := context.Background()
	if err := s.DaemonReload(ctx); err != nil {
		t.Error(err)
	}
	if err := s.Start(ctx, "blog.1"); err != nil {
		t.Error(err)
	}
	if err := s.Stop(ctx, "blog.1"); err != nil {
		t.Error(err)
	}
	if err := s.Stop(ctx, "blog.2"); err != nil {
		t.Errorf("stopping a missing unit: %v", err)
	}
	tail, err := s.Tail("blog.1", DefaultTailLines)(ctx)
	if err != nil || strings.Join(tail, "|") != "a|b" {
		t.Errorf("tail %q, %v", tail, err)
	}
}

func TestSystemctl_Current(t *testing.T) {
	l := layout.Default()
	inst := &Instance{App: "blog", Name: "blog.1", Kind: appconfig.KindPython, Layout: l}
	show := "systemctl show --property=LoadState,NeedDaemonReload,DropInPaths toppcloud-app@blog.1.service"
	ours := DropInPath(l, "blog.1")
	for out, want := range map[string]bool{
		"LoadState=loaded\nNeedDaemonReload=no\nDropInPaths=" + ours + "\n":                   true,
		"LoadState=loaded\nNeedDaemonReload=no\nDropInPaths=/etc/x.conf " + ours + "\n":       true,
		"LoadState=loaded\nNeedDaemonReload=yes\nDropInPaths=" + ours + "\n":                  false,
		"LoadState=bad-setting\nNeedDaemonReload=no\nDropInPaths=\n":                          false,
		"LoadState=loaded\nNeedDaemonReload=no\nDropInPaths=/etc/systemd/system/other.conf\n": false,
		"ERR:no bus": false,
	} {
		f := &fakeExec{t: t, answers: map[string]string{show: out}}
		if got := (Systemctl{Exec: f.run}).Current(context.Background(), inst); got != want {
			t.Errorf("%q: %v, want %v", out, got, want)
		}
	}
}
