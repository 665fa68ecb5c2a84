package stepwise

// FakeCompute places a step on the test compute backend "fake", which
// the tests register (compute_test.go).
type FakeCompute struct{}

func (FakeCompute) computeBackend() (string, any) { return "fake", map[string]string{"zone": "test"} }
