package daemoncmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
)

// profileOnSignal profiles the daemon between two SIGUSR2s, for
// benchmarks that look at one phase of a run (bench/create100 -profile):
// the first starts a CPU profile and records blocking and lock waits, the
// second writes cpu.pprof, block.pprof, mutex.pprof and heap.pprof into dir, and so
// on, each pair into a new numbered directory (the next number not yet in
// dir, so that a restarted daemon adds to the earlier ones). The heap as the
// first found it is heap0.pprof: the allocations between the two are
// heap.pprof's less heap0.pprof's (go tool pprof -sample_index=alloc_space
// -diff_base heap0.pprof heap.pprof). It returns when ctx ends,
// writing a profile still running.
func profileOnSignal(ctx context.Context, dir string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR2)
	defer signal.Stop(sig)
	var running *os.File
	n := 0
	stop := func() {
		err := stopProfile(running)
		running = nil
		if err != nil {
			slog.Error("profile", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			if running != nil {
				stop()
			}
			return
		case <-sig:
		}
		if running != nil {
			stop()
			continue
		}
		n++
		for exists(filepath.Join(dir, fmt.Sprint(n))) {
			n++
		}
		f, err := startProfile(filepath.Join(dir, fmt.Sprint(n)))
		if err != nil {
			slog.Error("profile", "err", err)
			continue
		}
		running = f
	}
}

// exists reports whether path names something (a profile directory
// taken).
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func startProfile(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := writeProfile(filepath.Join(dir, "heap0.pprof"), "heap"); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	runtime.SetBlockProfileRate(1000) // a sample per µs blocked
	runtime.SetMutexProfileFraction(10)
	return f, nil
}

func stopProfile(cpu *os.File) error {
	pprof.StopCPUProfile()
	errs := []error{cpu.Close()}
	dir := filepath.Dir(cpu.Name())
	for _, name := range []string{"block", "mutex", "heap"} {
		errs = append(errs, writeProfile(filepath.Join(dir, name+".pprof"), name))
	}
	runtime.SetBlockProfileRate(0)
	runtime.SetMutexProfileFraction(0)
	return errors.Join(errs...)
}

// writeProfile writes the runtime's profile name into path.
func writeProfile(path, name string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(pprof.Lookup(name).WriteTo(f, 0), f.Close())
}
