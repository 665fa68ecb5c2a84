package cli

import (
	"context"
	"fmt"
	"strings"

	"stepwise.dev/stepwise/internal/config"
)

// configShowCmd prints the settings in force and where each came from.
func configShowCmd(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("config")
	pos, err := Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "show" {
		return &usageError{"the config command takes one argument: show"}
	}
	c, err := config.Load(config.Overrides{Datastore: e.datastore, Metadata: e.metadata, Source: "flag"})
	if err != nil {
		return err
	}
	token := "(not set)"
	if c.Token.Value != "" {
		token = "(set, hidden)"
	}
	rows := [][]string{
		{"datastore", c.Datastore.Value, c.Datastore.Source},
		{"metadata", c.Metadata.Value, c.Metadata.Source},
		{"user", c.User.Value, c.User.Source},
		{"token", token, c.Token.Source},
	}
	for _, n := range c.ComputeNames() {
		v := c.Compute(n)
		rows = append(rows, []string{n, v.Value, v.Source})
	}
	if e.json {
		out := map[string]any{"config_file": c.File}
		for _, r := range rows {
			out[r[0]] = map[string]string{"value": r[1], "source": r[2]}
		}
		return e.printJSON(out)
	}
	fmt.Fprintf(e.stdout, "config file: %s\n\n", c.File)
	e.table("SETTING\tVALUE\tFROM", rows)
	return nil
}

// configureCmd writes the config file.
func configureCmd(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("configure")
	var f config.File
	fs.StringVar(&f.Datastore, "set-datastore", "", "datastore: a directory or s3://bucket/prefix")
	fs.StringVar(&f.Metadata, "set-metadata", "", "metadata store: local or http(s)://host:port of a metadata service")
	fs.StringVar(&f.User, "set-user", "", "user name for the user:NAME namespace")
	fs.StringVar(&f.Token, "set-token", "", "token for the metadata service")
	var compute []string
	fs.Func("set-compute", "a compute backend's setting, NAME=VALUE, e.g. kubernetes.namespace=ml (repeatable; an empty VALUE removes it)", func(kv string) error {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || !strings.Contains(name, ".") {
			return fmt.Errorf("write backend.setting=value, e.g. kubernetes.image=python:3.12-slim")
		}
		compute = append(compute, kv)
		return nil
	})
	pos, err := Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	path := config.Path()
	old, err := config.ReadFile(path)
	if err != nil {
		return err
	}
	for _, kv := range []struct {
		dst *string
		v   string
	}{{&old.Datastore, f.Datastore}, {&old.Metadata, f.Metadata}, {&old.User, f.User}, {&old.Token, f.Token}} {
		if kv.v != "" {
			*kv.dst = kv.v
		}
	}
	for _, kv := range compute {
		name, v, _ := strings.Cut(kv, "=")
		if old.Compute == nil {
			old.Compute = map[string]string{}
		}
		if v == "" {
			delete(old.Compute, name)
		} else {
			old.Compute[name] = v
		}
	}
	if err := config.Save(path, old); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s; '%s config show' prints what is in force\n", path, e.prog)
	return nil
}
