package stepwise_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BenchmarkKubernetesTasks runs one-line tasks on the test cluster, 16 at
// a time: the foreach example placed wholly on Kubernetes (N items, plus
// start, join and end), beside its floor measured in the same run: N bare
// Jobs of the busybox image that print one line, created by 16 workers
// that each wait for their Job to complete. It reports the run's time, the
// floor's, what Stepwise adds per task beyond the cluster's own pod start,
// and the launcher's API requests per task.
//
//	go test -run '^$' -bench KubernetesTasks -benchtime 1x -timeout 3h .
func BenchmarkKubernetesTasks(b *testing.B) {
	c := kubeCluster(b)
	sizes := []int{100, 1000}
	if testing.Short() {
		sizes = []int{20}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var run, floor time.Duration
			requests := 0
			for range b.N {
				floor += c.floorJobs(b, n, 16)
				start := time.Now()
				f := c.start(b, []string{"STEPWISE_DEBUG=timing"}, "foreach", "run", "--n", strconv.Itoa(n), "--compute", "kubernetes", "--max-workers", "16")
				// The cluster starts about one pod a second on two cores.
				if code := f.waitWithin(b, kubeLimit+time.Duration(n)*3*time.Second); code != 0 {
					b.Fatalf("exit %d: %s", code, f)
				}
				run += time.Since(start)
				m := regexp.MustCompile(`kubernetes API requests=(\d+)`).FindStringSubmatch(f.errOut.String())
				if m == nil {
					b.Fatalf("no count of API requests: %s", f)
				}
				r, _ := strconv.Atoi(m[1])
				requests += r
			}
			tasks := float64(n + 3)
			b.ReportMetric(run.Seconds()/float64(b.N), "s/run")
			b.ReportMetric(floor.Seconds()/float64(b.N), "floor-s/run")
			b.ReportMetric((run-floor).Seconds()*1000/float64(b.N)/tasks, "overhead-ms/task")
			b.ReportMetric(float64(requests)/float64(b.N)/tasks, "api-requests/task")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// floorJobs runs n Jobs of the busybox image that print one line, with
// workers creating one and waiting for it to complete at a time, and
// returns how long they took.
func (c *cluster) floorJobs(b testing.TB, n, workers int) time.Duration {
	ctx := context.Background()
	jobs := c.admin.BatchV1().Jobs(c.ns.Name)
	next := make(chan int)
	go func() {
		for i := range n {
			next <- i
		}
		close(next)
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name := fmt.Sprintf("floor-%d-%d", start.UnixNano()%100000, i)
				backoff, ttl := int32(0), int32(60)
				_, err := jobs.Create(ctx, &batchv1.Job{
					ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": "floor"}},
					Spec: batchv1.JobSpec{BackoffLimit: &backoff, TTLSecondsAfterFinished: &ttl, Template: corev1.PodTemplateSpec{
						Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, NodeSelector: c.nodes.Selector(),
							Containers: []corev1.Container{{Name: "task", Image: c.imgs.Busybox, Command: []string{"echo", "one line"}}}},
					}},
				}, metav1.CreateOptions{})
				for err == nil {
					time.Sleep(100 * time.Millisecond)
					var j *batchv1.Job
					if j, err = jobs.Get(ctx, name, metav1.GetOptions{}); err == nil && (j.Status.Succeeded > 0 || j.Status.Failed > 0) {
						if j.Status.Failed > 0 {
							err = fmt.Errorf("job %s failed", name)
						}
						break
					}
				}
				if err != nil {
					mu.Lock()
					failed = append(failed, err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if len(failed) > 0 {
		b.Fatalf("floor Jobs failed: %s", strings.Join(failed, "; "))
	}
	return d
}
