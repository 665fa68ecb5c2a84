// Package testservers gives tests real servers on loopback: PostgreSQL and
// MinIO. When the test command already started them it says so in the
// environment (STEPWISE_TEST_POSTGRES, STEPWISE_TEST_S3_ENDPOINT); otherwise
// the first test that asks starts one for the whole test binary, in a
// temporary directory, on a free port, and it dies with the test process.
// A server that cannot be started fails the test: it never skips.
package testservers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	pgOnce sync.Once
	pgDSN  string
	pgErr  error

	s3Once sync.Once
	s3Srv  *S3
	s3Err  error
)

// PostgresAdmin returns the DSN of a PostgreSQL server's postgres database.
func PostgresAdmin(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() {
		if dsn := os.Getenv("STEPWISE_TEST_POSTGRES"); dsn != "" {
			pgDSN = dsn
			return
		}
		var p *Postgres
		if p, pgErr = startPostgres(); pgErr == nil {
			pgDSN = p.DSN
		}
	})
	if pgErr != nil {
		t.Fatalf("testservers: PostgreSQL is needed and could not be started: %v (install PostgreSQL 15: apt-get install postgresql-15, or run ./scripts/test)", pgErr)
	}
	return pgDSN
}

// NewDatabase creates an empty database for one test and returns its DSN.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := PostgresAdmin(t)
	name := "t_" + randomHex(6)
	if out, err := exec.Command("psql", admin, "-q", "-v", "ON_ERROR_STOP=1", "-c", "CREATE DATABASE "+name).CombinedOutput(); err != nil {
		t.Fatalf("testservers: create database: %v\n%s", err, out)
	}
	return replaceDB(admin, name)
}

func replaceDB(dsn, db string) string {
	// dsn is postgres://user@host:port/postgres?sslmode=disable
	i := strings.LastIndex(dsn, "/")
	rest := ""
	if j := strings.Index(dsn[i:], "?"); j >= 0 {
		rest = dsn[i+j:]
	}
	return dsn[:i+1] + db + rest
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// dying starts cmd so that it is killed when this process dies: the
// parent-death signal is tied to the thread that starts it, so that thread
// is kept for the life of the process.
func dying(cmd *exec.Cmd) error {
	errc := make(chan error)
	go func() {
		goruntime.LockOSThread()
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		errc <- cmd.Start()
		select {} // keep the thread
	}()
	return <-errc
}

// asPostgresUser makes cmd run as the postgres user when we are root
// (PostgreSQL refuses to run as root).
func asPostgresUser(cmd *exec.Cmd, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root needs the postgres user to run PostgreSQL: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if dir != "" {
		if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		}); err != nil {
			return err
		}
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	return nil
}

func pgBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) > 0 {
		return matches[len(matches)-1], nil
	}
	return "", fmt.Errorf("%s not found on PATH or in /usr/lib/postgresql/*/bin", name)
}

// Postgres is a PostgreSQL server this package started.
type Postgres struct {
	DSN  string // of its postgres database
	dir  string
	args []string
	bin  string
	port int

	mu  sync.Mutex
	cmd *exec.Cmd
}

// NewPostgres starts a PostgreSQL server of the test's own, for a test
// that stops or restarts it; it is stopped when the test ends.
func NewPostgres(t testing.TB) *Postgres {
	t.Helper()
	p, err := startPostgres()
	if err != nil {
		t.Fatalf("testservers: PostgreSQL is needed and could not be started: %v", err)
	}
	t.Cleanup(p.stop)
	return p
}

func startPostgres() (*Postgres, error) {
	initdb, err := pgBin("initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := pgBin("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := ownedTempDir("stepwise-pg-")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(initdb, "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
	if err := asPostgresUser(cmd, dir); err != nil {
		return nil, err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	p := &Postgres{dir: dir, bin: postgres, port: port,
		DSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		args: []string{"-D", data, "-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1",
			"-c", "unix_socket_directories=" + dir, "-c", "fsync=off", "-c", "max_connections=300", "-c", "shared_buffers=64MB"}}
	if err := p.start(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Postgres) start() error {
	cmd := exec.Command(p.bin, p.args...)
	logf, _ := os.OpenFile(filepath.Join(p.dir, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o666)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := asPostgresUser(cmd, ""); err != nil {
		return err
	}
	if err := dying(cmd); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	p.mu.Lock()
	p.cmd = cmd
	p.mu.Unlock()
	if err := waitTCP(p.port, 30*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "postgres.log"))
		return fmt.Errorf("postgres did not start: %v\n%s", err, log)
	}
	// Accepting TCP is not yet accepting queries.
	for i := 0; i < 100; i++ {
		if exec.Command("psql", p.DSN, "-c", "select 1").Run() == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("postgres on port %d does not answer queries", p.port)
}

// stop shuts the server down fast (SIGINT: connections are cut) and waits.
func (p *Postgres) stop() {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Restart stops the server, waits pause, and starts it again on the same
// port with the same data: every connection to it is cut.
func (p *Postgres) Restart(pause time.Duration) error {
	p.stop()
	time.Sleep(pause)
	return p.start()
}

func waitTCP(port int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on 127.0.0.1:%d after %s", port, limit)
}

// S3 is an S3-compatible server for tests.
type S3 struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Dir       string // its data directory ("" when not started here)
	cmd       *exec.Cmd
	port      int
	host      string // the address it listens on ("" for 127.0.0.1)
}

// MinIO returns a running MinIO server.
func MinIO(t testing.TB) *S3 {
	t.Helper()
	s3Once.Do(func() {
		if ep := os.Getenv("STEPWISE_TEST_S3_ENDPOINT"); ep != "" {
			s3Srv = &S3{Endpoint: ep, AccessKey: os.Getenv("STEPWISE_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("STEPWISE_TEST_S3_SECRET_KEY")}
			return
		}
		s3Srv, s3Err = startMinIO()
	})
	if s3Err != nil {
		t.Fatalf("testservers: MinIO is needed and could not be started: %v (run ./scripts/test, which builds it)", s3Err)
	}
	return s3Srv
}

// repoRoot finds the repository from this file's location.
func repoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func startMinIO() (*S3, error) { return startMinIOOn("127.0.0.1") }

// startMinIOOn starts a MinIO server listening on host.
func startMinIOOn(host string) (*S3, error) {
	out, err := exec.Command(filepath.Join(repoRoot(), "scripts", "minio-bin")).Output()
	if err != nil {
		return nil, fmt.Errorf("scripts/minio-bin: %w", err)
	}
	bin := strings.TrimSpace(string(out))
	dir, err := ownedTempDir("stepwise-minio-")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &S3{Endpoint: "http://" + net.JoinHostPort(host, strconv.Itoa(port)), AccessKey: "stepwise", SecretKey: "stepwise-secret", Dir: dir, port: port, host: host}
	if err := s.start(bin); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *S3) start(bin string) error {
	cport, err := FreePort()
	if err != nil {
		return err
	}
	host := s.host
	if host == "" {
		host = "127.0.0.1"
	}
	cmd := exec.Command(bin, "server", "--quiet", "--address", net.JoinHostPort(host, strconv.Itoa(s.port)), "--console-address", net.JoinHostPort(host, strconv.Itoa(cport)), filepath.Join(s.Dir, "data"))
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey, "MINIO_BROWSER=off", "MINIO_UPDATE=off")
	logf, _ := os.OpenFile(filepath.Join(s.Dir, "minio.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := dying(cmd); err != nil {
		return fmt.Errorf("start minio: %w", err)
	}
	s.cmd = cmd
	if err := waitReady(s.Endpoint+"/minio/health/ready", 60*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.Dir, "minio.log"))
		return fmt.Errorf("minio did not become ready: %v\n%s", err, log)
	}
	return nil
}

// Restart stops the MinIO server this package started and starts it again
// on the same port and data, after pause. It calls during(), if not nil,
// while the server is down.
func (s *S3) Restart(ctx context.Context, pause time.Duration) error {
	if s.cmd == nil {
		return fmt.Errorf("testservers: this MinIO was not started by the test binary; cannot restart it")
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	select {
	case <-time.After(pause):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.start(s.cmd.Path)
}

// ownedTempDir makes a temporary directory for a server of this test
// process, with the process's id in its file "owner". It first removes the
// directories of that kind whose test process is gone: servers die with
// their test process, but their directories (hundreds of MB for a MinIO)
// would pile up on the disk. A directory without an owner file is removed
// once it is an hour old.
func ownedTempDir(prefix string) (string, error) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	for _, d := range dirs {
		if ownerGone(d) {
			os.RemoveAll(d)
		}
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// ownerGone says whether the test process that made dir has ended.
func ownerGone(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "owner"))
	if err != nil {
		fi, serr := os.Stat(dir)
		return errors.Is(err, fs.ErrNotExist) && serr == nil && time.Since(fi.ModTime()) > time.Hour
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
