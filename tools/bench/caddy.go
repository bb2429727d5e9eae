package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// moduleRoot is the directory of the github.com/caddy-kassa/kassa module
// the harness is built with: the repository's root, where the dev Caddy
// and the Go benchmarks are built (the tools module replaces the plugin
// by ../).
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/caddy-kassa/kassa").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m github.com/caddy-kassa/kassa: %v (run the harness in the repository's tools module)", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", errors.New("the caddy-kassa module has no directory: run the harness in the repository's tools module")
	}
	return dir, nil
}

// buildCaddy builds the dev Caddy (./cmd/caddy) into dir.
func buildCaddy(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "caddy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	return bin, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// caddyProcess is a running Caddy, started with a Caddyfile.
type caddyProcess struct {
	name  string
	cmd   *exec.Cmd
	admin string // the admin endpoint's base URL
	log   string // the file its output goes to
	done  chan struct{}
}

// startCaddy runs bin with caddyfile, its data, config and output under
// dir, and env (KEY=value) added to its environment, and waits until its
// admin endpoint and the site at ready answer.
func startCaddy(ctx context.Context, bin, dir, name, caddyfile string, adminPort int, ready string, env ...string) (*caddyProcess, error) {
	config := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(config, []byte(caddyfile), 0o600); err != nil {
		return nil, err
	}
	logFile := filepath.Join(dir, name+".log")
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(bin, "run", "--config", config, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, name, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, name, "config"))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %v", name, err)
	}
	p := &caddyProcess{name: name, cmd: cmd, admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), log: logFile, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(ctx, ready); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// waitReady waits until the admin endpoint and url answer 200.
func (p *caddyProcess) waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(time.Minute)
	for _, u := range []string{p.admin + "/config/", url} {
		for {
			resp, err := http.Get(u)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-p.done:
				return fmt.Errorf("%s exited while starting; its log: %s\n%s", p.name, p.log, p.logTail())
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not answer %s within a minute; its log: %s\n%s", p.name, u, p.log, p.logTail())
			}
		}
	}
	return nil
}

// logTail is the end of the process's output, for an error message.
func (p *caddyProcess) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop asks Caddy to stop and waits for it; a Caddy that does not stop
// within 10 seconds is killed.
func (p *caddyProcess) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// memory is a process's resident set: now, and its peak so far.
type memory struct {
	rss, peak int64 // bytes
}

// memory reads the process's VmRSS and VmHWM from /proc.
func (p *caddyProcess) memory() (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return memory{}, fmt.Errorf("reading %s's memory (Linux only): %v", p.name, err)
	}
	defer f.Close()
	var m memory
	s := bufio.NewScanner(f)
	for s.Scan() {
		key, value, _ := strings.Cut(s.Text(), ":")
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &m.rss
		case "VmHWM":
			dst = &m.peak
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("%s's %s: %q", p.name, key, value)
		}
		*dst = kb << 10
	}
	if m.rss == 0 || m.peak == 0 {
		return memory{}, fmt.Errorf("%s's /proc status has no VmRSS or VmHWM", p.name)
	}
	return m, s.Err()
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: clock ticks of
// 1/100 s on every Linux.
const userHZ = 100

// cpuTime is the CPU time, user and system, the process has used so far.
func (p *caddyProcess) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("reading %s's CPU time (Linux only): %v", p.name, err)
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after it. utime and stime are the 14th and 15th fields.
	_, rest, _ := cutLast(string(b), ')')
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("%s's /proc stat: %q", p.name, b)
	}
	var ticks int64
	for _, field := range f[11:13] {
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s's /proc stat: %q", p.name, b)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// metrics reads the admin endpoint's Prometheus metrics.
func (p *caddyProcess) metrics(ctx context.Context) (metricSet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.admin+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s's metrics: %v", p.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s's metrics: %s", p.name, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// cpuProfile writes a CPU profile of the next d to file, from the admin
// endpoint's /debug/pprof/.
func (p *caddyProcess) cpuProfile(ctx context.Context, d time.Duration, file string) error {
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.admin, max(int(d.Seconds()), 1))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profiling %s: %v", p.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profiling %s: %s", p.name, resp.Status)
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
