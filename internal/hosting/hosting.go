// Package hosting serves the results of a flow's runs as HTTP endpoints:
// the machinery behind stepwise.Serve. A service is a Go type whose
// methods are endpoints; a Server loads the artifacts of the run it serves
// through the client, answers requests from them, and switches to a newer
// run atomically when one succeeds, while requests in flight finish on the
// run they started with.
//
// Every answer is JSON. Errors are {"error": "...", "code": "..."}: 400 for
// bad input, 401 without a good token, 404 for an unknown endpoint, 405 for
// a wrong method, 413 for a body over the limit, 415 for a body that is not
// JSON, 503 before a run is loaded, 504 past the time limit, and 500 only
// when an endpoint's own method fails or panics (its detail is logged, not
// sent).
package hosting

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"stepwise.dev/stepwise/internal/flowdef"
	"stepwise.dev/stepwise/internal/graph"
)

// ErrBadRequest is matched (errors.Is) by the error of an endpoint method
// that refuses its input: the client gets 400 and the error's message.
var ErrBadRequest = errors.New("bad request")

// Def is a service as the machinery sees it.
type Def struct {
	Name      string        // the service's Go type name
	Type      reflect.Type  // pointer to the service struct
	Defaults  reflect.Value // the value given to Serve, copied into every loaded service
	Flow      *flowdef.Def  // the flow it serves
	FlowField int           // index of the service's field that holds the flow (*F)
	Artifacts []string      // the flow's fields to load; nil for every artifact of the end step
	Endpoints []Endpoint
}

// Endpoint is one method of the service, answered at Path.
type Endpoint struct {
	Method   string       // the Go method's name
	Name     string       // the method's name in snake_case, as steps are named
	Path     string       // "/" + Name
	Request  reflect.Type // the request's type; nil when the method takes none
	Response reflect.Type
	index    int // the method's index in Def.Type
}

// Describe describes a service value for the machinery; package stepwise
// sets it (it knows services and flows).
var Describe func(svc any) (*Def, error)

// builtin are the paths every service answers itself.
var builtin = []string{"/healthz", "/readyz", "/metadata", "/metrics"}

var (
	ctxType   = reflect.TypeFor[context.Context]()
	errorType = reflect.TypeFor[error]()
)

// Endpoints finds the endpoints of service type t (a pointer to a struct):
// its exported methods that take a context.Context first. Each must have
// one of the forms
//
//	func (s *S) M(ctx context.Context) (Resp, error)
//	func (s *S) M(ctx context.Context, req Req) (Resp, error)
//
// Other exported methods (helpers, and the one named skip) are not
// endpoints. Every problem is reported at once.
func Endpoints(t reflect.Type, skip string) ([]Endpoint, error) {
	var out []Endpoint
	var errs []error
	paths := map[string]string{}
	for _, p := range builtin {
		paths[p] = "the service itself"
	}
	for i := range t.NumMethod() {
		m := t.Method(i)
		mt := m.Type // with the receiver
		if m.Name == skip || mt.NumIn() < 2 || mt.In(1) != ctxType {
			continue
		}
		if mt.NumIn() > 3 || mt.NumOut() != 2 || mt.Out(1) != errorType {
			errs = append(errs, fmt.Errorf("method %s of %s has signature %s; an endpoint is func(ctx context.Context) (Resp, error) or func(ctx context.Context, req Req) (Resp, error), with Req and Resp types that JSON can encode",
				m.Name, t.Elem().Name(), flowdef.Signature(mt)))
			continue
		}
		e := Endpoint{Method: m.Name, Name: graph.SnakeCase(m.Name), Response: mt.Out(0), index: i}
		e.Path = "/" + e.Name
		if mt.NumIn() == 3 {
			e.Request = mt.In(2)
			if k := e.Request.Kind(); k == reflect.Chan || k == reflect.Func || k == reflect.Interface && e.Request.NumMethod() > 0 {
				errs = append(errs, fmt.Errorf("method %s of %s takes a %s, which a request cannot be decoded into; take a struct", m.Name, t.Elem().Name(), e.Request))
				continue
			}
		}
		if other, ok := paths[e.Path]; ok {
			errs = append(errs, fmt.Errorf("method %s of %s would be answered at %s, which %s answers; rename the method", m.Name, t.Elem().Name(), e.Path, other))
			continue
		}
		paths[e.Path] = "method " + m.Name
		out = append(out, e)
	}
	if len(out) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("service %s has no endpoint: give it a method such as func (s %s) Predict(ctx context.Context, req PredictRequest) (PredictResponse, error)", t.Elem().Name(), t))
	}
	return out, errors.Join(errs...)
}
