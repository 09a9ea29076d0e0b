package instance

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// A minimal FastCGI client (responder role, one request per connection),
// enough for the health check and update_fetch against php-fpm. Go's
// net/http/fcgi only serves; no maintained client module is among the
// ones this project uses, and the part we need is this small.

const (
	fcgiVersion      = 1
	fcgiBeginRequest = 1
	fcgiEndRequest   = 3
	fcgiParams       = 4
	fcgiStdin        = 5
	fcgiStdout       = 6
	fcgiStderr       = 7
	fcgiResponder    = 1
	fcgiRequestID    = 1
	fcgiMaxContent   = 65535
)

func fcgiRecord(w *bytes.Buffer, typ uint8, content []byte) {
	for first := true; first || len(content) > 0; first = false {
		chunk := content
		if len(chunk) > fcgiMaxContent {
			chunk = chunk[:fcgiMaxContent]
		}
		content = content[len(chunk):]
		pad := (8 - len(chunk)%8) % 8
		w.Write([]byte{fcgiVersion, typ, 0, fcgiRequestID, byte(len(chunk) >> 8), byte(len(chunk)), byte(pad), 0})
		w.Write(chunk)
		w.Write(make([]byte, pad))
	}
}

func fcgiLen(w *bytes.Buffer, n int) {
	if n < 128 {
		w.WriteByte(byte(n))
		return
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(n)|1<<31)
	w.Write(b[:])
}

// fcgiRequest encodes a whole request: begin, params, end of params, the
// body as stdin, end of stdin.
func fcgiRequest(params map[string]string, body []byte) []byte {
	var out bytes.Buffer
	fcgiRecord(&out, fcgiBeginRequest, []byte{0, fcgiResponder, 0, 0, 0, 0, 0, 0})
	var p bytes.Buffer
	for k, v := range params {
		fcgiLen(&p, len(k))
		fcgiLen(&p, len(v))
		p.WriteString(k)
		p.WriteString(v)
	}
	if p.Len() > 0 {
		fcgiRecord(&out, fcgiParams, p.Bytes())
	}
	fcgiRecord(&out, fcgiParams, nil)
	if len(body) > 0 {
		fcgiRecord(&out, fcgiStdin, body)
	}
	fcgiRecord(&out, fcgiStdin, nil)
	return out.Bytes()
}

// fcgiStream reads a response's stdout records as a stream; stderr records
// are collected in Stderr. It returns io.EOF after the end-request record.
type fcgiStream struct {
	r      *bufio.Reader
	buf    []byte
	done   bool
	Stderr bytes.Buffer
	// AppStatus is the script's exit status from the end-request record.
	AppStatus uint32
}

func (s *fcgiStream) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.done {
			return 0, io.EOF
		}
		if err := s.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

func (s *fcgiStream) next() error {
	var h [8]byte
	if _, err := io.ReadFull(s.r, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("fastcgi: read record: %w", err)
	}
	if h[0] != fcgiVersion {
		return fmt.Errorf("fastcgi: unknown protocol version %d", h[0])
	}
	n := int(h[4])<<8 | int(h[5])
	content := make([]byte, n+int(h[6]))
	if _, err := io.ReadFull(s.r, content); err != nil {
		return fmt.Errorf("fastcgi: read record: %w", err)
	}
	content = content[:n]
	switch h[1] {
	case fcgiStdout:
		s.buf = content
	case fcgiStderr:
		s.Stderr.Write(content)
	case fcgiEndRequest:
		if len(content) >= 4 {
			s.AppStatus = binary.BigEndian.Uint32(content)
		}
		s.done = true
	}
	return nil
}

// fcgiRoundTrip sends the request on rw and reads the CGI response head:
// the status (from a Status: header, 200 without one) and headers. The
// body is read from the returned stream.
func fcgiRoundTrip(rw io.ReadWriter, params map[string]string, body []byte) (status int, header http.Header, stream *fcgiStream, br *bufio.Reader, err error) {
	if _, err := rw.Write(fcgiRequest(params, body)); err != nil {
		return 0, nil, nil, nil, fmt.Errorf("fastcgi: write request: %w", err)
	}
	stream = &fcgiStream{r: bufio.NewReader(rw)}
	br = bufio.NewReader(stream)
	mh, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil && !(errors.Is(err, io.EOF) && len(mh) > 0) {
		if errors.Is(err, io.EOF) && stream.done {
			return 0, nil, stream, br, fmt.Errorf("fastcgi: empty response: %s", strings.TrimSpace(stream.Stderr.String()))
		}
		return 0, nil, stream, br, fmt.Errorf("fastcgi: read response head: %w", err)
	}
	status = http.StatusOK
	if s := mh.Get("Status"); s != "" {
		code, _, _ := strings.Cut(s, " ")
		if status, err = strconv.Atoi(code); err != nil {
			return 0, nil, stream, br, fmt.Errorf("fastcgi: bad Status header %q", s)
		}
	}
	return status, http.Header(mh), stream, br, nil
}
