package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/syncer"
)

// progress reports a long pass: a log line every 10 seconds, or, when
// stderr is a terminal, a progress bar redrawn a few times a second.
type progress struct {
	log   *zap.Logger
	w     io.Writer
	tty   bool
	every time.Duration

	mu    sync.Mutex
	drawn bool
}

func newProgress(log *zap.Logger, w io.Writer, tty bool) *progress {
	p := &progress{log: log, w: w, tty: tty, every: 10 * time.Second}
	if tty {
		p.every = 250 * time.Millisecond
	}
	return p
}

// report is the syncer's Progress callback, for the named stream.
func (p *progress) report(stream string, r syncer.Report) {
	done := int64(r.Read - r.Retried)
	elapsed := time.Since(r.StartedAt)
	rate := float64(r.Read) / max(elapsed.Seconds(), 0.001)
	var left int64 = -1
	var eta time.Duration = -1
	if r.ToGo >= 0 {
		left = max(r.ToGo-done, 0)
		if rate > 0 {
			eta = time.Duration(float64(left) / rate * float64(time.Second))
		}
	}
	if p.tty {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.drawn = true
		fmt.Fprintf(p.w, "\r%-8s %s", stream, bar(done, r.ToGo, rate, eta))
		return
	}
	fields := []zap.Field{zap.String("stream", stream), zap.Int64("rows_done", done), zap.Float64("rows_per_second", round1(rate)),
		zap.Int("imported", r.Imported), zap.Int("updated", r.Updated), zap.Int("unchanged", r.Unchanged),
		zap.Int("failed", r.Failed())}
	if left >= 0 {
		fields = append(fields, zap.Int64("rows_to_go", left))
	}
	if eta >= 0 {
		fields = append(fields, zap.Duration("eta", eta.Round(time.Second)))
	}
	p.log.Info("progress", fields...)
}

// done ends the bar's line.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

// bar draws "[=====>     ] 12345/100000 rows  2345 rows/s  ETA 37s".
func bar(done, total int64, rate float64, eta time.Duration) string {
	const width = 30
	if total <= 0 {
		return fmt.Sprintf("%d rows  %.0f rows/s", done, rate)
	}
	filled := int(min(float64(done)/float64(total), 1) * width)
	b := strings.Repeat("=", filled)
	if filled < width {
		b += ">" + strings.Repeat(" ", width-filled-1)
	}
	s := fmt.Sprintf("[%s] %d/%d rows  %.0f rows/s", b, done, total, rate)
	if eta >= 0 {
		s += fmt.Sprintf("  ETA %s ", eta.Round(time.Second))
	}
	return s
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
