package stepwise

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"

	"stepwise.dev/stepwise/internal/hosting"
)

// Service is a type whose methods answer HTTP requests from the results of
// a flow's latest run. Its exported methods that take a context.Context
// first are its endpoints, each answered at its name in snake_case
// (Predict at /predict, ShowData at /show_data), with one of the forms
//
//	func (s *MyService) Predict(ctx context.Context, req PredictRequest) (PredictResponse, error)
//	func (s *MyService) Model(ctx context.Context) (ModelInfo, error)
//
// A request comes as query parameters of a GET (/predict?x=2) or as the
// JSON body of a POST; the answer is the response as JSON. An error that
// wraps ErrBadRequest is sent to the client with status 400; any other
// error is a failure (500), logged and not sent. Serves declares the flow
// served.
type Service interface {
	Serves(s *Serving)
}

// ErrBadRequest is what an endpoint's error wraps to refuse its input:
// fmt.Errorf("x must be positive: %w", stepwise.ErrBadRequest). The client
// gets status 400 and the error's message.
var ErrBadRequest = hosting.ErrBadRequest

// Serving collects what a service serves. It is passed to Service.Serves.
type Serving struct {
	svc       reflect.Value // pointer to the service the declaration is made on
	field     int
	flow      reflect.Type // *F
	artifacts []string
	errs      []error
}

// Flow declares the flow whose runs the service answers from. field is a
// pointer to the service's field that holds a pointer to the flow:
//
//	type Predictor struct{ Model *Train }
//	func (s *Predictor) Serves(sv *stepwise.Serving) { sv.Flow(&s.Model, "A", "B") }
//
// Before the service answers, the field is set to a flow value holding the
// artifacts of the run served, as its end step left them, read with their
// types. artifacts names the fields to load; none means all of them. A
// flow value in the field of the service given to Serve holds the
// defaults of the flow's parameters, for the program's run command.
func (s *Serving) Flow(field any, artifacts ...string) {
	name := s.svc.Type().Elem().Name()
	p := reflect.ValueOf(field)
	if p.Kind() != reflect.Pointer || p.IsNil() {
		s.errs = append(s.errs, fmt.Errorf("service %s: Flow takes a pointer to a field of the service, such as &s.Model; got %T", name, field))
		return
	}
	st := s.svc.Elem()
	s.field = -1
	for i := range st.NumField() {
		if st.Field(i).Addr().Pointer() == p.Pointer() && st.Field(i).Type() == p.Type().Elem() {
			s.field = i
		}
	}
	ft := p.Type().Elem()
	switch {
	case s.field < 0:
		s.errs = append(s.errs, fmt.Errorf("service %s: Flow takes a pointer to a field of the service, such as &s.Model; %T points elsewhere", name, field))
		return
	case !st.Type().Field(s.field).IsExported():
		s.errs = append(s.errs, fmt.Errorf("service %s: field %s is not exported; export it (a capital first letter)", name, st.Type().Field(s.field).Name))
		return
	case ft.Kind() != reflect.Pointer || ft.Elem().Kind() != reflect.Struct || !ft.Implements(reflect.TypeFor[Flow]()):
		s.errs = append(s.errs, fmt.Errorf("service %s: field %s is a %s; it must be a pointer to a flow, such as *Train", name, st.Type().Field(s.field).Name, ft))
		return
	}
	s.flow = ft
	for _, a := range artifacts {
		if f, ok := ft.Elem().FieldByName(a); !ok || !f.IsExported() {
			s.errs = append(s.errs, fmt.Errorf("service %s: flow %s has no artifact %q: an artifact is an exported field of the flow", name, ft.Elem().Name(), a))
			continue
		}
		if !slices.Contains(s.artifacts, a) {
			s.artifacts = append(s.artifacts, a)
		}
	}
	if len(artifacts) == 0 {
		s.artifacts = nil
	}
}

// describeService describes a service for the machinery.
func describeService(svc Service) (*hosting.Def, error) {
	t := reflect.TypeOf(svc)
	if svc == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct || reflect.ValueOf(svc).IsNil() {
		return nil, fmt.Errorf("stepwise: a service is a non-nil pointer to a struct, got %T; pass &MyService{}", svc)
	}
	s := &Serving{svc: reflect.New(t.Elem()), field: -1}
	s.svc.Interface().(Service).Serves(s)
	var errs []error
	if s.flow == nil && len(s.errs) == 0 {
		errs = append(errs, fmt.Errorf("service %s serves no flow: call Flow in its Serves method, such as sv.Flow(&s.Model)", t.Elem().Name()))
	}
	errs = append(errs, s.errs...)
	eps, err := hosting.Endpoints(t, "Serves")
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("stepwise: %w", err)
	}
	defaults := reflect.ValueOf(svc).Elem().Field(s.field)
	if defaults.IsNil() {
		defaults = reflect.New(s.flow.Elem())
	}
	flow, err := declare(defaults.Interface().(Flow))
	if err != nil {
		return nil, err
	}
	return &hosting.Def{Name: t.Elem().Name(), Type: t, Defaults: reflect.ValueOf(svc), Flow: flow, FlowField: s.field,
		Artifacts: s.artifacts, Endpoints: eps}, nil
}

// Serve is the whole main function of a service program:
//
//	func main() { stepwise.Serve(&Predictor{}) }
//
// It gives the program the commands serve (answer the endpoints over
// HTTP, following the newest successful run of the flow; serve --help
// lists its flags) and show (list the endpoints), and every command of the
// flow served (run, resume, runs, dump...), so that one binary trains and
// serves. SIGTERM or Ctrl-C shuts the server down gracefully: requests in
// flight finish.
func Serve(svc Service) {
	def, err := describeService(svc)
	exitWith(err, func(ctx context.Context) int {
		return hosting.Command(ctx, def, os.Args[1:], os.Stdout, os.Stderr)
	})
}

func init() {
	hosting.Describe = func(svc any) (*hosting.Def, error) {
		s, ok := svc.(Service)
		if !ok {
			return nil, fmt.Errorf("stepwise: %T is not a service: it has no Serves(*stepwise.Serving) method", svc)
		}
		return describeService(s)
	}
}
