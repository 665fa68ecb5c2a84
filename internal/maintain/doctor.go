package maintain

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"stepwise.dev/stepwise/internal/cli"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/rebuild"
)

// doctorTimeout bounds each check, so that an unreachable store fails
// the check instead of hanging on retries.
const doctorTimeout = 30 * time.Second

// bucketer is an S3 datastore backend: it can check and create its
// bucket.
type bucketer interface {
	Bucket() string
	BucketExists(ctx context.Context) (bool, error)
	CreateBucket(ctx context.Context) error
}

// doctor prints one line per check.
type doctor struct {
	e      *cli.Env
	checks int
	failed int
}

func (d *doctor) ok(what, detail string) {
	d.checks++
	fmt.Fprintf(d.e.Stdout(), "ok    %s: %s\n", what, detail)
}

func (d *doctor) fail(what, problem string) {
	d.checks++
	d.failed++
	fmt.Fprintf(d.e.Stdout(), "FAIL  %s: %s\n", what, problem)
}

// doctorCmd checks that the stores in force are reachable and writable.
func doctorCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := e.Flags("doctor")
	create := fs.Bool("create-bucket", false, "create the S3 bucket of the datastore when it does not exist")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cli.UsageError("unexpected argument %q", pos[0])
	}
	cfg, err := maintenanceConfig(e)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout(), "Settings: datastore %s (%s), metadata %s (%s), user %s (%s); '%s config show' says more.\n\n",
		cfg.Datastore.Value, cfg.Datastore.Source, cfg.Metadata.Value, cfg.Metadata.Source, cfg.User.Value, cfg.User.Source, e.Prog())
	d := &doctor{e: e}
	store := d.datastore(ctx, cfg, *create)
	meta := d.metadata(ctx, cfg)
	if meta != nil {
		defer meta.Close()
	}
	if store != nil && meta != nil {
		cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
		err := rebuild.Check(cctx, store, meta)
		cancel()
		if err != nil {
			d.fail("history", err.Error())
		} else {
			d.ok("history", "the metadata store knows the datastore's runs")
		}
	}
	if d.failed > 0 {
		fmt.Fprintln(e.Stdout())
		return fmt.Errorf("%d of %d checks failed; fix what each FAIL line says, then run doctor again", d.failed, d.checks)
	}
	return nil
}

// datastore checks the datastore: its bucket (S3), and a put, get and
// delete of a probe object. It returns the store when it is usable.
func (d *doctor) datastore(ctx context.Context, cfg *config.Config, create bool) *datastore.Store {
	what := "datastore " + cfg.Datastore.Value
	hint := "fix the datastore setting (STEPWISE_DATASTORE, or 'configure --set-datastore')"
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	store, err := config.OpenDatastore(cctx, cfg.Datastore.Value)
	if err != nil {
		d.fail(what, fmt.Sprintf("cannot open it: %v; %s", err, hint))
		return nil
	}
	b := store.Backend()
	if bk, ok := b.(bucketer); ok {
		exists, err := bk.BucketExists(cctx)
		switch {
		case err != nil:
			d.fail(what, fmt.Sprintf("cannot reach the bucket %s: %v; check the endpoint (AWS_ENDPOINT_URL_S3), the credentials and the network", bk.Bucket(), err))
			return nil
		case !exists && !create:
			d.fail(what, fmt.Sprintf("the bucket %s does not exist; create it with '%s doctor --create-bucket', or %s", bk.Bucket(), d.e.Prog(), hint))
			return nil
		case !exists:
			if err := bk.CreateBucket(cctx); err != nil {
				d.fail(what, fmt.Sprintf("cannot create the bucket %s: %v; create it with your cloud's tools, or check the credentials' rights", bk.Bucket(), err))
				return nil
			}
			d.ok(what, fmt.Sprintf("created the bucket %s", bk.Bucket()))
		default:
			d.ok(what, fmt.Sprintf("the bucket %s exists", bk.Bucket()))
		}
	}
	if err := probe(cctx, b); err != nil {
		if errors.Is(err, datastore.ErrReadOnly) {
			d.fail(what, fmt.Sprintf("it can be read but not written: %v", err))
		} else {
			d.fail(what, fmt.Sprintf("a put, get and delete of a probe object failed: %v", err))
		}
		return nil
	}
	detail := "reachable and writable (put, get and delete of a probe object)"
	if !strings.Contains(cfg.Datastore.Value, "://") || strings.HasPrefix(cfg.Datastore.Value, "file://") {
		if free, ok := datastore.FreeBytes(b.String()); ok {
			detail += fmt.Sprintf("; %s free on its disk", datastore.FormatBytes(free))
		}
	}
	d.ok(what, detail)
	return store
}

// probe puts, reads back and deletes an object under doctor/.
func probe(ctx context.Context, b datastore.Backend) error {
	var r [8]byte
	rand.Read(r[:])
	key := "doctor/probe-" + hex.EncodeToString(r[:])
	data := []byte("stepwise doctor probe " + time.Now().UTC().Format(time.RFC3339Nano))
	if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
		return err
	}
	rc, _, err := b.Get(ctx, key)
	if err != nil {
		return err
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("the probe object %s read back as %d other bytes", key, len(got))
	}
	return b.Delete(ctx, key)
}

// authenticatedRead reads one run from the service at url with token, as
// every client does, and says whether the service accepted the token.
func (d *doctor) authenticatedRead(ctx context.Context, what, url, token string) bool {
	u := strings.TrimSuffix(url, "/") + "/v1/runs?limit=1"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		d.fail(what, err.Error())
		return false
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		d.fail(what, fmt.Sprintf("GET %s: %v; check the service and the network", u, err))
		return false
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		how := "no token is set"
		if token != "" {
			how = "the token set is not one it accepts"
		}
		d.fail(what, fmt.Sprintf("the service refused the token (GET %s: %s): %s; set the token the service was given (STEPWISE_TOKEN, or 'configure --set-token')", u, resp.Status, how))
		return false
	case resp.StatusCode != http.StatusOK:
		d.fail(what, fmt.Sprintf("GET %s answered %s: %s; check the service's log and its database", u, resp.Status, strings.TrimSpace(string(body))))
		return false
	}
	return true
}

// metadata checks the metadata store: a service answers /healthz and an
// authenticated read; a local store opens for writing. It returns the
// store when it is usable.
func (d *doctor) metadata(ctx context.Context, cfg *config.Config) metadata.Store {
	what := "metadata " + cfg.Metadata.Value
	hint := "fix the metadata setting (STEPWISE_METADATA, or 'configure --set-metadata')"
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	url := cfg.Metadata.Value
	isService := strings.HasPrefix(url, "http://") || strings.HasPrefix(url, "https://")
	if isService {
		health := strings.TrimSuffix(url, "/") + "/healthz"
		req, err := http.NewRequestWithContext(cctx, http.MethodGet, health, nil)
		if err != nil {
			d.fail(what, fmt.Sprintf("%v; %s", err, hint))
			return nil
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			d.fail(what, fmt.Sprintf("not reachable: %v; start the service ('stepwise service') or %s", err, hint))
			return nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			d.fail(what, fmt.Sprintf("GET %s answered %s: %s; check the service's log and its database", health, resp.Status, strings.TrimSpace(string(body))))
			return nil
		}
		d.ok(what, "the service answers /healthz")
		if !d.authenticatedRead(cctx, what, url, cfg.Token.Value) {
			return nil
		}
	}
	meta, err := config.OpenMetadata(cctx, cfg)
	if err != nil {
		d.fail(what, fmt.Sprintf("cannot open it: %v", err))
		return nil
	}
	if _, err := meta.ListRuns(cctx, metadata.RunFilter{Limit: 1}); err != nil {
		d.fail(what, fmt.Sprintf("cannot read runs: %v", err))
		meta.Close()
		return nil
	}
	switch {
	case isService:
		d.ok(what, "an authenticated read works")
	default:
		if ro, ok := meta.(interface{ ReadOnly() string }); ok && ro.ReadOnly() != "" {
			d.fail(what, fmt.Sprintf("%s is read-only: %s; runs cannot be recorded: make it writable, or %s", rebuild.Describe(meta), ro.ReadOnly(), hint))
			return meta
		}
		d.ok(what, fmt.Sprintf("%s opens for reading and writing", rebuild.Describe(meta)))
	}
	return meta
}
