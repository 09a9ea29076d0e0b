package instance

import (
	"bytes"
	"maps"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

func TestLayout_Environment(t *testing.T) {
	l := layout.Default()
	base := map[string]string{
		"SILVER_VERSION":       "silverlining/v1 toppcloud",
		"SILVER_INSTANCE_NAME": "blog.2024-01-02_001",
		"SILVER_APP_NAME":      "blog",
		"SILVER_LOGS":          "/var/log/toppcloud/apps/blog",
		"TEMP":                 "/var/lib/toppcloud/apps/blog/tmp",
	}
	with := func(extra map[string]string) map[string]string {
		m := maps.Clone(base)
		maps.Copy(m, extra)
		return m
	}
	for _, tc := range []struct {
		name    string
		in      EnvInput
		want    map[string]string
		wantErr string
	}{
		{name: "minimal", want: base},
		{
			name: "canonical hostname is the shortest host",
			in:   EnvInput{Locations: []string{"http://www.example.com/blog", ".example.com", "https://example.org:8443/x", "*"}},
			want: with(map[string]string{"SILVER_CANONICAL_HOSTNAME": "example.com"}),
		},
		{
			name: "ties go to the first alphabetically, port dropped",
			in:   EnvInput{Locations: []string{"b.example:8080", "A.example"}},
			want: with(map[string]string{"SILVER_CANONICAL_HOSTNAME": "a.example"}),
		},
		{name: "only a catch-all", in: EnvInput{Locations: []string{"*", "*/x"}}, want: base},
		{
			name: "uploaded config wins over config.default",
			in:   EnvInput{ConfigUploaded: true, ConfigDefault: "conf"},
			want: with(map[string]string{"SILVER_APP_CONFIG": "/var/lib/toppcloud/apps/blog/config"}),
		},
		{
			name: "config.default",
			in:   EnvInput{ConfigDefault: "conf/prod"},
			want: with(map[string]string{"SILVER_APP_CONFIG": "/var/www/blog.2024-01-02_001/conf/prod"}),
		},
		{name: "config.default outside the app", in: EnvInput{ConfigDefault: "../x"}, wantErr: "config.default"},
		{
			name: "services",
			in:   EnvInput{Services: map[string]string{"CONFIG_PG_DBNAME": "blog", "CONFIG_FILES": "/var/lib/toppcloud/apps/blog/files"}},
			want: with(map[string]string{"CONFIG_PG_DBNAME": "blog", "CONFIG_FILES": "/var/lib/toppcloud/apps/blog/files"}),
		},
		{name: "a service cannot set SILVER_", in: EnvInput{Services: map[string]string{"SILVER_VERSION": "x"}}, wantErr: "SILVER_VERSION"},
		{name: "lower-case service variable", in: EnvInput{Services: map[string]string{"CONFIG_pg": "x"}}, wantErr: "CONFIG_pg"},
		{name: "newline in a value", in: EnvInput{Services: map[string]string{"CONFIG_X": "a\nb"}}, wantErr: "line breaks"},
		{name: "version without the silverlining prefix", in: EnvInput{SilverVersion: "toppcloud/1"}, wantErr: "silverlining/"},
		{name: "instance of another app", in: EnvInput{Instance: "wiki.2024-01-02_001"}, wantErr: "not an instance"},
		{name: "bad app name", in: EnvInput{App: "Blog/x", Instance: "Blog/x.1"}, wantErr: "app name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if in.App == "" {
				in.App = "blog"
			}
			if in.Instance == "" {
				in.Instance = "blog.2024-01-02_001"
			}
			if in.SilverVersion == "" {
				in.SilverVersion = "silverlining/v1 toppcloud"
			}
			got, err := Environment(l, in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestLayout_EnvironmentDefaultVersion(t *testing.T) {
	env, err := Environment(layout.Default(), EnvInput{App: "blog", Instance: "blog.x"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(env["SILVER_VERSION"], "silverlining/") {
		t.Errorf("SILVER_VERSION = %q", env["SILVER_VERSION"])
	}
}

func TestEnvFile_RoundTrip(t *testing.T) {
	env := map[string]string{
		"A": "plain", "B": `quote " backslash \ dollar $HOME backtick ` + "`x`", "C": "", "D": " spaces ",
		"E": "unicode é ✓", "F": "'single'",
	}
	data, err := EnvFile(env)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseEnvFile(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if !maps.Equal(got, env) {
		t.Errorf("round trip:\ngot  %q\nwant %q\nfile:\n%s", got, env, data)
	}
	if _, err := EnvFile(map[string]string{"X": "a\nb"}); err == nil {
		t.Error("a newline in a value was accepted")
	}
	if _, err := EnvFile(map[string]string{"X-Y": "a"}); err == nil {
		t.Error("a bad name was accepted")
	}
}

func TestInstance_Validate(t *testing.T) {
	ok := func() *Instance {
		return &Instance{App: "blog", Name: "blog.2024-01-02_001", Kind: appconfig.KindPython, Runner: "main.py",
			Token: goldenToken, Layout: layout.Default()}
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("valid instance: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(i *Instance)
	}{
		{"instance of another app", func(i *Instance) { i.Name = "wiki.2024-01-02_001" }},
		{"path in the name", func(i *Instance) { i.Name = "blog.x/../../etc" }},
		{"runner outside", func(i *Instance) { i.Runner = "../main.py" }},
		{"absolute runner", func(i *Instance) { i.Runner = "/bin/sh" }},
		{"runner with a specifier", func(i *Instance) { i.Runner = "m%i.py" }},
		{"runner with a variable", func(i *Instance) { i.Runner = "$HOME.py" }},
		{"no runner", func(i *Instance) { i.Runner = "" }},
		{"root", func(i *Instance) { i.User = "root" }},
		{"www-mgr", func(i *Instance) { i.User = "www-mgr" }},
		{"no token", func(i *Instance) { i.Token = "" }},
		{"command without port", func(i *Instance) { i.Kind = appconfig.KindCommand }},
		{"unknown kind", func(i *Instance) { i.Kind = appconfig.KindUnknown }},
		{"bad env", func(i *Instance) { i.Env = map[string]string{"A": "x\ny"} }},
		{"runner name with a quote", func(i *Instance) { i.RunnerName = `a"b` }},
	} {
		i := ok()
		tc.change(i)
		if err := i.Validate(); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestCreateUserArgv(t *testing.T) {
	got := strings.Join(CreateUserArgv(layout.Default(), "blog"), " ")
	want := "useradd --system --user-group --groups toppcloud-apps --home-dir /var/lib/toppcloud/apps/blog --no-create-home --shell /usr/sbin/nologin --comment toppcloud app blog app-blog"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if n := len(UserName(strings.Repeat("a", appconfig.MaxAppNameLen))); n > 32 {
		t.Errorf("the longest app's user name has %d characters", n)
	}
}

// TestAppSecret: each app gets its own secret from the node's, and one
// app's tells nothing of another's.
func TestAppSecret(t *testing.T) {
	node := []byte("c2VjcmV0LW9mLXRoZS1ub2RlLWZvci10ZXN0cw\n")
	blog, shop := AppSecret(node, "blog"), AppSecret(node, "shop")
	if blog == shop || blog == AppSecret([]byte("another node"), "blog") {
		t.Errorf("secrets shared: blog %q shop %q", blog, shop)
	}
	if blog != AppSecret(bytes.TrimSpace(node), "blog") || len(blog) != 43 {
		t.Errorf("blog's secret %q is not stable", blog)
	}
	if strings.Contains(blog, strings.TrimSpace(string(node))) {
		t.Error("the node secret shows in an app's")
	}
	l := layout.Default()
	inst := &Instance{App: "blog", Name: "blog.2024-01-01_001", Kind: appconfig.KindPython, Runner: "app.py", Layout: l, Token: strings.Repeat("a", 64)}
	if got := inst.ProcessEnv()[EnvSecretFile]; got != "/var/lib/toppcloud/apps/blog/secret" {
		t.Errorf("%s = %q", EnvSecretFile, got)
	}
	dropIn, err := inst.DropIn()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(dropIn), l.Secret+" ") || !strings.Contains(string(dropIn), l.AppSecret("blog")) {
		t.Errorf("the sandbox binds the node secret, or not the app's:\n%s", dropIn)
	}
}
