package datastore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Flow binaries shipped to other machines (Kubernetes pods, deployed
// flows) are stored once under their SHA-256.

// CodeKey is the key of the flow binary with this SHA-256.
func CodeKey(sum string) string { return "code/" + sum }

// ErrNoCode is returned by CodeURL when no binary has that SHA-256.
var ErrNoCode = errors.New("no such flow binary in the datastore")

// presigner is a backend that makes plain-GET URLs (S3).
type presigner interface {
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// CanSign says whether the backend can make URLs that others fetch
// objects with.
func (s *Store) CanSign() bool {
	_, ok := s.b.(presigner)
	return ok
}

// CodeURL returns a URL, valid for ttl, that fetches the stored binary
// with this SHA-256 with a plain GET.
func (s *Store) CodeURL(ctx context.Context, sum string, ttl time.Duration) (string, error) {
	p, ok := s.b.(presigner)
	if !ok {
		return "", fmt.Errorf("the datastore %s cannot give others a URL to fetch the flow's code from; use an S3 datastore (s3://bucket/prefix)", s.b)
	}
	exists, err := s.b.Exists(ctx, CodeKey(sum))
	if err != nil {
		return "", fmt.Errorf("cannot look for the flow binary %s in the datastore %s: %w", sum, s.b, err)
	}
	if !exists {
		return "", fmt.Errorf("flow binary %s in the datastore %s: %w", sum, s.b, ErrNoCode)
	}
	return p.PresignGet(ctx, CodeKey(sum), ttl)
}
