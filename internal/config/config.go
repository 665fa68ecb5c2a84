// Package config finds the settings in force: the datastore, the metadata
// store, the user and the service token. Environment variables win over the
// config file, which wins over the defaults; each value remembers where it
// came from so that 'stepwise config show' can say.
package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/local"
	"stepwise.dev/stepwise/internal/datastore/s3"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/service"
	"stepwise.dev/stepwise/internal/metadata/sqlite"
)

// Environment variables.
const (
	EnvDatastore = "STEPWISE_DATASTORE"
	EnvMetadata  = "STEPWISE_METADATA"
	EnvUser      = "STEPWISE_USER"
	EnvToken     = "STEPWISE_TOKEN"
	EnvConfig    = "STEPWISE_CONFIG" // path of the config file
)

// Value is one setting and where it came from.
type Value struct {
	Value  string
	Source string // "env STEPWISE_DATASTORE", "file /home/ann/.stepwise/config.json", "default"
}

// Config is every setting in force.
type Config struct {
	Datastore Value // directory, or s3://bucket/prefix
	Metadata  Value // "local" (SQLite in the datastore directory) or http(s)://host:port
	User      Value
	Token     Value // never printed
	File      string
}

// File is the config file's content.
type File struct {
	Datastore string `json:"datastore,omitempty"`
	Metadata  string `json:"metadata,omitempty"`
	User      string `json:"user,omitempty"`
	Token     string `json:"token,omitempty"`
}

// Path returns the config file's path: $STEPWISE_CONFIG or
// ~/.stepwise/config.json.
func Path() string {
	if p := os.Getenv(EnvConfig); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".stepwise", "config.json")
}

// ReadFile reads a config file; a missing one is empty.
func ReadFile(path string) (File, error) {
	var f File
	if path == "" {
		return f, nil
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return f, fmt.Errorf("config: cannot read %s: %w", path, err)
	default:
		if err := json.Unmarshal(data, &f); err != nil {
			return f, fmt.Errorf("config: %s is not valid JSON (%v); fix it or write it again with 'stepwise configure'", path, err)
		}
	}
	return f, nil
}

// Load reads the config file (if any) and the environment.
func Load() (*Config, error) {
	c := &Config{File: Path()}
	f, err := ReadFile(c.File)
	if err != nil {
		return nil, err
	}
	u := "unknown"
	if cu, err := user.Current(); err == nil && cu.Username != "" {
		u = cu.Username
	}
	for _, e := range []string{"USER", "LOGNAME"} {
		if v := os.Getenv(e); v != "" {
			u = v
			break
		}
	}
	pick := func(dst *Value, env, file, def string) {
		switch {
		case os.Getenv(env) != "":
			*dst = Value{os.Getenv(env), "env " + env}
		case file != "":
			*dst = Value{file, "file " + c.File}
		default:
			*dst = Value{def, "default"}
		}
	}
	pick(&c.Datastore, EnvDatastore, f.Datastore, ".stepwise")
	pick(&c.Metadata, EnvMetadata, f.Metadata, "local")
	pick(&c.User, EnvUser, f.User, u)
	pick(&c.Token, EnvToken, f.Token, "")
	if strings.ContainsAny(c.User.Value, " /") {
		return nil, fmt.Errorf("config: user name %q (from %s) may not contain spaces or slashes", c.User.Value, c.User.Source)
	}
	return c, nil
}

// Save writes f as the config file, readable only by its owner.
func Save(path string, f File) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("config: cannot create %s: %w", filepath.Dir(path), err)
	}
	data, _ := json.MarshalIndent(f, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("config: cannot write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// LocalDir is the absolute directory of a local datastore setting.
func LocalDir(ds string) (string, error) {
	return filepath.Abs(strings.TrimPrefix(ds, "file://"))
}

// OpenDatastore opens the datastore a setting names.
func OpenDatastore(ctx context.Context, ds string) (*datastore.Store, error) {
	if strings.HasPrefix(ds, "s3://") {
		b, err := s3.New(ctx, ds, s3.Options{})
		if err != nil {
			return nil, err
		}
		return datastore.New(b), nil
	}
	if i := strings.Index(ds, "://"); i >= 0 && !strings.HasPrefix(ds, "file://") {
		return nil, fmt.Errorf("datastore %q: unknown scheme %q; use a directory, file:///dir or s3://bucket/prefix", ds, ds[:i])
	}
	dir, err := LocalDir(ds)
	if err != nil {
		return nil, err
	}
	b, err := local.New(dir)
	if err != nil {
		return nil, err
	}
	return datastore.New(b), nil
}

// OpenMetadata opens the metadata store a setting names; a local store
// lives in the local datastore's directory.
func OpenMetadata(ctx context.Context, c *Config) (metadata.Store, error) {
	if strings.HasPrefix(c.Metadata.Value, "http://") || strings.HasPrefix(c.Metadata.Value, "https://") {
		cl, err := service.NewClient(c.Metadata.Value, c.Token.Value, nil)
		if err != nil {
			return nil, fmt.Errorf("metadata %q (from %s): %w", c.Metadata.Value, c.Metadata.Source, err)
		}
		return cl, nil
	}
	if c.Metadata.Value != "local" {
		return nil, fmt.Errorf("metadata %q (from %s): use \"local\" or the URL of a metadata service (http://host:port)", c.Metadata.Value, c.Metadata.Source)
	}
	if strings.HasPrefix(c.Datastore.Value, "s3://") {
		return nil, fmt.Errorf("metadata: the local metadata store needs a local datastore, but the datastore is %s; set %s to a metadata service", c.Datastore.Value, EnvMetadata)
	}
	dir, err := LocalDir(c.Datastore.Value)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("metadata: cannot create %s: %w; choose another directory with %s", dir, err, EnvDatastore)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "metadata.db"))
	if err != nil {
		return nil, err
	}
	return st, nil
}

// OpenStores opens both stores.
func OpenStores(ctx context.Context, c *Config) (*datastore.Store, metadata.Store, error) {
	store, err := OpenDatastore(ctx, c.Datastore.Value)
	if err != nil {
		return nil, nil, err
	}
	meta, err := OpenMetadata(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	return store, meta, nil
}
