package postgresql

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Why compute SCRAM verifiers here: the role's password then never
// reaches the server in clear (where a failed statement would log it),
// and Setup can check the stored verifier against the app's password and
// leave a matching one alone, so a second setup changes nothing.

// scramIterations is PostgreSQL's own default (scram_iterations).
const scramIterations = 4096

// scramVerifier returns the SCRAM-SHA-256 verifier of password with a
// fresh salt, in pg_authid.rolpassword's format.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return scramWith(password, salt, scramIterations)
}

func scramWith(password string, salt []byte, iter int) (string, error) {
	stored, server, err := scramKeys(password, salt, iter)
	if err != nil {
		return "", err
	}
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iter, b64(salt), b64(stored), b64(server)), nil
}

func scramKeys(password string, salt []byte, iter int) (stored, server []byte, err error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return nil, nil, err
	}
	mac := func(msg string) []byte {
		m := hmac.New(sha256.New, salted)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := sha256.Sum256(mac("Client Key"))
	return clientKey[:], mac("Server Key"), nil
}

// scramMatches reports whether verifier (pg_authid.rolpassword) is a
// SCRAM-SHA-256 verifier of password.
func scramMatches(verifier, password string) bool {
	rest, ok := strings.CutPrefix(verifier, "SCRAM-SHA-256$")
	if !ok {
		return false
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return false
	}
	iterS, saltS, ok1 := strings.Cut(params, ":")
	storedS, serverS, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return false
	}
	iter, err := strconv.Atoi(iterS)
	if err != nil || iter < 1 || iter > 1<<24 {
		return false
	}
	dec := base64.StdEncoding.DecodeString
	salt, err1 := dec(saltS)
	wantStored, err2 := dec(storedS)
	wantServer, err3 := dec(serverS)
	if err1 != nil || err2 != nil || err3 != nil {
		return false
	}
	stored, server, err := scramKeys(password, salt, iter)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(stored, wantStored) == 1 && subtle.ConstantTimeCompare(server, wantServer) == 1
}
