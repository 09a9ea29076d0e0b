package devel

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/appconfig"
)

func services(names ...string) []appconfig.Service {
	var out []appconfig.Service
	for _, n := range names {
		out = append(out, appconfig.Service{Name: n})
	}
	return out
}

func TestEnv(t *testing.T) {
	home := t.TempDir()
	data := filepath.Join(home, ".toppcloud", "devel", "blog")
	for _, tc := range []struct {
		name        string
		services    []string
		settings    map[string]string
		want        map[string]string
		wantMissing []string
		wantErr     string
	}{
		{name: "no services", want: map[string]string{}},
		{
			name:     "directories default under the data directory",
			services: []string{"writable_root", "files"},
			want: map[string]string{
				"CONFIG_FILES":         filepath.Join(data, "files"),
				"CONFIG_WRITABLE_ROOT": filepath.Join(data, "writable-root"),
			},
		},
		{
			name:     "directories from settings: ~ and relative paths",
			services: []string{"files", "writable_root"},
			settings: map[string]string{"files": "~/blog-files", "writable_root": "wr"},
			want: map[string]string{
				"CONFIG_FILES":         filepath.Join(home, "blog-files"),
				"CONFIG_WRITABLE_ROOT": filepath.Join(home, "conf", "wr"),
			},
		},
		{
			name:        "a database without settings is missing, with what to write",
			services:    []string{"postgresql"},
			want:        map[string]string{},
			wantMissing: []string{"postgresql.dbname = APP_NAME", "[devel:blog]", "CONFIG_PG_"},
		},
		{
			name:     "postgresql from the original's postgis keys, defaults filled in",
			services: []string{"postgresql"},
			settings: map[string]string{"postgis.dbname": "devel_blog"},
			want: map[string]string{
				"CONFIG_PG_DBNAME": "devel_blog", "CONFIG_PG_USER": "me", "CONFIG_PG_PASSWORD": "",
				"CONFIG_PG_HOST": "", "CONFIG_PG_PORT": "", "CONFIG_PG_SQLALCHEMY": "postgresql://me@/devel_blog",
			},
		},
		{
			name:     "postgresql keys win over postgis keys; password escaped in the URL",
			services: []string{"postgresql"},
			settings: map[string]string{"postgis.dbname": "old", "postgresql.dbname": "new", "postgresql.host": "db.local",
				"postgresql.port": "5433", "postgresql.user": "u", "postgresql.password": "p@ss/w"},
			want: map[string]string{
				"CONFIG_PG_DBNAME": "new", "CONFIG_PG_USER": "u", "CONFIG_PG_PASSWORD": "p@ss/w",
				"CONFIG_PG_HOST": "db.local", "CONFIG_PG_PORT": "5433",
				"CONFIG_PG_SQLALCHEMY": "postgresql://u:p%40ss%2Fw@db.local:5433/new",
			},
		},
		{
			name:     "a socket directory as host",
			services: []string{"postgis"},
			settings: map[string]string{"postgis.host": "/var/run/postgresql"},
			want: map[string]string{
				"CONFIG_PG_DBNAME": "blog", "CONFIG_PG_USER": "me", "CONFIG_PG_PASSWORD": "",
				"CONFIG_PG_HOST": "/var/run/postgresql", "CONFIG_PG_PORT": "",
				"CONFIG_PG_SQLALCHEMY": "postgresql://me@/blog?host=%2Fvar%2Frun%2Fpostgresql",
			},
		},
		{
			name:     "mysql defaults to root; extra keys pass through; SQLAlchemy URL can be given",
			services: []string{"mysql"},
			settings: map[string]string{"mysql.host": "127.0.0.1", "mysql.charset": "utf8mb4", "mysql.sqlalchemy": "mysql+pymysql://x"},
			want: map[string]string{
				"CONFIG_MYSQL_DBNAME": "blog", "CONFIG_MYSQL_USER": "root", "CONFIG_MYSQL_PASSWORD": "",
				"CONFIG_MYSQL_HOST": "127.0.0.1", "CONFIG_MYSQL_PORT": "", "CONFIG_MYSQL_CHARSET": "utf8mb4",
				"CONFIG_MYSQL_SQLALCHEMY": "mysql+pymysql://x",
			},
		},
		{
			name:     "redis",
			services: []string{"redis"},
			settings: map[string]string{"redis.port": "6380", "redis.password": "pw"},
			want: map[string]string{
				"CONFIG_REDIS_HOST": "127.0.0.1", "CONFIG_REDIS_PORT": "6380", "CONFIG_REDIS_USER": "",
				"CONFIG_REDIS_PASSWORD": "pw", "CONFIG_REDIS_PREFIX": "blog:", "CONFIG_REDIS_URL": "redis://:pw@127.0.0.1:6380/0",
			},
		},
		{
			name:        "couchdb and unknown services are missing, with the reason",
			services:    []string{"couchdb", "nfs"},
			want:        map[string]string{},
			wantMissing: []string{"service.couchdb: CouchDB is not packaged", "service.nfs: toppcloud has no service"},
		},
		{
			name:     "a bad setting name",
			services: []string{"mysql"},
			settings: map[string]string{"mysql.Host-x": "h"},
			wantErr:  "mysql.Host-x",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Env(Input{App: "blog", Services: services(tc.services...), Settings: tc.settings,
				DataDir: data, Home: home, BaseDir: filepath.Join(home, "conf"), User: "me"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(res.Env, tc.want) {
				t.Errorf("Env = %v\nwant  %v", res.Env, tc.want)
			}
			missing := strings.Join(res.Missing, "\n")
			for _, w := range tc.wantMissing {
				if !strings.Contains(missing, w) {
					t.Errorf("Missing = %q, want it to mention %q", missing, w)
				}
			}
			if len(tc.wantMissing) == 0 && len(res.Missing) > 0 {
				t.Errorf("Missing = %q", res.Missing)
			}
			if len(res.Provided)+len(res.Missing) != len(tc.services) {
				t.Errorf("Provided %q and Missing %q do not cover %v", res.Provided, res.Missing, tc.services)
			}
			for _, k := range []string{"CONFIG_FILES", "CONFIG_WRITABLE_ROOT"} {
				if d, ok := res.Env[k]; ok {
					if st, err := os.Stat(d); err != nil || !st.IsDir() {
						t.Errorf("%s %s not created: %v", k, d, err)
					}
				}
			}
		})
	}
}
