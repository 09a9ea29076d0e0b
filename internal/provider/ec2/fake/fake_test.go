package fake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// post sends a signed Query API request with the given form.
func post(t *testing.T, s *Server, akid, secret string, form url.Values) (int, string) {
	t.Helper()
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "ec2", DefaultRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServer_Auth(t *testing.T) {
	s := New(Options{Errorf: t.Errorf})
	defer s.Close()
	form := url.Values{"Action": {"DescribeVpcs"}, "Version": {APIVersion}}
	tests := []struct {
		name, akid, secret string
		status             int
		want               string
	}{
		{"good", DefaultAccessKeyID, DefaultSecretAccessKey, 200, "<DescribeVpcsResponse"},
		{"wrong key id", "AKIAOTHER", DefaultSecretAccessKey, 401, "<Code>AuthFailure</Code>"},
		{"wrong secret", DefaultAccessKeyID, "nope", 401, "<Code>AuthFailure</Code>"},
	}
	for _, tt := range tests {
		status, body := post(t, s, tt.akid, tt.secret, form)
		if status != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s: HTTP %d %s, want %d with %s", tt.name, status, body, tt.status, tt.want)
		}
	}
	// Tampering with the body after signing breaks the signature.
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sum := sha256.Sum256([]byte("Action=RunInstances"))
	_ = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: DefaultAccessKeyID, SecretAccessKey: DefaultSecretAccessKey}, req, hex.EncodeToString(sum[:]), "ec2", DefaultRegion, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("tampered request: HTTP %d, want 401", resp.StatusCode)
	}
}

func TestServer_UnmodelledFailsLoudly(t *testing.T) {
	var reported []string
	s := New(Options{Errorf: func(format string, args ...any) { reported = append(reported, fmt.Sprintf(format, args...)) }})
	defer s.Close()
	tests := []url.Values{
		{"Action": {"DeleteVpc"}, "Version": {APIVersion}},
		{"Action": {"DescribeVpcs"}, "Version": {"2014-01-01"}},
		{"Action": {"DescribeVpcs"}, "Version": {APIVersion}, "DryRun": {"true"}},
		{"Action": {"DescribeVpcs"}, "Version": {APIVersion}, "Filter.1.Name": {"cidr"}, "Filter.1.Value.1": {"10.0.0.0/8"}},
		{"Action": {"DescribeImages"}, "Version": {APIVersion}},
	}
	for i, form := range tests {
		status, body := post(t, s, DefaultAccessKeyID, DefaultSecretAccessKey, form)
		if status != http.StatusNotImplemented {
			t.Errorf("request %d (%v): HTTP %d %s, want 501", i, form, status, body)
		}
	}
	if len(reported) != len(tests) {
		t.Errorf("Errorf called %d times, want %d: %q", len(reported), len(tests), reported)
	}
}

func TestServer_ClientTokenIdempotent(t *testing.T) {
	s := New(Options{Errorf: t.Errorf})
	defer s.Close()
	form := url.Values{"Action": {"RunInstances"}, "Version": {APIVersion}, "ImageId": {s.Images()[0].ID},
		"InstanceType": {"t3.micro"}, "MinCount": {"1"}, "MaxCount": {"1"}, "ClientToken": {"tok-1"}}
	for range 2 {
		if status, body := post(t, s, DefaultAccessKeyID, DefaultSecretAccessKey, form); status != 200 {
			t.Fatalf("RunInstances: HTTP %d %s", status, body)
		}
	}
	if n := len(s.Instances()); n != 1 {
		t.Errorf("two RunInstances with one client token made %d instances, want 1", n)
	}
}

func TestFilter_WildcardsCrossSlash(t *testing.T) {
	f := filter{values: []string{"ubuntu/images/*ubuntu-jammy-22.04-amd64-server-*"}}
	if !f.match("ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240701") {
		t.Error("EC2 wildcard * must match across /")
	}
	if f.match("ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-20240701") {
		t.Error("matched an arm64 image")
	}
}
