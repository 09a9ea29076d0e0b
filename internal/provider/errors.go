package provider

import (
	"errors"
	"fmt"
)

// Sentinels that drivers wrap so callers can test for them with errors.Is.
var (
	// ErrNotFound: the node, image or size does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNotSupported: the driver cannot do this at all.
	ErrNotSupported = errors.New("not supported by this provider")
	// ErrAuth: the credentials were refused.
	ErrAuth = errors.New("authentication failed")
	// ErrQuota: the account is out of quota or capacity.
	ErrQuota = errors.New("quota exceeded")
	// ErrRateLimited: the API kept refusing because of rate limits after
	// retries.
	ErrRateLimited = errors.New("rate limited")
	// ErrExists: a node with that name already exists.
	ErrExists = errors.New("already exists")
	// ErrInvalid: the provider rejected the request as invalid (bad
	// region, bad image for this size, ...).
	ErrInvalid = errors.New("invalid request")
)

// APIError is a failed call to a provider's API. It wraps one of the
// sentinels above when one applies, so both errors.Is(err, ErrAuth) and
// errors.As(err, &apiErr) work.
type APIError struct {
	Provider string // provider type, "rackspace"
	Op       string // what we were doing, "create server"
	Status   int    // HTTP status, 0 if none
	Message  string // the provider's own message, secrets removed
	Kind     error  // one of the sentinels, or nil
}

func (e *APIError) Error() string {
	msg := e.Provider + ": " + e.Op
	if e.Status != 0 {
		msg += fmt.Sprintf(": HTTP %d", e.Status)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Kind != nil && e.Message == "" {
		msg += ": " + e.Kind.Error()
	}
	return msg
}

// Unwrap lets errors.Is find the sentinel.
func (e *APIError) Unwrap() error { return e.Kind }

// KindForStatus maps common HTTP statuses to sentinels: 401/403 to ErrAuth,
// 404 to ErrNotFound, 409 to ErrExists, 413 and 402 to ErrQuota, 429 to
// ErrRateLimited, 400/422 to ErrInvalid. Drivers refine this when their API
// says more.
func KindForStatus(status int) error {
	switch status {
	case 401, 403:
		return ErrAuth
	case 404:
		return ErrNotFound
	case 409:
		return ErrExists
	case 402, 413:
		return ErrQuota
	case 429:
		return ErrRateLimited
	case 400, 422:
		return ErrInvalid
	}
	return nil
}
