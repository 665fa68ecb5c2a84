package stepwise_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"stepwise.dev/stepwise/internal/testservers"
)

var updateGolden = flag.Bool("update-golden", false, "write the golden files of generated manifests (testdata/argo) instead of comparing")

// argoCRDs finds Argo's published CustomResourceDefinitions: beside the
// project, in ../shared/argo-crds (they are not copied into it); in a
// clone of a local checkout, beside the checkout it was cloned from.
func argoCRDs(t testing.TB) string {
	t.Helper()
	const rel = "../shared/argo-crds"
	tried := []string{rel}
	if _, err := os.Stat(rel); err == nil {
		return rel
	}
	if out, err := exec.Command("git", "config", "--get", "remote.origin.url").Output(); err == nil {
		origin := strings.TrimPrefix(strings.TrimSpace(string(out)), "file://")
		if filepath.IsAbs(origin) {
			dir := filepath.Join(origin, rel)
			tried = append(tried, dir)
			if _, err := os.Stat(dir); err == nil {
				return dir
			}
		}
	}
	t.Fatalf("Argo's CustomResourceDefinitions are not beside the project: looked in %s", strings.Join(tried, " and "))
	return ""
}

// argoVersions are the Argo Workflows releases whose schemas the
// generated manifests are checked against.
var argoVersions = []string{"v3.7.9", "v4.1.2"}

// argoFlows are the flows whose manifests are generated: every example,
// the seed flow and the retry flow, as static binaries.
var argoFlows = []string{"linear", "branchjoin", "foreach", "nested", "kubeseed", "argoretry", "downstream"}

// dryRunEnv is the settings of a deployment whose manifests are printed
// (create --dry-run): fixed, so that the golden files are.
func dryRunEnv(t testing.TB) []string {
	return append(os.Environ(),
		"STEPWISE_CONFIG="+filepath.Join(t.TempDir(), "none.json"),
		"STEPWISE_USER=ann",
		"STEPWISE_DATASTORE=s3://ml-team/stepwise",
		"STEPWISE_METADATA=https://stepwise-meta.ml.internal:8443",
		"AWS_ENDPOINT_URL_S3=", "AWS_REGION=eu-west-1",
		"STEPWISE_KUBERNETES_NAMESPACE=ml",
		"STEPWISE_KUBERNETES_IMAGE=debian:bookworm-slim",
		"STEPWISE_KUBERNETES_SERVICE_ACCOUNT=stepwise",
		"STEPWISE_KUBERNETES_TOKEN_SECRET=stepwise-token",
		"STEPWISE_KUBERNETES_AWS_SECRET=s3-creds",
	)
}

var codeSum = regexp.MustCompile(`[0-9a-f]{64}`)

// generated prints the manifests of one flow's deployment, with the code's
// SHA-256 (which changes with every build) written as SHA256.
func generated(t *testing.T, bins, flow string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(filepath.Join(bins, flow), append([]string{"argo-workflows", "create", "--dry-run", "--authorize", "golden-token"}, args...)...)
	cmd.Env = dryRunEnv(t)
	cmd.Dir = t.TempDir()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s argo-workflows create --dry-run: %v\n%s", flow, err, errOut.String())
	}
	return codeSum.ReplaceAll(out.Bytes(), []byte("SHA256"))
}

// manifests splits YAML documents into JSON objects.
func manifests(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, doc := range regexp.MustCompile(`(?m)^---\n`).Split(string(data), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("a generated manifest is not YAML: %v\n%s", err, doc)
		}
		out = append(out, m)
	}
	return out
}

// TestArgoManifestsAgainstArgoSchemas generates the deployment of every
// example flow, compares it with its golden file, and has the API server
// check every WorkflowTemplate, CronWorkflow and Workflow against Argo's
// own published schemas, for each release line: created with dryRun=All
// and fieldValidation=Strict, so an unknown or mistyped field fails.
func TestArgoManifestsAgainstArgoSchemas(t *testing.T) {
	bins := kubeBinaries(t)
	docs := map[string][]map[string]any{}
	for _, flow := range argoFlows {
		got := generated(t, bins, flow, "--schedule", "0 3 * * *", "--timezone", "Europe/Amsterdam")
		golden := filepath.Join("testdata", "argo", flow+".yaml")
		if *updateGolden {
			if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (write the golden files with go test -run TestArgoManifests -update-golden .)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("the manifests of %s differ from %s (if the change is meant, write them again with -update-golden):\n%s", flow, golden, lineDiff(string(want), string(got)))
		}
		ms := manifests(t, got)
		if len(ms) != 2 || ms[0]["kind"] != "WorkflowTemplate" || ms[1]["kind"] != "CronWorkflow" {
			t.Fatalf("%s: want a WorkflowTemplate and a CronWorkflow, got %d documents", flow, len(ms))
		}
		// The Workflows that trigger makes: one from the template, and one
		// that carries the template's spec inline, as a workflow archived
		// or submitted without the template would.
		tmpl := ms[0]
		meta := tmpl["metadata"].(map[string]any)
		ref := map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
			"metadata": map[string]any{"generateName": meta["name"].(string) + "-", "labels": meta["labels"]},
			"spec":     map[string]any{"workflowTemplateRef": map[string]any{"name": meta["name"]}}}
		inline := map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
			"metadata": map[string]any{"generateName": meta["name"].(string) + "-"}, "spec": tmpl["spec"]}
		docs[flow] = append(ms, ref, inline)
	}

	k := testservers.Kube(t)
	hc, err := rest.HTTPClientFor(k.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	ns := k.NewNamespace(t, nil)
	for _, v := range argoVersions {
		installArgoCRDs(t, k, v)
		for _, flow := range argoFlows {
			for _, m := range docs[flow] {
				// Into the test's namespace.
				m["metadata"].(map[string]any)["namespace"] = ns.Name
				kind := m["kind"].(string)
				if err := dryRunCreate(hc, k.URL, ns.Name, m); err != nil {
					t.Errorf("Argo %s refuses the %s of flow %s: %v", v, kind, flow, err)
				}
			}
		}
		// The check is strict: a field Argo does not have is refused.
		bad := map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
			"metadata": map[string]any{"name": "bad"}, "spec": map[string]any{"entrypoint": "main", "retries": 3}}
		if err := dryRunCreate(hc, k.URL, ns.Name, bad); err == nil || !strings.Contains(err.Error(), "retries") {
			t.Errorf("Argo %s: a WorkflowTemplate with an unknown field was not refused: %v", v, err)
		}
	}
}

// lineDiff shows the first lines where two texts differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, a, b)
		}
	}
	return "(the same lines)"
}

// dryRunCreate creates m in namespace ns with dryRun=All and
// fieldValidation=Strict: the API server checks it and stores nothing.
func dryRunCreate(hc *http.Client, server, ns string, m map[string]any) error {
	kind := strings.ToLower(m["kind"].(string)) + "s"
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	u := server + "/apis/argoproj.io/v1alpha1/namespaces/" + ns + "/" + kind + "?" + url.Values{"dryRun": {"All"}, "fieldValidation": {"Strict"}}.Encode()
	resp, err := hc.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("%s: %s", resp.Status, out)
	}
	return nil
}

// installArgoCRDs installs the CustomResourceDefinitions of one Argo
// release with server-side apply (they are too large for client-side
// apply's annotation), after deleting those of another, and waits until
// the API server serves them.
func installArgoCRDs(t testing.TB, k *testservers.Kubernetes, version string) {
	t.Helper()
	hc, err := rest.HTTPClientFor(k.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	dir := argoCRDs(t)
	files, err := filepath.Glob(filepath.Join(dir, version, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CustomResourceDefinitions of Argo Workflows %s in %s: %v", version, dir, err)
	}
	crdPath := k.URL + "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
	do := func(method, u, ctype string, body []byte) (int, []byte) {
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	var crds []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var meta struct {
			Metadata struct {
				Name        string            `json:"name"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		json.Unmarshal(js, &meta)
		name := meta.Metadata.Name
		crds = append(crds, name)
		// A CRD of another release is deleted first, so that what is
		// served is this release's schema and nothing of the other's.
		var cur struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		if code, out := do(http.MethodGet, crdPath+name, "", nil); code == http.StatusOK {
			json.Unmarshal(out, &cur)
			if cur.Metadata.Labels["stepwise-test/argo-version"] == version {
				continue
			}
			do(http.MethodDelete, crdPath+name, "", nil)
			deadline := time.Now().Add(time.Minute)
			for {
				if code, _ := do(http.MethodGet, crdPath+name, "", nil); code == http.StatusNotFound {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the CustomResourceDefinition %s was not deleted within a minute", name)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		var obj map[string]any
		json.Unmarshal(js, &obj)
		m := obj["metadata"].(map[string]any)
		labels, _ := m["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		labels["stepwise-test/argo-version"] = version
		m["labels"] = labels
		body, _ := json.Marshal(obj)
		code, out := do(http.MethodPatch, crdPath+name+"?fieldManager=stepwise-test&force=true", "application/apply-patch+yaml", body)
		if code/100 != 2 {
			t.Fatalf("server-side apply of %s (Argo %s): %d %s", name, version, code, out)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, name := range crds {
		for {
			var crd struct {
				Spec struct {
					Names struct {
						Plural string `json:"plural"`
					} `json:"names"`
				} `json:"spec"`
				Status struct {
					Conditions []struct{ Type, Status string } `json:"conditions"`
				} `json:"status"`
			}
			_, out := do(http.MethodGet, crdPath+name, "", nil)
			json.Unmarshal(out, &crd)
			established := false
			for _, c := range crd.Status.Conditions {
				established = established || c.Type == "Established" && c.Status == "True"
			}
			if established {
				// Served: a list of the resource answers.
				if code, _ := do(http.MethodGet, k.URL+"/apis/argoproj.io/v1alpha1/"+crd.Spec.Names.Plural+"?limit=1", "", nil); code == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the CustomResourceDefinition %s (Argo %s) is not served after a minute: %s", name, version, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// uninstallArgoCRDs deletes the Argo CRDs that installArgoCRDs installed
// and waits until the API server no longer serves Argo's resources.
func uninstallArgoCRDs(t testing.TB, k *testservers.Kubernetes) {
	t.Helper()
	ctx := context.Background()
	rc := k.AdminClient(t).CoreV1().RESTClient()
	crds := "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
	err := rc.Delete().AbsPath(crds).Param("labelSelector", "stepwise-test/argo-version").Do(ctx).Error()
	if err != nil {
		t.Fatalf("delete Argo's CustomResourceDefinitions: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		err := rc.Get().AbsPath("/apis/argoproj.io/v1alpha1").Do(ctx).Error()
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Argo's resources are still served a minute after their CustomResourceDefinitions were deleted (%v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// BenchmarkArgoTemplate generates the foreach example's WorkflowTemplate
// for foreach widths 10, 1,000 and 100,000 (the width is the parameter n,
// given at create time) and creates it on the API server, with Argo's
// CRDs and their schemas installed. It reports the template's size, which
// must not grow with the width (tasks find their inputs themselves), and
// the time to create it beside its floor, measured in the same run: a
// ConfigMap of the same number of bytes created the same way.
//
//	go test -run '^$' -bench ArgoTemplate -benchtime 20x .
func BenchmarkArgoTemplate(b *testing.B) {
	k := testservers.Kube(b)
	installArgoCRDs(b, k, argoVersions[0])
	ns := k.NewNamespace(b, nil)
	bins := kubeBinaries(b)
	hc, err := rest.HTTPClientFor(k.AdminConfig())
	if err != nil {
		b.Fatal(err)
	}
	post := func(b *testing.B, path string, obj map[string]any) {
		body, _ := json.Marshal(obj)
		resp, err := hc.Post(k.URL+path, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("POST %s: %s: %s", path, resp.Status, out)
		}
	}
	var sizes []int
	made := 0 // objects created, for unique names across rounds
	for _, width := range []int{10, 1000, 100000} {
		b.Run(fmt.Sprintf("width=%d", width), func(b *testing.B) {
			cmd := exec.Command(filepath.Join(bins, "foreach"), "argo-workflows", "create", "--dry-run", "--authorize", "bench-token", "--n", strconv.Itoa(width))
			cmd.Env = append(dryRunEnv(b), "STEPWISE_KUBERNETES_NAMESPACE="+ns.Name) // the later value wins
			out, err := cmd.Output()
			if err != nil {
				b.Fatalf("foreach argo-workflows create --dry-run: %v", err)
			}
			var tmpl map[string]any
			if err := yaml.Unmarshal(out, &tmpl); err != nil {
				b.Fatal(err)
			}
			size := len(out)
			sizes = append(sizes, size)
			filler := strings.Repeat("x", size)
			var create, floor time.Duration
			for range b.N {
				made++
				i := made
				meta := tmpl["metadata"].(map[string]any)
				meta["name"] = fmt.Sprintf("foreach-%d-%d", width, i)
				start := time.Now()
				post(b, "/apis/argoproj.io/v1alpha1/namespaces/"+ns.Name+"/workflowtemplates", tmpl)
				create += time.Since(start)
				start = time.Now()
				post(b, "/api/v1/namespaces/"+ns.Name+"/configmaps", map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
					"metadata": map[string]any{"name": fmt.Sprintf("floor-%d-%d", width, i)}, "data": map[string]any{"filler": filler}})
				floor += time.Since(start)
			}
			b.ReportMetric(float64(size), "template-bytes")
			b.ReportMetric(float64(create.Microseconds())/1000/float64(b.N), "create-ms")
			b.ReportMetric(float64(floor.Microseconds())/1000/float64(b.N), "floor-create-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
	// The width is a parameter's default: the template differs in those
	// digits only.
	if len(sizes) > 0 && slices.Max(sizes)-slices.Min(sizes) > 4 {
		b.Errorf("the template grows with the foreach's width: %v bytes", sizes)
	}
}
