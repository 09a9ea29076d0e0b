package site

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/deploy"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/remote"
)

// world is a site's fake nodes: every call any of them gets, in order.
type world struct {
	mu    sync.Mutex
	log   []string
	addrs map[string]string
	// unhealthy upstreams stay so in the balancer's status.
	unhealthy map[string]bool
	env       map[string]string
}

func (w *world) add(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, s)
}

func (w *world) calls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.log...)
}

// checkCalls fails t unless the nodes got exactly want, in that order:
// the order is what keeps a site serving through a change.
func (w *world) checkCalls(t *testing.T, want []string) {
	t.Helper()
	if got := w.calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func (w *world) Connect(_ context.Context, name string) (deploy.Caller, error) {
	return &fakeNode{w: w, name: name}, nil
}

func (w *world) Address(name string) (string, error) {
	a, ok := w.addrs[name]
	if !ok {
		return "", fmt.Errorf("no address for %s", name)
	}
	return a, nil
}

type fakeNode struct {
	w    *world
	name string
}

func (n *fakeNode) Call(_ context.Context, op string, args any, result any, _ remote.CallOptions) error {
	switch op {
	case protocol.OpBalance:
		b := args.(protocol.BalanceArgs)
		n.w.add(fmt.Sprintf("%s balance %s up=%s out=%s", n.name, strings.Join(b.Locations, ","), strings.Join(b.Upstreams, ","), strings.Join(b.Out, ",")))
	case protocol.OpBalanceStatus:
		st := result.(*protocol.BalanceStatusResult)
		var bs protocol.BalancedSite
		bs.Site = "blog"
		for _, a := range n.w.addrs {
			u := a + ":80"
			bs.States = append(bs.States, protocol.UpstreamState{Address: u, Healthy: !n.w.unhealthy[u]})
		}
		st.Sites = []protocol.BalancedSite{bs}
	case protocol.OpSiteServices:
		a := args.(protocol.SiteServicesArgs)
		var names []string
		for _, s := range a.Services {
			names = append(names, s.Name)
		}
		n.w.add(fmt.Sprintf("%s site-services %s %s", n.name, a.App, strings.Join(names, ",")))
		*result.(*protocol.SiteServicesResult) = protocol.SiteServicesResult{Env: n.w.env}
	default:
		n.w.add(fmt.Sprintf("%s %s", n.name, op))
	}
	return nil
}

func (n *fakeNode) CallCurrent(ctx context.Context, op string, args any, result any, o remote.CallOptions) error {
	return n.Call(ctx, op, args, result, o)
}

func testSite() Site {
	return Site{
		Name:      "blog",
		Locations: []location.Location{mustLoc("https://blog.example.com")},
		Balancer:  "lb", Nodes: []string{"web1", "web2"}, Services: "db",
	}
}

func mustLoc(s string) location.Location {
	l, err := location.Parse(s)
	if err != nil {
		panic(err)
	}
	return l
}

func newWorld() *world {
	return &world{addrs: map[string]string{"lb": "10.0.0.1", "web1": "10.0.0.2", "web2": "10.0.0.3", "db": "10.0.0.4"},
		unhealthy: map[string]bool{}, env: map[string]string{"CONFIG_PG_HOST": "10.0.0.4"}}
}

func noSleep(context.Context, time.Duration) error { return nil }

// fakeDeploy is deploy.Update on a fake node: it holds, and switches if
// told to; fail names nodes that fail before holding.
func fakeDeploy(w *world, fail map[string]bool, seen *sync.Map) func(context.Context, deploy.Caller, *deploy.Plan, deploy.UpdateOptions) (*protocol.UpdateResult, deploy.UploadStats, error) {
	return func(ctx context.Context, c deploy.Caller, p *deploy.Plan, o deploy.UpdateOptions) (*protocol.UpdateResult, deploy.UploadStats, error) {
		node := c.(*fakeNode).name
		seen.Store(node, o)
		if !o.Hold {
			return nil, deploy.UploadStats{}, errors.New("not held")
		}
		if fail[node] {
			time.Sleep(20 * time.Millisecond) // the others reach their hold first
			return nil, deploy.UploadStats{}, errors.New("health check failed")
		}
		if !o.Held("app.1") {
			w.add(node + " removed new instance")
			return nil, deploy.UploadStats{}, &protocol.Error{Code: "aborted", Message: "aborted"}
		}
		w.add(node + " switched to " + p.Location.String())
		return &protocol.UpdateResult{DeployResult: protocol.DeployResult{Instance: "app.1"}}, deploy.UploadStats{}, nil
	}
}

func testPlan() *deploy.Plan {
	return &deploy.Plan{
		App: "app", Location: mustLoc("https://blog.example.com"),
		Config: &appconfig.Config{
			Platform: "python",
			Services: []appconfig.Service{{Name: "postgresql"}},
			Workers:  []appconfig.Worker{{Name: "q", Replicas: 3}, {Name: "one"}},
			Crons:    []appconfig.Cron{{Name: "c"}},
		},
	}
}

func TestUpdate_Rolling(t *testing.T) {
	w := newWorld()
	var seen sync.Map
	r := &Runner{Site: testSite(), Nodes: w, Deploy: fakeDeploy(w, nil, &seen), Sleep: noSleep}
	res, err := r.Update(context.Background(), testPlan(), UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"db site-services app postgresql",
		"lb balance https://blog.example.com up=10.0.0.2:80,10.0.0.3:80 out=10.0.0.2:80",
		"web1 switched to blog.example.com",
		"lb balance https://blog.example.com up=10.0.0.2:80,10.0.0.3:80 out=",
		"lb balance https://blog.example.com up=10.0.0.2:80,10.0.0.3:80 out=10.0.0.3:80",
		"web2 switched to blog.example.com",
		"lb balance https://blog.example.com up=10.0.0.2:80,10.0.0.3:80 out=",
	}
	w.checkCalls(t, want)
	for _, nr := range res {
		if !nr.Switched || nr.Err != nil {
			t.Errorf("%+v", nr)
		}
	}
	o1, _ := seen.Load("web1")
	o2, _ := seen.Load("web2")
	u1, u2 := o1.(deploy.UpdateOptions), o2.(deploy.UpdateOptions)
	if u1.SkipFetch || !u2.SkipFetch {
		t.Errorf("SkipFetch: web1 %v, web2 %v; want update_fetch on web1 only", u1.SkipFetch, u2.SkipFetch)
	}
	if !reflect.DeepEqual(u1.ServiceEnv, w.env) || !reflect.DeepEqual(u2.ServiceEnv, w.env) {
		t.Error("ServiceEnv not passed to both app nodes")
	}
	if !u1.Jobs.Crons || u2.Jobs.Crons || u1.Jobs.Workers["q"] != 2 || u2.Jobs.Workers["q"] != 1 ||
		u1.Jobs.Workers["one"] != 1 || u2.Jobs.Workers["one"] != 0 {
		t.Errorf("jobs: web1 %+v, web2 %+v", u1.Jobs, u2.Jobs)
	}
}

func TestUpdate_FailureBeforeSwitch(t *testing.T) {
	for _, failing := range []string{"web1", "web2"} {
		t.Run(failing, func(t *testing.T) {
			w := newWorld()
			var seen sync.Map
			r := &Runner{Site: testSite(), Nodes: w, Deploy: fakeDeploy(w, map[string]bool{failing: true}, &seen), Sleep: noSleep}
			res, err := r.Update(context.Background(), testPlan(), UpdateOptions{})
			var ue *UpdateError
			if !errors.As(err, &ue) || ue.Switched {
				t.Fatalf("Update = %v, want an *UpdateError with no switch", err)
			}
			if !strings.Contains(err.Error(), failing+": health check failed") || !strings.Contains(err.Error(), "no node switched") {
				t.Errorf("error %q does not say which node failed and that none switched", err)
			}
			for _, c := range w.calls() {
				if strings.Contains(c, "switched") || strings.Contains(c, "balance") {
					t.Errorf("%s happened though a node failed before the switch", c)
				}
			}
			other := map[string]string{"web1": "web2", "web2": "web1"}[failing]
			if !contains(w.calls(), other+" removed new instance") {
				t.Errorf("%s's hold was not answered false: %v", other, w.calls())
			}
			for _, nr := range res {
				if nr.Switched {
					t.Errorf("%s switched", nr.Node)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func TestUpdate_NoBalancerNoServices(t *testing.T) {
	w := newWorld()
	var seen sync.Map
	s := Site{Name: "one", Locations: []location.Location{mustLoc("https://one.example.com")}, Nodes: []string{"web1"}}
	r := &Runner{Site: s, Nodes: w, Deploy: fakeDeploy(w, nil, &seen), Sleep: noSleep}
	if _, err := r.Update(context.Background(), testPlan(), UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// One app node keeps its own database and its https location.
	w.checkCalls(t, []string{"web1 switched to https://blog.example.com"})
	o, _ := seen.Load("web1")
	if u := o.(deploy.UpdateOptions); u.ServiceEnv != nil || u.SkipFetch || !u.Jobs.Crons || u.Jobs.Workers["q"] != 3 {
		t.Errorf("options %+v", u)
	}
}

func TestCheck(t *testing.T) {
	two := testSite()
	noDB := testSite()
	noDB.Services = ""
	one := Site{Name: "one", Nodes: []string{"web1"}}
	tests := []struct {
		name    string
		site    Site
		service string
		want    string
	}{
		{"files on two nodes", two, "files", "share no file system"},
		{"writable_root on two nodes", two, "writable_root", "share no file system"},
		{"database without services node", noDB, "postgresql", "no services node"},
		{"database with services node", two, "mysql", ""},
		{"files on one node", one, "files", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &appconfig.Config{File: "app/app.ini", Services: []appconfig.Service{{Name: tt.service, Line: 7}}}
			err := tt.site.Check(cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "app/app.ini line 7") {
				t.Errorf("Check = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	w := newWorld()
	roles, err := testSite().Roles(w.Address)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]protocol.SiteRole{
		"lb":   {Site: "blog", Balancer: true},
		"web1": {Site: "blog", App: true, TrustProxies: []string{"10.0.0.1"}},
		"web2": {Site: "blog", App: true, TrustProxies: []string{"10.0.0.1"}},
		"db":   {Site: "blog", Services: true, ServiceListen: "10.0.0.4", ServiceClients: []string{"10.0.0.2", "10.0.0.3"}},
	}
	if !reflect.DeepEqual(roles, want) {
		g, _ := json.Marshal(roles)
		t.Errorf("roles %s", g)
	}
}

func TestSetup(t *testing.T) {
	w := newWorld()
	r := &Runner{Site: testSite(), Nodes: w, Sleep: noSleep}
	err := r.Setup(context.Background(), func(_ context.Context, node string, role protocol.SiteRole) error {
		w.add(fmt.Sprintf("setup %s balancer=%v app=%v services=%v", node, role.Balancer, role.App, role.Services))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"setup lb balancer=true app=false services=false",
		"setup db balancer=false app=false services=true",
		"setup web1 balancer=false app=true services=false",
		"setup web2 balancer=false app=true services=false",
		"lb balance https://blog.example.com up=10.0.0.2:80,10.0.0.3:80 out=",
	}
	w.checkCalls(t, want)
}

func TestStopStart(t *testing.T) {
	w := newWorld()
	var slept []time.Duration
	r := &Runner{Site: testSite(), Nodes: w, HealthTimeout: time.Second,
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }}
	ctx := context.Background()
	if err := r.TakeOut(ctx, "web2"); err != nil {
		t.Fatal(err)
	}
	if len(slept) != 1 || slept[0] != DefaultStopDrain {
		t.Errorf("slept %v after taking out", slept)
	}
	w.unhealthy["10.0.0.3:80"] = true
	err := r.PutBack(ctx, "web2")
	if err == nil || !strings.Contains(err.Error(), "not healthy") {
		t.Errorf("PutBack of an unhealthy node = %v", err)
	}
	delete(w.unhealthy, "10.0.0.3:80")
	if err := r.PutBack(ctx, "web2"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"lb balance https://blog.example.com up=10.0.0.2:80,10.0.0.3:80 out=10.0.0.3:80",
		"lb balance https://blog.example.com up=10.0.0.2:80,10.0.0.3:80 out=",
		"lb balance https://blog.example.com up=10.0.0.2:80,10.0.0.3:80 out=",
	}
	w.checkCalls(t, want)
}

func TestWaitHealthy_AsksTheNode(t *testing.T) {
	w := newWorld()
	calls := 0
	r := &Runner{Site: testSite(), Nodes: w, Sleep: noSleep, HealthTimeout: 2 * time.Second,
		Health: func(_ context.Context, node string) error {
			calls++
			if calls < 3 {
				return errors.New("connection refused")
			}
			return nil
		}}
	if err := r.WaitHealthy(context.Background(), "web1"); err != nil || calls != 3 {
		t.Errorf("WaitHealthy = %v after %d checks", err, calls)
	}
	r.Health = func(context.Context, string) error { return errors.New("connection refused") }
	if err := r.WaitHealthy(context.Background(), "web1"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("WaitHealthy of a dead node = %v", err)
	}
}

// TestUpdate_FailureAtSwitch: a node failing at its switch stops the
// rolling update; the nodes after it keep the old version, the ones
// before it run the new one, and the error says which is which.
func TestUpdate_FailureAtSwitch(t *testing.T) {
	w := newWorld()
	site := testSite()
	site.Nodes = []string{"web1", "web2", "web3"}
	w.addrs["web3"] = "10.0.0.5"
	r := &Runner{Site: site, Nodes: w, Sleep: noSleep,
		Deploy: func(ctx context.Context, c deploy.Caller, p *deploy.Plan, o deploy.UpdateOptions) (*protocol.UpdateResult, deploy.UploadStats, error) {
			node := c.(*fakeNode).name
			if !o.Held("app.1") {
				w.add(node + " removed new instance")
				return nil, deploy.UploadStats{}, errors.New("aborted")
			}
			if node == "web2" {
				return nil, deploy.UploadStats{}, errors.New("reload failed")
			}
			w.add(node + " switched")
			return &protocol.UpdateResult{}, deploy.UploadStats{}, nil
		}}
	res, err := r.Update(context.Background(), testPlan(), UpdateOptions{})
	var ue *UpdateError
	if !errors.As(err, &ue) || !ue.Switched {
		t.Fatalf("Update = %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"web2: reload failed", "live on web1", "old one still on web3, web2"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "web3: aborted") {
		t.Errorf("error %q counts web3's removal, which was asked, as a failure", msg)
	}
	if !res[0].Switched || res[1].Switched || res[2].Switched {
		t.Errorf("results %+v", res)
	}
	calls := w.calls()
	if !contains(calls, "web3 removed new instance") || contains(calls, "web3 switched") {
		t.Errorf("calls %v", calls)
	}
	// web2 is put back in after its failure.
	if last := calls[len(calls)-1]; !strings.HasSuffix(last, "out=") && last != "web3 removed new instance" {
		t.Errorf("last call %q", last)
	}
}

func TestPlacement(t *testing.T) {
	cfg := &appconfig.Config{Workers: []appconfig.Worker{{Name: "a", Replicas: 5}, {Name: "b", Replicas: 1}, {Name: "c"}}}
	tests := []struct {
		n    int
		want []map[string]int
	}{
		{1, []map[string]int{{"a": 5, "b": 1, "c": 1}}},
		{2, []map[string]int{{"a": 3, "b": 1, "c": 1}, {"a": 2}}},
		{3, []map[string]int{{"a": 2, "b": 1, "c": 1}, {"a": 2}, {"a": 1}}},
	}
	for _, tt := range tests {
		got := Placement(cfg, tt.n)
		for i, p := range got {
			if p.Crons != (i == 0) || !reflect.DeepEqual(p.Workers, tt.want[i]) {
				t.Errorf("n=%d node %d: %+v, want workers %v", tt.n, i, p, tt.want[i])
			}
		}
	}
}
