package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/names"
)

// maxName is the most characters a name, id or tag may have.
const maxName = 256

// maxFilterTags is the most tags a listing of runs may filter on.
const maxFilterTags = 64

// The times the stores hold (as int64 unix nanoseconds).
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// checkName checks an artifact name: not empty, at most maxName
// characters, valid UTF-8 without control characters.
func checkName(what, s string) *apiError {
	switch {
	case s == "":
		return badRequest("no %s given: the %s is empty", what, what)
	case !utf8.ValidString(s):
		return badRequest("bad %s %q: not valid UTF-8", what, s)
	case utf8.RuneCountInString(s) > maxName:
		return badRequest("bad %s %.40q...: %d characters long, more than %d", what, s, utf8.RuneCountInString(s), maxName)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return badRequest("bad %s %q: names cannot hold control characters", what, s)
	}
	return nil
}

// checkRule turns the error of a rule of package names into a response.
func checkRule(err error) *apiError {
	if err != nil {
		return badRequest("%s", err.Error())
	}
	return nil
}

// checkTags checks tags to filter on: tags that package names allows.
func checkTags(tags []string) *apiError {
	for _, t := range tags {
		if e := checkRule(names.Tag(t)); e != nil {
			return e
		}
	}
	return nil
}

// checkUserTags checks tags to add to a run: user tags that package names
// allows, none with a system prefix.
func checkUserTags(tags []string) *apiError {
	for _, t := range tags {
		if e := checkRule(names.UserTag(t)); e != nil {
			return e
		}
	}
	return nil
}

// checkTagsToRemove checks tags to remove from a run: not empty, and text
// the database holds. They are not held to the rules of package names, so
// that a tag recorded before them can still be removed.
func checkTagsToRemove(tags []string) *apiError {
	for _, t := range tags {
		if t == "" {
			return badRequest("empty tag to remove: name the tags to remove, with tag=... for each")
		}
		if e := checkText("tag", t); e != nil {
			return e
		}
	}
	return nil
}

// checkText checks free text: valid UTF-8 without NUL bytes, which the
// database cannot hold.
func checkText(what, s string) *apiError {
	if !utf8.ValidString(s) {
		return badRequest("bad %s %q: not valid UTF-8", what, s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return badRequest("bad %s %q: text cannot hold NUL characters (\\u0000)", what, s)
	}
	return nil
}

// checkTime checks that a time is zero (not given) or one the stores hold.
func checkTime(what string, t time.Time) *apiError {
	if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
		return badRequest("bad %s %s: times must lie between the years 1678 and 2262", what, t.Format(time.RFC3339))
	}
	return nil
}

// checkStatus checks a status; finished says it must be succeeded or
// failed.
func checkStatus(what string, st metadata.Status, finished bool) *apiError {
	switch st {
	case metadata.Succeeded, metadata.Failed:
		return nil
	case metadata.Running:
		if !finished {
			return nil
		}
	}
	if finished {
		return badRequest("bad %s %q: want %q or %q", what, st, metadata.Succeeded, metadata.Failed)
	}
	return badRequest("bad %s %q: want %q, %q or %q", what, st, metadata.Running, metadata.Succeeded, metadata.Failed)
}

// checkArtifacts checks a task's artifacts: each named, once, with text the
// database holds and a size that is not negative.
func checkArtifacts(arts []metadata.Artifact) *apiError {
	seen := make(map[string]bool, len(arts))
	for i, a := range arts {
		if e := checkName(fmt.Sprintf("artifacts[%d].name", i), a.Name); e != nil {
			return e
		}
		if seen[a.Name] {
			return badRequest("two artifacts are named %q: artifact names are unique in a task", a.Name)
		}
		seen[a.Name] = true
		if e := checkText("artifact "+a.Name+": type", a.Type); e != nil {
			return e
		}
		if e := checkText("artifact "+a.Name+": key", a.Key); e != nil {
			return e
		}
		if a.Size < 0 {
			return badRequest("artifact %s: size %d is negative", a.Name, a.Size)
		}
	}
	return nil
}

// checkRun checks the body of a new run.
func checkRun(r *metadata.Run) *apiError {
	if r.ID == "" {
		return badRequest("no run id given: the body has no id; give the run's id, such as \"id\": \"1764340315123456\"")
	}
	if e := checkRule(names.RunID(r.ID)); e != nil {
		return e
	}
	if r.User != "" {
		if e := checkRule(names.User(r.User)); e != nil {
			return e
		}
	}
	for _, t := range r.SystemTags {
		if e := checkRule(names.SystemTag(t)); e != nil {
			return e
		}
	}
	if r.Status != "" {
		if e := checkStatus("status", r.Status, false); e != nil {
			return e
		}
	}
	if e := checkUserTags(r.Tags); e != nil {
		return e
	}
	for _, k := range slices.Sorted(maps.Keys(r.Params)) {
		if e := checkText("parameter name", k); e != nil {
			return e
		}
		if e := checkText("parameter "+k, r.Params[k]); e != nil {
			return e
		}
	}
	for _, f := range []struct{ what, v string }{{"user", r.User}, {"origin", r.Origin},
		{"code.binary_sha256", r.Code.BinarySHA256}, {"code.git_commit", r.Code.GitCommit}} {
		if e := checkText(f.what, f.v); e != nil {
			return e
		}
	}
	if e := checkTime("started", r.Started); e != nil {
		return e
	}
	return checkTime("ended", r.Ended)
}

// decode reads a request's JSON body into v, a pointer to a struct: an
// object with no fields v lacks, and nothing after it. An empty body is an
// empty object.
func decode(r *http.Request, v any) *apiError {
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(r.Body)
		if err != nil {
			if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
				return &apiError{status: http.StatusRequestEntityTooLarge, code: codeTooLarge,
					msg: fmt.Sprintf("the request body is larger than the limit of %d bytes of this metadata service; send less (e.g. fewer tags or artifacts per request)", mbe.Limit)}
			}
			return badRequest("cannot read the request body: %v", err)
		}
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	if body[0] != '{' {
		return badRequest("the request body must be a JSON object ({...}); it starts with %q", truncate(string(body), 20))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if off := dec.InputOffset(); off < int64(len(body)) {
		return badRequest("the request body has data after its JSON object, at byte %d: %q; send one object", off, truncate(string(body[off:]), 20))
	}
	return nil
}

// jsonError explains why a body did not decode.
func jsonError(err error) *apiError {
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return badRequest("malformed JSON in the request body at byte %d: %s", e.Offset, strings.TrimPrefix(e.Error(), "json: "))
	}
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		field := e.Field
		if field == "" {
			field = "the body"
		}
		return badRequest("bad JSON in the request body: %s is a JSON %s, but it must be a %s", field, e.Value, jsonKind(e.Type.String()))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("malformed JSON in the request body: it ends before its object does")
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field") {
		return badRequest("the request body has an %s; see docs/metadata-api.yaml for the fields of this request", msg)
	}
	return badRequest("bad JSON in the request body: %s", msg)
}

// jsonKind names what a Go type is in JSON.
func jsonKind(t string) string {
	switch {
	case t == "string" || t == "metadata.Status" || t == "time.Time":
		return "string"
	case t == "bool":
		return "boolean"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint") || strings.HasPrefix(t, "float"):
		return "number"
	case strings.HasPrefix(t, "[]"):
		return "array"
	}
	return "object"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// runFilter reads the filter of a listing of runs from the query string.
func runFilter(r *http.Request, flow string) (metadata.RunFilter, *apiError) {
	f := metadata.RunFilter{Flow: flow}
	q := r.URL.Query()
	one := func(name string) (string, bool, *apiError) {
		vs, ok := q[name]
		switch {
		case !ok:
			return "", false, nil
		case len(vs) > 1:
			return "", false, badRequest("query parameter %s is given %d times; give it once", name, len(vs))
		case vs[0] == "":
			return "", false, badRequest("query parameter %s is empty; give a value or leave it out", name)
		}
		return vs[0], true, nil
	}
	f.Tags = q["tag"]
	if len(f.Tags) > maxFilterTags {
		return f, badRequest("%d tags to filter on; at most %d", len(f.Tags), maxFilterTags)
	}
	if e := checkTags(f.Tags); e != nil {
		return f, e
	}
	if v, ok, e := one("status"); e != nil {
		return f, e
	} else if ok {
		f.Status = metadata.Status(v)
		if e := checkStatus("status", f.Status, false); e != nil {
			return f, e
		}
	}
	for _, b := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v, ok, e := one(b.name)
		if e != nil {
			return f, e
		}
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return f, badRequest("bad %s %q: want an RFC 3339 time such as 2025-03-01T12:30:00Z", b.name, v)
		}
		*b.t = t
	}
	return f, nil
}
