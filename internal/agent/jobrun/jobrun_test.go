package jobrun

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/agent/system"
)

const unit = "toppcloud-worker@blog.2024-01-02_002:mailer:1.service"

// turnFake answers the worker-turn step's questions: the worker's copies
// (one answer per poll, the last repeated) and its restart count.
type turnFake struct {
	lists    []string
	restarts int
	polls    int
}

func (f *turnFake) turn(t *testing.T, log *bytes.Buffer, now *time.Time, slept *[]time.Duration) *Turn {
	r := hosttest.NewRunner(t)
	r.Handle("systemctl", func(c host.Command) (string, error) {
		switch line := strings.Join(c.Argv, " "); line {
		case "systemctl list-units --all --plain --no-legend --full toppcloud-worker@blog.*:mailer:1.service":
			out := f.lists[min(f.polls, len(f.lists)-1)]
			f.polls++
			return out, nil
		case "systemctl show --property=NRestarts " + unit:
			return "NRestarts=" + strconv.Itoa(f.restarts) + "\n", nil
		default:
			t.Errorf("unexpected %q", line)
			return "", hosttest.Fail(c, 1, "unexpected")
		}
	})
	return &Turn{Systemd: system.Systemd{Runner: r}, StateDir: t.TempDir(), Log: log,
		Now: func() time.Time { return *now },
		Sleep: func(_ context.Context, d time.Duration) error {
			*slept = append(*slept, d)
			*now = now.Add(d)
			return nil
		}}
}

func TestTurn_WaitsForTheOtherCopy(t *testing.T) {
	self := unit + " loaded activating start-pre Worker\n"
	old := "toppcloud-worker@blog.2024-01-02_001:mailer:1.service loaded "
	f := &turnFake{lists: []string{
		self + old + "active running x\n",
		self + old + "deactivating stop-sigterm x\n",
		self + old + "deactivating stop-sigterm x\n",
		self + old + "inactive dead x\n",
	}}
	var log bytes.Buffer
	now := time.Unix(1_700_000_000, 0)
	var slept []time.Duration
	if err := f.turn(t, &log, &now, &slept).Wait(context.Background(), unit); err != nil {
		t.Fatal(err)
	}
	if f.polls != 4 || len(slept) != 3 {
		t.Errorf("%d polls, slept %v", f.polls, slept)
	}
	if !strings.Contains(log.String(), "waiting for toppcloud-worker@blog.2024-01-02_001:mailer:1.service to stop") || strings.Count(log.String(), "waiting for") != 1 {
		t.Errorf("log:\n%s", log.String())
	}
}

func TestTurn_OthersThatHoldNothing(t *testing.T) {
	// Another copy in its own start-pre step waits as this one does; a
	// stopped or failed one holds nothing.
	f := &turnFake{lists: []string{unit + " loaded activating start-pre x\n" +
		"toppcloud-worker@blog.2024-01-02_001:mailer:1.service loaded activating start-pre x\n" +
		"toppcloud-worker@blog.2024-01-01_001:mailer:1.service loaded failed failed x\n" +
		"toppcloud-worker@blog.2023-01-01_001:mailer:1.service not-found inactive dead x\n"}}
	var log bytes.Buffer
	now := time.Unix(1_700_000_000, 0)
	var slept []time.Duration
	if err := f.turn(t, &log, &now, &slept).Wait(context.Background(), unit); err != nil || len(slept) != 0 {
		t.Errorf("Wait: %v, slept %v", err, slept)
	}
	// A crashed copy about to restart does hold its turn.
	f = &turnFake{lists: []string{
		"toppcloud-worker@blog.2024-01-02_001:mailer:1.service loaded activating auto-restart x\n",
		"",
	}}
	slept = nil
	if err := f.turn(t, &log, &now, &slept).Wait(context.Background(), unit); err != nil || len(slept) != 1 {
		t.Errorf("Wait behind auto-restart: %v, slept %v", err, slept)
	}
}

func TestTurn_Backoff(t *testing.T) {
	f := &turnFake{lists: []string{""}}
	var log bytes.Buffer
	now := time.Unix(1_700_000_000, 0)
	var slept []time.Duration
	tr := f.turn(t, &log, &now, &slept)
	ctx := context.Background()
	// Started by the agent: no pause.
	if err := tr.Wait(ctx, unit); err != nil || len(slept) != 0 {
		t.Fatalf("first start: %v, slept %v", err, slept)
	}
	// Quick failures in a row: 1s (systemd's RestartSec), 2s, 4s, ... 60s.
	var pauses []time.Duration
	for i := 1; i <= 9; i++ {
		f.restarts = i
		slept = nil
		now = now.Add(3 * time.Second)
		if err := tr.Wait(ctx, unit); err != nil {
			t.Fatal(err)
		}
		var extra time.Duration
		for _, d := range slept {
			extra += d
		}
		pauses = append(pauses, extra+time.Second)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(pauses, want) {
		t.Errorf("pauses %v, want %v", pauses, want)
	}
	// After a run longer than StableAfter, the next failure starts over.
	f.restarts++
	slept = nil
	now = now.Add(StableAfter + time.Second)
	if err := tr.Wait(ctx, unit); err != nil || len(slept) != 0 {
		t.Errorf("after a stable run: %v, slept %v", err, slept)
	}
	f.restarts++
	slept = nil
	now = now.Add(time.Second)
	if err := tr.Wait(ctx, unit); err != nil || len(slept) != 1 || slept[0] != time.Second {
		t.Errorf("second quick failure after a stable run: %v, slept %v", err, slept)
	}
	// Started again by the agent: the count starts over.
	f.restarts = 0
	slept = nil
	if err := tr.Wait(ctx, unit); err != nil || len(slept) != 0 {
		t.Errorf("restarted by the agent: %v, slept %v", err, slept)
	}
	if err := tr.Wait(ctx, "toppcloud-app@blog.1.service"); err == nil {
		t.Error("Wait took a unit that is not a worker's")
	}
}

func TestFetch(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	var got *http.Request
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusForbidden)
		}
		w.Write([]byte("cleaned 3 rows\n"))
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	env := map[string]string{"PORT": port, "TOPPCLOUD_INTERNAL_TOKEN": token}
	getenv := func(k string) string { return env[k] }
	var out, errs bytes.Buffer
	err = fetch(context.Background(), []string{"--kind", "command", "--host", "blog.example.com", "blog.2024-01-02_001", "/cron/clean?x=1"}, getenv, &out, &errs)
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != "blog.example.com" || got.URL.RequestURI() != "/cron/clean?x=1" || got.Header.Get("X-Toppcloud-Internal") != token ||
		got.Header.Get("User-Agent") != "toppcloud-cron" {
		t.Errorf("request: host %s uri %s headers %v", got.Host, got.URL.RequestURI(), got.Header)
	}
	if !strings.Contains(out.String(), "cleaned 3 rows") {
		t.Errorf("output:\n%s", out.String())
	}
	err = fetch(context.Background(), []string{"--kind", "command", "blog.2024-01-02_001", "/fail"}, getenv, &out, &errs)
	if err == nil || err.Error() != "GET /fail: the application answered 403 Forbidden" {
		t.Errorf("fetch /fail: %v", err)
	}
	delete(env, "TOPPCLOUD_INTERNAL_TOKEN")
	if err := fetch(context.Background(), []string{"--kind", "command", "blog.2024-01-02_001", "/x"}, getenv, &out, &errs); err == nil || !strings.Contains(err.Error(), "no internal token") {
		t.Errorf("without a token: %v", err)
	}
	for _, args := range [][]string{
		{"--kind", "ruby", "blog.1", "/x"},
		{"--kind", "command", "blog", "/x"},
		{"--kind", "command", "blog.1"},
		{"--nope"},
	} {
		var ue usageError
		if err := fetch(context.Background(), args, getenv, &out, &errs); !errors.As(err, &ue) {
			t.Errorf("fetch %q: %v, want a usage error", args, err)
		}
	}
}

func TestMain_Usage(t *testing.T) {
	var out, errs bytes.Buffer
	for _, args := range [][]string{nil, {"nope"}, {"worker-turn"}} {
		if code := Main(context.Background(), args, &out, &errs); code != exitUsage {
			t.Errorf("Main(%q) = %d", args, code)
		}
	}
}

// TestFetch_WaitsForTheInstance: at boot a missed run comes due while the
// instance starts; the request waits until it listens.
func TestFetch_WaitsForTheInstance(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("late but here\n")) })}
	go func() {
		time.Sleep(1500 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		srv.Serve(l)
	}()
	defer srv.Close()
	env := map[string]string{"PORT": strings.TrimPrefix(addr, "127.0.0.1:"), "TOPPCLOUD_INTERNAL_TOKEN": "t"}
	var out bytes.Buffer
	if err := fetch(context.Background(), []string{"--kind", "command", "blog.1", "/x"}, func(k string) string { return env[k] }, &out, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "late but here") {
		t.Errorf("output:\n%s", out.String())
	}
}
