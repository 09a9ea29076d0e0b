// Command clistart measures how long `toppcloud --help` takes: the cost of
// starting the binary with every provider registered (target ≤ 30 ms).
//
//	go build -o bin/toppcloud ./cmd/toppcloud && go run ./bench/clistart [-n 50] [-bin bin/toppcloud]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"time"
)

func main() {
	n := flag.Int("n", 50, "runs per command")
	bin := flag.String("bin", "bin/toppcloud", "toppcloud binary")
	flag.Parse()
	if _, err := os.Stat(*bin); err != nil {
		fmt.Fprintf(os.Stderr, "clistart: %v (build it first: make build)\n", err)
		os.Exit(1)
	}
	for _, args := range [][]string{{"--help"}, {"version"}, {"create-node", "--help"}} {
		var times []time.Duration
		for i := 0; i < *n; i++ {
			cmd := exec.Command(*bin, args...)
			start := time.Now()
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "clistart: %v: %v\n", args, err)
				os.Exit(1)
			}
			times = append(times, time.Since(start))
		}
		slices.Sort(times)
		fmt.Printf("toppcloud %-22s min %6.1f ms  median %6.1f ms  p90 %6.1f ms  (n=%d)\n",
			fmt.Sprint(args), ms(times[0]), ms(times[len(times)/2]), ms(times[len(times)*9/10]), *n)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
