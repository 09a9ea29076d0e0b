// Command serve measures how long `toppcloud serve` takes to show an edit:
// from saving a Python app's file to the first response with the new
// content (poll interval, process restart, application import), over
// several edits, and what a poll of a larger lib/python tree costs.
//
//	go run ./bench/serve [-edits 10] [-libfiles 3000]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/devserver"
)

func main() {
	edits := flag.Int("edits", 10, "edits to time")
	libFiles := flag.Int("libfiles", 3000, "Python files in lib/python (a realistic library tree)")
	flag.Parse()
	dir, err := os.MkdirTemp("", "bench-serve-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	write := func(rel, s string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p+".tmp", []byte(s), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			log.Fatal(err)
		}
	}
	write("app.ini", "[production]\napp_name = bench\nrunner = main.py\n")
	for i := 0; i < *libFiles; i++ {
		write(fmt.Sprintf("lib/python/pkg%d/mod%d.py", i/50, i), "X = 1\n")
	}
	app := func(n int) string {
		return fmt.Sprintf("def application(e, s):\n    s('200 OK', [])\n    return [b'version %d']\n", n)
	}
	write("main.py", app(0))
	s, err := devserver.New(devserver.Options{AppDir: dir, DataDir: filepath.Join(dir, ".devel"), Log: io.Discard})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, ln)
	url := "http://" + ln.Addr().String() + "/"
	waitFor := func(want string) time.Duration {
		start := time.Now()
		for {
			resp, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(string(b), want) {
					return time.Since(start)
				}
			}
			if time.Since(start) > 30*time.Second {
				log.Fatalf("never saw %q", want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	fmt.Printf("first load: %v\n", waitFor("version 0").Round(time.Millisecond))
	var ds []time.Duration
	for i := 1; i <= *edits; i++ {
		time.Sleep(400 * time.Millisecond) // edits land anywhere in the poll cycle
		write("main.py", app(i))
		ds = append(ds, waitFor(fmt.Sprintf("version %d", i)))
	}
	slices.Sort(ds)
	fmt.Printf("edit to new response (%d edits, %d lib files, poll %v): median %v, max %v\n",
		len(ds), *libFiles, devserver.DefaultPoll, ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
}
