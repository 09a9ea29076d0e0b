package instance

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

func fakeSystemd(t *testing.T, answers map[string]string) system.Systemd {
	r := hosttest.NewRunner(t)
	r.Handle("systemctl", hosttest.Answers(t, answers))
	return system.Systemd{Runner: r}
}

func TestExited(t *testing.T) {
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
		err := Exited(fakeSystemd(t, map[string]string{show: tc.out}), "blog.1")(context.Background())
		if (err != nil) != tc.exited || tc.exited && (!errors.Is(err, ErrExited) || !strings.Contains(err.Error(), tc.mention)) {
			t.Errorf("%q: %v", tc.out, err)
		}
	}
}

func TestCurrent(t *testing.T) {
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
		if got := current(context.Background(), fakeSystemd(t, map[string]string{show: out}), inst); got != want {
			t.Errorf("%q: %v, want %v", out, got, want)
		}
	}
}
