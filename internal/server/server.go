// Package server serves the daemon's HTTP endpoints: /healthz (the process
// is alive), /readyz (the sync is current) and /metrics (Prometheus).
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// ReadyFunc says whether the process is ready and, when not, why.
type ReadyFunc func() (ready bool, reason string)

// Server is the daemon's HTTP server. Start and Shutdown own its goroutine.
type Server struct {
	addr string
	srv  *http.Server
	log  *zap.Logger

	ln   net.Listener
	done sync.WaitGroup
}

// New builds a server for addr (host:port) that serves the registry's
// metrics and asks ready for /readyz.
func New(addr string, reg *prometheus.Registry, ready ReadyFunc, log *zap.Logger) *Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, reason := ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %s\n", reason)
			return
		}
		fmt.Fprintf(w, "ready: %s\n", reason)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return &Server{
		addr: addr,
		log:  log,
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
	}
}

// Start listens (failing at once if the address is taken) and serves in
// the background until Shutdown.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("http.listen %q: %w", s.addr, err)
	}
	s.ln = ln
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", zap.Error(err))
		}
	}()
	s.log.Info("serving /healthz, /readyz and /metrics", zap.String("addr", ln.Addr().String()))
	return nil
}

// Addr is the address the server listens on (useful with port 0).
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.addr
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting, lets requests in progress finish within ctx,
// and waits for the serving goroutine.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.done.Wait()
	return err
}
