// Package deploytest checks what ships beside the code, so that `go test
// ./...` catches a deployment that would not work: the Kubernetes manifests
// under deploy/kubernetes (decoded strictly into their API types, their
// kustomizations, the hardening and the operational settings every pod needs,
// and the config they mount, loaded with cometsync's own loader), the Grafana
// dashboard and the Prometheus alerts (every metric they use exists), and the
// Dockerfile (the binary it builds is static and runs as its final stage lays
// it out: in a chroot holding only what the scratch image holds).
//
// The package has no code of its own; everything is in its tests.
package deploytest
