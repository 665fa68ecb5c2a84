// Package graph holds the static graph of a flow: its steps, their
// transitions and the checks that a graph must pass before anything runs.
//
// The graph is built from the flow's declaration (its Graph method) by the
// stepwise package; nothing here runs user code.
package graph

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Resources are what one task of a step needs from the machine it runs on.
type Resources struct {
	CPU      float64 `json:"cpu,omitempty"`       // cores
	MemoryMB int64   `json:"memory_mb,omitempty"` // mebibytes
	GPU      int     `json:"gpu,omitempty"`
	DiskMB   int64   `json:"disk_mb,omitempty"` // ephemeral disk, mebibytes
}

// Step is one node of the graph.
type Step struct {
	Name      string    `json:"name"`              // snake_case of Method: "start", "train_model"
	Method    string    `json:"method"`            // the Go method: "Start", "TrainModel"
	Next      []string  `json:"next,omitempty"`    // names of the steps that follow
	Foreach   string    `json:"foreach,omitempty"` // artifact (field) fanned out over, when the step is a foreach
	Join      bool      `json:"join,omitempty"`    // the step takes its inputs (one per parent task)
	Item      string    `json:"item,omitempty"`    // Go type of the foreach element the step receives, if it takes one
	Resources Resources `json:"resources,omitempty"`
	Retries   int       `json:"retries,omitempty"` // extra attempts after a failure
	Timeout   Duration  `json:"timeout,omitempty"` // per attempt; zero means none
	Catch     string    `json:"catch,omitempty"`   // artifact that receives the error when the step fails for good
	// Compute names the backend the step's tasks run on ("" is local) and
	// carries its settings, as JSON, for that backend.
	Compute         string          `json:"compute,omitempty"`
	ComputeSettings json.RawMessage `json:"compute_settings,omitempty"`
	Decl            int             `json:"-"`                       // declaration order
	Parents         []string        `json:"parents,omitempty"`       // filled by Build
	SplitKind       string          `json:"split,omitempty"`         // "branch" or "foreach" when the step fans out
	Closes          string          `json:"closes,omitempty"`        // for a join: the step whose split it closes
	Depth           int             `json:"foreach_depth,omitempty"` // foreach nesting level of the step's tasks
}

// Duration is a time.Duration that reads and writes as "1m30s" in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Kind says how a step hands over to the steps after it.
func (s *Step) Kind() string {
	switch {
	case len(s.Next) == 0:
		return "end"
	case s.Foreach != "":
		return "foreach"
	case len(s.Next) > 1:
		return "branch"
	default:
		return "linear"
	}
}

// Graph is the checked graph of a flow.
type Graph struct {
	Flow  string  `json:"flow"`
	Steps []*Step `json:"steps"` // in declaration order
	// Schedule is when the deployed flow runs, if the flow says.
	Schedule *Schedule `json:"schedule,omitempty"`
	// Triggers are the flows whose successful production runs start this
	// one's, once deployed.
	Triggers []string `json:"triggers,omitempty"`
	index    map[string]*Step
}

// Schedule is a cron schedule in a time zone.
type Schedule struct {
	Cron     string `json:"cron"`
	TimeZone string `json:"timezone,omitempty"`
}

// Check says what is wrong with a schedule's cron fields, if anything. Its
// time zone is checked where the flow is deployed (CheckZone): a task's
// image may have no time zone database.
func (s *Schedule) Check() error {
	if err := checkCron(s.Cron); err != nil {
		return fmt.Errorf("schedule %q is not a cron schedule: %w; give five fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\", or @daily, @hourly", s.Cron, err)
	}
	return nil
}

// cronFields are the fields of a cron schedule: name, range and the names
// a field may use for its values.
var cronFields = []struct {
	name     string
	min, max int
	names    []string
}{
	{"minute", 0, 59, nil},
	{"hour", 0, 23, nil},
	{"day of month", 1, 31, nil},
	{"month", 1, 12, []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{"day of week", 0, 7, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// checkCron checks a schedule in the syntax Kubernetes CronJobs and Argo
// CronWorkflows take: five fields, each a list of *, N, N-M, with /STEP,
// months and weekdays also by name; or a macro (@daily, @every 1h30m).
func checkCron(expr string) error {
	expr = strings.TrimSpace(expr)
	if strings.HasPrefix(expr, "@") {
		if d, ok := strings.CutPrefix(expr, "@every "); ok {
			if v, err := time.ParseDuration(strings.TrimSpace(d)); err != nil || v <= 0 {
				return fmt.Errorf("@every takes a positive duration, e.g. @every 1h30m, not %q", d)
			}
			return nil
		}
		switch expr {
		case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
			return nil
		}
		return fmt.Errorf("%s is not a macro (@yearly, @monthly, @weekly, @daily, @hourly, @every DURATION)", expr)
	}
	f := strings.Fields(expr)
	if len(f) != 5 {
		return fmt.Errorf("it has %d fields, not 5", len(f))
	}
	for i, field := range f {
		spec := cronFields[i]
		for _, part := range strings.Split(field, ",") {
			if err := checkCronPart(part, spec.min, spec.max, spec.names, i >= 2); err != nil {
				return fmt.Errorf("%s field %q: %w (it takes %d-%d)", spec.name, field, err, spec.min, spec.max)
			}
		}
	}
	return nil
}

// checkCronPart checks one item of a field's list.
func checkCronPart(part string, min, max int, names []string, question bool) error {
	rng, step, stepped := strings.Cut(part, "/")
	if stepped {
		n, err := strconv.Atoi(step)
		if err != nil || n < 1 {
			return fmt.Errorf("step %q is not a positive number", step)
		}
	}
	if rng == "*" || question && rng == "?" {
		return nil
	}
	value := func(v string) (int, error) {
		for i, n := range names {
			if strings.EqualFold(v, n) {
				return min + i, nil
			}
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", v)
		}
		if n < min || n > max {
			return 0, fmt.Errorf("%d is out of range", n)
		}
		return n, nil
	}
	lo, hi, isRange := strings.Cut(rng, "-")
	a, err := value(lo)
	if err != nil {
		return err
	}
	if isRange {
		b, err := value(hi)
		if err != nil {
			return err
		}
		if b < a {
			return fmt.Errorf("range %s runs backwards", rng)
		}
	}
	return nil
}

// CheckZone says whether the schedule's time zone is known here.
func (s *Schedule) CheckZone() error {
	if s.TimeZone != "" {
		if _, err := time.LoadLocation(s.TimeZone); err != nil {
			return fmt.Errorf("schedule %q: %q is not a time zone (e.g. Europe/Amsterdam, America/New_York)", s.Cron, s.TimeZone)
		}
	}
	return nil
}

// Error is one problem found in a graph. It names the step.
type Error struct {
	Step string
	Msg  string
}

func (e *Error) Error() string {
	if e.Step == "" {
		return e.Msg
	}
	return fmt.Sprintf("step %s: %s", e.Step, e.Msg)
}

// Errors is every problem found in a graph, in a stable order.
type Errors []*Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Step returns the step called name, or nil.
func (g *Graph) Step(name string) *Step {
	return g.index[name]
}

// New makes a graph of the given steps and checks it. Problems found are
// returned together as Errors; the graph is returned in either case so that
// it can still be shown.
func New(flow string, steps []*Step) (*Graph, error) {
	g := &Graph{Flow: flow, Steps: steps, index: make(map[string]*Step, len(steps))}
	var errs Errors
	add := func(step, format string, args ...any) {
		errs = append(errs, &Error{Step: step, Msg: fmt.Sprintf(format, args...)})
	}
	for i, s := range steps {
		s.Decl = i
		if _, dup := g.index[s.Name]; dup {
			add(s.Name, "declared twice; declare each step once with g.Step")
			continue
		}
		g.index[s.Name] = s
	}
	for _, s := range steps {
		s.Parents = nil
	}
	for _, s := range steps {
		for _, n := range s.Next {
			t := g.index[n]
			if t == nil {
				add(s.Name, "transition to %q, which is not a step of the graph; declare it with g.Step", n)
				continue
			}
			t.Parents = append(t.Parents, s.Name)
		}
	}
	for _, s := range steps {
		if s.Name != "end" && len(s.Next) == 0 {
			add(s.Name, "has no transition; add .Next(...) to its declaration (only end has none)")
		}
	}
	start, end := g.index["start"], g.index["end"]
	if start == nil {
		add("", "the flow has no start step; every flow begins with a method named Start declared with g.Step")
	}
	if end == nil {
		add("", "the flow has no end step; every flow finishes with a method named End declared with g.Step")
	}
	if len(errs) > 0 {
		return g, errs
	}
	if len(start.Parents) > 0 {
		add("start", "is the target of %s; nothing may go back to start", strings.Join(start.Parents, ", "))
	}
	if len(end.Next) > 0 {
		add("end", "has a transition to %s; end must be the last step", strings.Join(end.Next, ", "))
	}
	for _, s := range steps {
		if s.Catch != "" && s.Foreach != "" {
			add(s.Name, "is a foreach and catches its failure into %s; a foreach cannot go on without its elements, so remove Catch or move the risky work into the foreach body", s.Catch)
		}
		if s.Foreach != "" && len(s.Next) != 1 {
			add(s.Name, "fans out over %s to %d steps; a foreach goes to exactly one step", s.Foreach, len(s.Next))
		}
		seen := map[string]bool{}
		for _, n := range s.Next {
			if seen[n] {
				add(s.Name, "goes to %s twice", n)
			}
			seen[n] = true
		}
	}
	// Reachability from start.
	reached := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		if reached[n] {
			return
		}
		reached[n] = true
		if s := g.index[n]; s != nil {
			for _, m := range s.Next {
				walk(m)
			}
		}
	}
	walk("start")
	for _, s := range steps {
		if !reached[s.Name] {
			add(s.Name, "is not reachable from start; add a transition to it or remove it")
		}
	}
	if c := g.cycle(); c != nil {
		add(c[0], "is part of a cycle (%s); a flow must not loop back", strings.Join(c, " -> "))
	}
	if len(errs) > 0 {
		return g, errs
	}
	errs = append(errs, g.checkSplits()...)
	if len(errs) > 0 {
		return g, errs
	}
	return g, nil
}

// cycle returns one cycle as a path of step names, or nil.
func (g *Graph) cycle() []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(n string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, m := range g.index[n].Next {
			switch color[m] {
			case grey:
				i := len(stack) - 1
				for stack[i] != m {
					i--
				}
				found = append(append([]string{}, stack[i:]...), m)
				return true
			case white:
				if visit(m) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	for _, s := range g.Steps {
		if color[s.Name] == white && visit(s.Name) {
			return found
		}
	}
	return nil
}

// Topo returns the steps in an order where every step comes after its parents.
func (g *Graph) Topo() []*Step {
	indeg := map[string]int{}
	for _, s := range g.Steps {
		indeg[s.Name] = len(s.Parents)
	}
	var order []*Step
	queue := []*Step{g.index["start"]}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		order = append(order, s)
		for _, n := range s.Next {
			indeg[n]--
			if indeg[n] == 0 {
				queue = append(queue, g.index[n])
			}
		}
	}
	return order
}

// checkSplits checks that every branch and foreach is closed by a join with
// one input per branch, and that only joins have several parents. It records
// on each step what it splits, what it closes and its foreach depth.
func (g *Graph) checkSplits() Errors {
	var errs Errors
	add := func(step, format string, args ...any) {
		errs = append(errs, &Error{Step: step, Msg: fmt.Sprintf(format, args...)})
	}
	in := map[string][]string{}  // splits open when the step runs
	out := map[string][]string{} // splits open after it
	for _, s := range g.Topo() {
		var stack []string
		switch {
		case len(s.Parents) == 0:
		case s.Join:
			first := out[s.Parents[0]]
			for _, p := range s.Parents[1:] {
				if strings.Join(out[p], "/") != strings.Join(first, "/") {
					add(s.Name, "joins %s and %s, which come from different splits; a join closes one branch or foreach", s.Parents[0], p)
				}
			}
			if len(first) == 0 {
				add(s.Name, "takes inputs but closes no branch or foreach; make it an ordinary step (func(ctx context.Context) error)")
				break
			}
			split := g.index[first[len(first)-1]]
			s.Closes = split.Name
			want := 1
			if split.Foreach == "" {
				want = len(split.Next)
			}
			if len(s.Parents) != want {
				what := fmt.Sprintf("the %d branches of %s", want, split.Name)
				if split.Foreach != "" {
					what = "the foreach of " + split.Name
				}
				add(s.Name, "join expects %d input(s), one per branch (%s), but %d step(s) go to it (%s)", want, what, len(s.Parents), strings.Join(s.Parents, ", "))
			}
			stack = first[:len(first)-1]
		case len(s.Parents) > 1:
			add(s.Name, "has %d parents (%s) but takes no inputs; make it a join: func(ctx context.Context, in stepwise.Inputs[*Flow]) error", len(s.Parents), strings.Join(s.Parents, ", "))
			stack = out[s.Parents[0]]
		default:
			stack = out[s.Parents[0]]
		}
		in[s.Name] = stack
		o := stack
		switch {
		case s.Foreach != "":
			s.SplitKind = "foreach"
			o = append(append([]string{}, stack...), s.Name)
		case len(s.Next) > 1:
			s.SplitKind = "branch"
			o = append(append([]string{}, stack...), s.Name)
		}
		out[s.Name] = o
		depth := 0
		for _, n := range stack {
			if g.index[n].Foreach != "" {
				depth++
			}
		}
		s.Depth = depth
	}
	for _, s := range g.Steps {
		if len(s.Next) == 0 && len(in[s.Name]) > 0 {
			open := in[s.Name]
			add(s.Name, "is reached while the %s of %s is still open; close it with a join step before %s", g.index[open[len(open)-1]].SplitKind, open[len(open)-1], s.Name)
		}
		if s.Item != "" {
			ok := len(s.Parents) == 1 && g.index[s.Parents[0]].Foreach != ""
			if !ok {
				add(s.Name, "takes a foreach element (%s) but does not directly follow a foreach", s.Item)
			}
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return g.order(errs[i].Step) < g.order(errs[j].Step) })
	return errs
}

func (g *Graph) order(step string) int {
	if s := g.index[step]; s != nil {
		return s.Decl
	}
	return -1
}

func fmtDuration(d Duration) string { return time.Duration(d).String() }

// TaskID is the id of the task at a position in the foreach nesting: "0"
// for a task outside any foreach, the element index inside one ("17"),
// the indexes from the outermost foreach in, dotted, when nested ("2.5").
// A task's id is unique within its step and the same in every run, so it
// is known without asking anyone: a join finds its inputs, and a resume
// its origin tasks, by position.
func TaskID(indexes []int) string {
	if len(indexes) == 0 {
		return "0"
	}
	var b strings.Builder
	for i, x := range indexes {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(x))
	}
	return b.String()
}

// TaskIndexes reads the foreach indexes of a task id at foreach depth
// depth: TaskID backwards.
func TaskIndexes(id string, depth int) ([]int, error) {
	if depth == 0 {
		if id != "0" {
			return nil, fmt.Errorf("task id %q: a task outside any foreach has id 0", id)
		}
		return nil, nil
	}
	parts := strings.Split(id, ".")
	if len(parts) != depth {
		return nil, fmt.Errorf("task id %q: a task inside %d nested foreach has %d dotted indexes, e.g. %s", id, depth, depth, TaskID(make([]int, depth)))
	}
	out := make([]int, depth)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || strconv.Itoa(n) != p {
			return nil, fmt.Errorf("task id %q: %q is not an element index", id, p)
		}
		out[i] = n
	}
	return out, nil
}

// SnakeCase turns a Go method name into a step name: "TrainModel" becomes
// "train_model", "LoadHTTPData" becomes "load_http_data".
func SnakeCase(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) {
			if i > 0 && (unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1]) || (i+1 < len(r) && unicode.IsLower(r[i+1]) && unicode.IsUpper(r[i-1]))) {
				b.WriteByte('_')
			}
			c = unicode.ToLower(c)
		}
		b.WriteRune(c)
	}
	return b.String()
}
