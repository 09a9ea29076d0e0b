package sshx_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/sshx/sshxtest"
)

// The benchmarks run against the in-process server on loopback, so they
// measure this package and x/crypto/ssh, not a network or sshd:
//
//	go test -run '^$' -bench . -benchmem ./internal/sshx/

func BenchmarkDial(b *testing.B) {
	key := sshxtest.NewSigner(b)
	srv := sshxtest.NewServer(b, func(*sshxtest.Exec) int { return 0 }, key.PublicKey())
	cfg := srv.Config(key)
	for b.Loop() {
		c, err := sshx.Dial(b.Context(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

func BenchmarkClient_Run(b *testing.B) {
	key := sshxtest.NewSigner(b)
	srv := sshxtest.NewServer(b, func(e *sshxtest.Exec) int {
		io.WriteString(e.Stdout, "ok\n")
		return 0
	}, key.PublicKey())
	c := srv.Dial(b, key)
	for b.Loop() {
		if _, err := c.Output(b.Context(), []string{"true"}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClient_Stdin is the throughput of streaming stdin (what an
// upload of the agent binary or of application files costs on the wire).
func BenchmarkClient_Stdin(b *testing.B) {
	key := sshxtest.NewSigner(b)
	srv := sshxtest.NewServer(b, func(e *sshxtest.Exec) int {
		io.Copy(io.Discard, e.Stdin)
		return 0
	}, key.PublicKey())
	c := srv.Dial(b, key)
	data := bytes.Repeat([]byte("x"), 16<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := c.Run(b.Context(), []string{"cat"}, sshx.RunOptions{Stdin: bytes.NewReader(data)}); err != nil {
			b.Fatal(err)
		}
	}
}
