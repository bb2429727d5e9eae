package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine is what the figures were measured on.
type machine struct {
	cpu, kernel, memory, goVersion string
	cores                          int
	// storageDir is where the file storage was, and storageFS its file
	// system's type and mount options.
	storageDir, storageFS string
	// loadBefore and loadAfter are the load averages (1, 5 and 15
	// minutes) as the run began and ended: other work on the machine
	// shows in them.
	loadBefore, loadAfter string
	date                  time.Time
}

// thisMachine describes the machine the harness runs on, from /proc.
func thisMachine() machine {
	m := machine{
		cpu:        procField("/proc/cpuinfo", "model name"),
		kernel:     strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
		memory:     totalMemory(),
		goVersion:  runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		cores:      runtime.NumCPU(),
		loadBefore: loadAverage(),
		date:       time.Now().UTC(),
	}
	return m
}

// loadAverage is the 1, 5 and 15 minute load averages from /proc/loadavg.
func loadAverage() string {
	f := strings.Fields(readFile("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// totalMemory is MemTotal from /proc/meminfo, in GB.
func totalMemory() string {
	total := procField("/proc/meminfo", "MemTotal")
	kb, err := strconv.ParseInt(strings.TrimSuffix(total, " kB"), 10, 64)
	if err != nil {
		return total
	}
	return fmt.Sprintf("%.1f GB", float64(kb)*1024/1e9)
}

// fileSystem is the type and mount options of the file system dir is on,
// from /proc/mounts: those of the longest mount point that contains it.
func fileSystem(dir string) string {
	fs, longest := "unknown", -1
	for _, line := range strings.Split(readFile("/proc/mounts"), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		mount := f[1]
		inside := dir == mount || strings.HasPrefix(dir, strings.TrimSuffix(mount, "/")+"/")
		if inside && len(mount) > longest {
			fs, longest = f[2]+" ("+f[3]+")", len(mount)
		}
	}
	return fs
}

// procField is the value of the first "key: value" line of a /proc file
// with key, or "unknown".
func procField(file, key string) string {
	f, err := os.Open(file)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// readFile is a file's content, or "unknown".
func readFile(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return "unknown"
	}
	return string(b)
}
