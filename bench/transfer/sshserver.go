package main

// A minimal SSH server on 127.0.0.1 that serves exec requests with the
// benchmark's node, so the numbers include x/crypto/ssh's encryption and
// flow control as a real update pays them (minus the network). sshxtest's
// server needs a testing.TB, which a program does not have.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/sshx"
)

type sshServer struct {
	addr    string
	hostKey string
	client  ssh.Signer
	ln      net.Listener
	wg      sync.WaitGroup
	// rx and tx count the TCP bytes of all connections: SSH's own
	// framing, encryption overhead and handshakes included.
	rx, tx atomic.Int64
}

// countingConn counts what crosses a connection.
type countingConn struct {
	net.Conn
	rx, tx *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.rx.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.tx.Add(int64(n))
	return n, err
}

func newSigner() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

func startSSHServer(ctx context.Context, n *node) (*sshServer, error) {
	host, err := newSigner()
	if err != nil {
		return nil, err
	}
	client, err := newSigner()
	if err != nil {
		return nil, err
	}
	want := string(client.PublicKey().Marshal())
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == want {
				return &ssh.Permissions{}, nil
			}
			return nil, ssh.ErrNoAuth
		},
	}
	cfg.AddHostKey(host)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sshServer{addr: ln.Addr().String(), hostKey: sshx.KeyLine(host.PublicKey()), client: client, ln: ln}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serveConn(ctx, countingConn{conn, &s.rx, &s.tx}, cfg, n) })
		}
	})
	return s, nil
}

func (s *sshServer) close() {
	s.ln.Close()
	s.wg.Wait()
}

// config is how the client reaches the server.
func (s *sshServer) config() sshx.Config {
	return sshx.Config{
		Addr:     s.addr,
		Auth:     sshx.Auth{Signers: []ssh.Signer{s.client}},
		HostKeys: sshx.FixedHostKey(s.hostKey),
	}
}

func (s *sshServer) serveConn(ctx context.Context, conn net.Conn, cfg *ssh.ServerConfig, n *node) {
	defer conn.Close()
	sc, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Go(func() {
			defer ch.Close()
			for req := range chReqs {
				if req.Type != "exec" {
					req.Reply(false, nil)
					continue
				}
				var msg struct{ Command string }
				if ssh.Unmarshal(req.Payload, &msg) != nil {
					req.Reply(false, nil)
					continue
				}
				req.Reply(true, nil)
				go ssh.DiscardRequests(chReqs)
				// The benchmark's arguments are all shell-safe words, so
				// splitting undoes sshx's quoting.
				code := n.serve(ctx, strings.Fields(msg.Command), ch, ch)
				ch.CloseWrite()
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(code)))
				return
			}
		})
	}
}
