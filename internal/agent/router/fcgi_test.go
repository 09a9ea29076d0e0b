package router

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
)

// fcgiParams is a minimal FastCGI responder standing in for php-fpm: it
// answers every request with a JSON seen whose Env holds all the params
// Caddy sent. Go's net/http/fcgi would hide SCRIPT_NAME, REQUEST_URI and
// PATH_INFO, which are what the PHP routes must get right.
func fcgiParams(l net.Listener, upstream string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = serveFCGI(c, upstream)
		}()
	}
}

const (
	fcgiBeginRequest = 1
	fcgiEndRequest   = 3
	fcgiParamsType   = 4
	fcgiStdin        = 5
	fcgiStdout       = 6
)

func serveFCGI(c net.Conn, upstream string) error {
	r := bufio.NewReader(c)
	var params []byte
	var id uint16
	for done := false; !done; {
		var h [8]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return err
		}
		typ, n, pad := h[1], binary.BigEndian.Uint16(h[4:6]), h[6]
		id = binary.BigEndian.Uint16(h[2:4])
		body := make([]byte, int(n)+int(pad))
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		switch typ {
		case fcgiParamsType:
			params = append(params, body[:n]...)
		case fcgiStdin:
			done = n == 0
		case fcgiBeginRequest:
		default:
			return errors.New("unexpected record")
		}
	}
	env := map[string]string{}
	for len(params) > 0 {
		var ln [2]int
		for i := range ln {
			if params[0]&0x80 == 0 {
				ln[i], params = int(params[0]), params[1:]
			} else {
				ln[i], params = int(binary.BigEndian.Uint32(params[:4])&0x7fffffff), params[4:]
			}
		}
		env[string(params[:ln[0]])] = string(params[ln[0] : ln[0]+ln[1]])
		params = params[ln[0]+ln[1]:]
	}
	body, _ := json.Marshal(seen{Upstream: upstream, Method: env["REQUEST_METHOD"], Host: env["HTTP_HOST"], Env: env})
	out := append([]byte("Status: 200 OK\r\nContent-Type: application/json\r\n\r\n"), body...)
	write := func(typ byte, content []byte) error {
		h := []byte{1, typ, byte(id >> 8), byte(id), byte(len(content) >> 8), byte(len(content)), 0, 0}
		_, err := c.Write(append(h, content...))
		return err
	}
	for len(out) > 0 {
		n := min(len(out), 65535)
		if err := write(fcgiStdout, out[:n]); err != nil {
			return err
		}
		out = out[n:]
	}
	if err := write(fcgiStdout, nil); err != nil {
		return err
	}
	return write(fcgiEndRequest, make([]byte, 8))
}
