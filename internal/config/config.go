// Package config finds the settings in force (the datastore, the metadata
// store, the user and the service token) and opens the stores they name.
// It is the one place settings are read: flags and options given in code
// win over environment variables, which win over the config file, which
// wins over the defaults; each value remembers where it came from so that
// 'stepwise config show' can say.
//
// Backends are chosen by the setting's scheme from a registry that backend
// packages join when they are imported (as database/sql drivers do): the
// local datastore is always there; S3, the metadata service's client and
// the local SQLite metadata store come with their packages
// (stepwise.dev/stepwise/backend/s3, .../backend/service,
// .../backend/sqlite), so a flow binary carries only the backends it
// imports.
package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"sync"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/local"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/rebuild"
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
	file      File
}

// ComputeEnv is the environment variable of a compute backend's setting:
// kubernetes.service_account is STEPWISE_KUBERNETES_SERVICE_ACCOUNT.
func ComputeEnv(name string) string {
	return "STEPWISE_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(name))
}

// Compute returns a compute backend's setting ("kubernetes.namespace"):
// from its environment variable (ComputeEnv), else the config file, else
// empty, with where it came from.
func (c *Config) Compute(name string) Value {
	if v := os.Getenv(ComputeEnv(name)); v != "" {
		return Value{v, "env " + ComputeEnv(name)}
	}
	if v := c.file.Compute[name]; v != "" {
		return Value{v, "file " + c.File}
	}
	return Value{"", "default"}
}

// ComputeNames lists the compute settings the config file or the
// environment set, sorted.
func (c *Config) ComputeNames() []string {
	var names []string
	for n := range c.file.Compute {
		names = append(names, n)
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		for _, prefix := range []string{"STEPWISE_KUBERNETES_"} {
			if rest, ok := strings.CutPrefix(k, prefix); ok {
				names = append(names, strings.ToLower(strings.TrimSuffix(prefix[len("STEPWISE_"):], "_"))+"."+strings.ToLower(rest))
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// File is the config file's content.
type File struct {
	Datastore string `json:"datastore,omitempty"`
	Metadata  string `json:"metadata,omitempty"`
	User      string `json:"user,omitempty"`
	Token     string `json:"token,omitempty"`
	// Compute holds the compute backends' settings, by
	// "backend.setting" ("kubernetes.namespace": "ml").
	Compute map[string]string `json:"compute,omitempty"`
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

// Overrides are settings given on a command line or in code; they win over
// the environment and the config file. Empty fields override nothing.
type Overrides struct {
	Datastore, Metadata, User string
	Source                    string // where they come from, e.g. "flag --datastore"
}

// Load reads the config file (if any) and the environment, then applies
// the overrides. A local datastore is made absolute, so that tasks started
// in another directory use the same one.
func Load(o Overrides) (*Config, error) {
	c := &Config{File: Path()}
	f, err := ReadFile(c.File)
	if err != nil {
		return nil, err
	}
	c.file = f
	u := "unknown"
	if name := passwdName("/etc/passwd", os.Getuid()); name != "" {
		u = name
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
	src := o.Source
	if src == "" {
		src = "option"
	}
	for _, ov := range []struct {
		dst *Value
		v   string
	}{{&c.Datastore, o.Datastore}, {&c.Metadata, o.Metadata}, {&c.User, o.User}} {
		if ov.v != "" {
			*ov.dst = Value{ov.v, src}
		}
	}
	if strings.ContainsAny(c.User.Value, " /") {
		return nil, fmt.Errorf("config: user name %q (from %s) may not contain spaces or slashes", c.User.Value, c.User.Source)
	}
	if !strings.Contains(c.Datastore.Value, "://") || strings.HasPrefix(c.Datastore.Value, "file://") {
		if abs, err := LocalDir(c.Datastore.Value); err == nil {
			c.Datastore.Value = abs
		}
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

// DatastoreOpener opens the backend of a datastore URL of its scheme.
type DatastoreOpener func(ctx context.Context, url string) (datastore.Backend, error)

// MetadataOpener opens a metadata store for the settings in force.
type MetadataOpener func(ctx context.Context, c *Config) (metadata.Store, error)

var (
	mu         sync.Mutex
	datastores = map[string]DatastoreOpener{}
	metastores = map[string]MetadataOpener{}
)

// Packages that provide the optional backends, for the message that says
// which import to add.
const (
	S3Package      = "stepwise.dev/stepwise/backend/s3"
	SQLitePackage  = "stepwise.dev/stepwise/backend/sqlite"
	ServicePackage = "stepwise.dev/stepwise/backend/service"
)

// RegisterDatastore makes datastore URLs with the scheme (s3 for
// s3://bucket/prefix) open with open. Backend packages call it from init.
func RegisterDatastore(scheme string, open DatastoreOpener) {
	mu.Lock()
	defer mu.Unlock()
	datastores[scheme] = open
}

// RegisterMetadata makes the metadata setting name open with open: "local",
// or "service" for the URLs of a metadata service (http://, https://).
func RegisterMetadata(name string, open MetadataOpener) {
	mu.Lock()
	defer mu.Unlock()
	metastores[name] = open
}

// OpenDatastore opens the datastore a setting names.
func OpenDatastore(ctx context.Context, ds string) (*datastore.Store, error) {
	if i := strings.Index(ds, "://"); i >= 0 && !strings.HasPrefix(ds, "file://") {
		scheme := ds[:i]
		mu.Lock()
		open := datastores[scheme]
		mu.Unlock()
		if open == nil {
			if scheme == "s3" {
				return nil, fmt.Errorf("datastore %s: this program does not include the S3 backend; add import _ %q to the flow's main package (the stepwise command has it)", ds, S3Package)
			}
			return nil, fmt.Errorf("datastore %q: unknown scheme %q; use a directory, file:///dir or s3://bucket/prefix", ds, scheme)
		}
		b, err := open(ctx, ds)
		if err != nil {
			return nil, err
		}
		return datastore.New(b), nil
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

// OpenMetadata opens the metadata store a setting names: a service by its
// URL, or "local", the SQLite store in the local datastore's directory.
func OpenMetadata(ctx context.Context, c *Config) (metadata.Store, error) {
	if strings.HasPrefix(c.Metadata.Value, "http://") || strings.HasPrefix(c.Metadata.Value, "https://") {
		mu.Lock()
		open := metastores["service"]
		mu.Unlock()
		if open == nil {
			return nil, fmt.Errorf("metadata %s (from %s): this program does not include the metadata service's client; add import _ %q to the flow's main package (the stepwise command has it)", c.Metadata.Value, c.Metadata.Source, ServicePackage)
		}
		st, err := open(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("metadata %q (from %s): %w", c.Metadata.Value, c.Metadata.Source, err)
		}
		return st, nil
	}
	if c.Metadata.Value != "local" {
		return nil, fmt.Errorf("metadata %q (from %s): use \"local\" or the URL of a metadata service (http://host:port)", c.Metadata.Value, c.Metadata.Source)
	}
	if strings.Contains(c.Datastore.Value, "://") && !strings.HasPrefix(c.Datastore.Value, "file://") {
		return nil, fmt.Errorf("metadata: the local metadata store needs a local datastore, but the datastore is %s; set %s to a metadata service", c.Datastore.Value, EnvMetadata)
	}
	mu.Lock()
	open := metastores["local"]
	mu.Unlock()
	if open == nil {
		return nil, fmt.Errorf("metadata: this program does not include the local metadata store (SQLite); add import _ %q to the flow's main package, or set %s to a metadata service", SQLitePackage, EnvMetadata)
	}
	return open(ctx, c)
}

// LocalMetadataPath is where the local metadata store of a local datastore
// lives.
func LocalMetadataPath(c *Config) (string, error) {
	dir, err := LocalDir(c.Datastore.Value)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("metadata: cannot create %s: %w; choose another directory with %s", dir, err, EnvDatastore)
	}
	return filepath.Join(dir, "metadata.db"), nil
}

// Open opens both stores of the settings in force, and refuses a metadata
// store that has lost the runs its datastore holds (an emptied or replaced
// metadata.db), naming the command that rebuilds it. Tasks and the
// maintenance commands open the stores with OpenDatastore and
// OpenMetadata instead.
func (c *Config) Open(ctx context.Context) (*datastore.Store, metadata.Store, error) {
	store, err := OpenDatastore(ctx, c.Datastore.Value)
	if err != nil {
		return nil, nil, err
	}
	meta, err := OpenMetadata(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	if err := rebuild.Check(ctx, store, meta); err != nil {
		meta.Close()
		return nil, nil, err
	}
	return store, meta, nil
}

// passwdName finds the name of the user with uid in a passwd file. It
// stands in for os/user, whose cgo lookup would make every flow binary a
// dynamically linked one.
func passwdName(path string, uid int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	want := strconv.Itoa(uid)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[2] == want {
			return f[0]
		}
	}
	return ""
}
