package deploytest

import (
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	yamlv3 "go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/cometsync/cometsync/internal/config"
)

// The image's non-root user and group (Dockerfile: USER 65532:65532).
const imageUID = 65532

// secretEnv are the variables every cometsync container takes from the
// Secret: the config refers to them as ${NAME}.
var secretEnv = []string{"SOURCE_DSN", "COMETCHAT_API_KEY", "COMETCHAT_APP_ID"}

// syncConfig is the ConfigMap's config.yaml as cometsync loads it.
type syncConfig struct {
	*config.Config
	raw string // before ${VAR} expansion
}

// loadSyncConfig loads the config.yaml of the ConfigMap named name in set
// with cometsync's own loader, after setting the Secret's variables to the
// template's placeholders (as the pod's environment would hold them).
func loadSyncConfig(t *testing.T, set []manifest, name, key string) syncConfig {
	t.Helper()
	cm, ok := find[*corev1.ConfigMap](set, name)
	if !ok {
		t.Fatalf("no ConfigMap %q", name)
	}
	raw, ok := cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %q has no key %q", name, key)
	}
	secret := only[*corev1.Secret](t, set)
	for k, v := range secret.StringData {
		t.Setenv(k, v)
	}
	cfg, err := config.Parse([]byte(raw))
	if err != nil {
		t.Fatalf("ConfigMap %s, %s: %v", name, key, err)
	}
	return syncConfig{Config: cfg, raw: raw}
}

// listenPort is the port of http.listen: the probes and the scrape use it.
func (c syncConfig) listenPort(t *testing.T) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(c.HTTP.Listen)
	if err != nil {
		t.Fatalf("http.listen %q: %v", c.HTTP.Listen, err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		t.Fatalf("http.listen %q: %v", c.HTTP.Listen, err)
	}
	return int32(n)
}

// TestConfigMap loads the ConfigMap's config.yaml with cometsync's loader
// (config.Parse: defaults, ${VAR} expansion, strict decode, Validate) and
// checks what a cluster needs of it: secrets from the environment, the state
// on the volume, JSON logs.
func TestConfigMap(t *testing.T) {
	set := build(t, kubeDir+"/base")
	cm := only[*corev1.ConfigMap](t, set)
	if len(cm.Data) == 0 {
		t.Fatal("the ConfigMap holds no config")
	}
	for key := range cm.Data {
		t.Run(key, func(t *testing.T) {
			cfg := loadSyncConfig(t, set, cm.Name, key)
			secret := only[*corev1.Secret](t, set)
			for field, got := range map[string]string{
				"SOURCE_DSN":        cfg.Source.DSN,
				"COMETCHAT_API_KEY": cfg.CometChat.APIKey,
				"COMETCHAT_APP_ID":  cfg.CometChat.AppID,
			} {
				if want := secret.StringData[field]; got != want {
					t.Errorf("the value meant to come from $%s is %q, want %q: write ${%s} in the config", field, got, want, field)
				}
			}
			if got := path.Dir(cfg.State.Path); got != "/var/lib/cometsync" {
				t.Errorf("state.path %q: want it on the volume, in /var/lib/cometsync", cfg.State.Path)
			}
			if cfg.Log.Format != "json" {
				t.Errorf("log.format %q: want json, for the cluster's log collector", cfg.Log.Format)
			}
			if cfg.Source.Driver != "mysql" {
				t.Errorf("source.driver %q: the example is for MySQL", cfg.Source.Driver)
			}
			if p := cfg.listenPort(t); p != 9464 {
				t.Errorf("http.listen %q: the manifests and the image use port 9464", cfg.HTTP.Listen)
			}
			// Complete: every key of config.example.yaml is set, so that
			// a new setting is considered for clusters too.
			have := yamlKeys(t, []byte(cfg.raw))
			for _, k := range yamlKeys(t, readRepoFile(t, "config.example.yaml")) {
				if !slices.Contains(have, k) {
					t.Errorf("%s is in config.example.yaml but not in the ConfigMap", k)
				}
			}
		})
	}
}

// yamlKeys returns the dotted path of every key of a YAML mapping.
func yamlKeys(t *testing.T, data []byte) []string {
	t.Helper()
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(n *yamlv3.Node, prefix string)
	walk = func(n *yamlv3.Node, prefix string) {
		if n.Kind == yamlv3.DocumentNode {
			for _, c := range n.Content {
				walk(c, prefix)
			}
			return
		}
		if n.Kind != yamlv3.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := prefix + n.Content[i].Value
			keys = append(keys, k)
			walk(n.Content[i+1], k+".")
		}
	}
	walk(&root, "")
	return keys
}

// TestSecretTemplate checks the Secret is an obvious template that
// kustomize never applies over the real one, and that it holds every key the
// pods take from it.
func TestSecretTemplate(t *testing.T) {
	set := build(t, kubeDir+"/base")
	s := only[*corev1.Secret](t, set)
	var file string
	for _, m := range set {
		if m.obj == s {
			file = m.file
		}
	}
	if !strings.HasSuffix(file, ".example.yaml") {
		t.Errorf("the Secret is in %s: name its file *.example.yaml, it is a template", file)
	}
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("type %q, want Opaque", s.Type)
	}
	if got := s.Annotations["config.kubernetes.io/local-config"]; got != "true" {
		t.Errorf(`annotation config.kubernetes.io/local-config is %q, want "true": without it kubectl apply -k overwrites the real Secret with placeholders`, got)
	}
	if len(s.Data) != 0 {
		t.Error("the template has data: use stringData with placeholders")
	}
	for _, k := range secretEnv {
		v, ok := s.StringData[k]
		if !ok {
			t.Errorf("stringData has no %s", k)
		} else if !strings.Contains(v, "CHANGE-ME") {
			t.Errorf("stringData.%s does not look like a placeholder (want CHANGE-ME in it)", k)
		}
	}
}

// TestPersistentVolumeClaim checks the state volume.
func TestPersistentVolumeClaim(t *testing.T) {
	pvc := only[*corev1.PersistentVolumeClaim](t, build(t, kubeDir+"/base"))
	if !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("accessModes %v, want [ReadWriteOnce]: one process owns the state", pvc.Spec.AccessModes)
	}
	size, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok || size.Cmp(resource.MustParse("1Gi")) < 0 {
		t.Errorf("storage request %v, want at least 1Gi", size.String())
	}
}

// workload is a pod template found in a manifest.
type workload struct {
	file string
	name string
	pod  corev1.PodTemplateSpec
}

// workloads returns the pod template of every CronJob, Deployment and Job
// under deploy/kubernetes.
func workloads(t *testing.T) []workload {
	t.Helper()
	files, _ := kubeFiles(t)
	var out []workload
	for _, f := range files {
		if path.Base(f) == kustomizationFile || !isYAML(f) {
			continue
		}
		for _, m := range loadManifests(t, f) {
			w := workload{file: f, name: m.kind() + "/" + m.name()}
			switch o := m.obj.(type) {
			case *batchv1.CronJob:
				w.pod = o.Spec.JobTemplate.Spec.Template
			case *appsv1.Deployment:
				w.pod = o.Spec.Template
			case *batchv1.Job:
				w.pod = o.Spec.Template
			default:
				continue
			}
			out = append(out, w)
		}
	}
	return out
}

// TestPods checks every pod that runs cometsync: hardened, sized, given its
// secrets, its config, its state and a /tmp, and given time to stop.
func TestPods(t *testing.T) {
	ws := workloads(t)
	if len(ws) != 3 {
		t.Errorf("found %d workloads, want 3 (the CronJob, the Deployment and the resync Job)", len(ws))
	}
	images := map[string][]string{}
	for _, w := range ws {
		t.Run(w.name, func(t *testing.T) {
			c := checkPod(t, applySet(t, w.file), w.pod.Spec)
			images[c.Image] = append(images[c.Image], w.name)
		})
	}
	if len(images) > 1 {
		t.Errorf("the workloads run different images: %v", images)
	}
}

// checkPod checks a pod spec against the objects it is applied with and
// returns its container.
func checkPod(t *testing.T, set []manifest, ps corev1.PodSpec) corev1.Container {
	t.Helper()
	if len(ps.Containers) != 1 || len(ps.InitContainers) != 0 {
		t.Fatalf("want one container, found %d (and %d init containers)", len(ps.Containers), len(ps.InitContainers))
	}
	c := ps.Containers[0]
	if c.Image == "" {
		t.Error("no image")
	}

	// Pod security: the image's user, no service account token (cometsync
	// never calls the Kubernetes API), the runtime's seccomp profile.
	sc := ps.SecurityContext
	if sc == nil {
		t.Fatal("no pod securityContext")
	}
	if !isTrue(sc.RunAsNonRoot) {
		t.Error("securityContext.runAsNonRoot is not true")
	}
	for field, v := range map[string]*int64{"runAsUser": sc.RunAsUser, "runAsGroup": sc.RunAsGroup, "fsGroup": sc.FSGroup} {
		if v == nil || *v != imageUID {
			t.Errorf("securityContext.%s is %v, want %d (the image's user; fsGroup makes the volume writable)", field, deref(v), imageUID)
		}
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("securityContext.seccompProfile.type is not RuntimeDefault")
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not false")
	}

	csc := c.SecurityContext
	if csc == nil {
		t.Fatal("no container securityContext")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Error("container allowPrivilegeEscalation is not false")
	}
	if !isTrue(csc.ReadOnlyRootFilesystem) {
		t.Error("container readOnlyRootFilesystem is not true")
	}
	if csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Error(`container capabilities.drop is not ["ALL"]`)
	}
	if csc.Privileged != nil && *csc.Privileged {
		t.Error("container is privileged")
	}

	// Resources: requested, limited, and the request within the limit.
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		limit, okLimit := c.Resources.Limits[r]
		if !okReq || req.IsZero() {
			t.Errorf("no %s request", r)
		}
		if !okLimit || limit.IsZero() {
			t.Errorf("no %s limit", r)
		}
		if okReq && okLimit && req.Cmp(limit) > 0 {
			t.Errorf("%s request %s is over the limit %s", r, req.String(), limit.String())
		}
	}

	// The config, found through --config, the mount and the ConfigMap.
	configPath := flagValue(c.Args, "--config")
	if configPath == "" {
		t.Fatalf("args %q have no --config", c.Args)
	}
	m, v := mountHolding(t, c, ps, configPath)
	if v.ConfigMap == nil {
		t.Fatalf("--config %s is on volume %q, which is not a ConfigMap", configPath, v.Name)
	}
	if !m.ReadOnly {
		t.Errorf("the config mount %s is not readOnly", m.MountPath)
	}
	key := strings.TrimPrefix(configPath, m.MountPath+"/")
	if m.SubPath != "" {
		key = m.SubPath
	}
	if len(v.ConfigMap.Items) > 0 {
		k := ""
		for _, it := range v.ConfigMap.Items {
			if it.Path == key {
				k = it.Key
			}
		}
		if k == "" {
			t.Fatalf("volume %q projects no item to %q: --config %s is not there", v.Name, key, configPath)
		}
		key = k
	}
	cfg := loadSyncConfig(t, set, v.ConfigMap.Name, key)

	// Secrets: from the Secret, by keys it has; and every ${VAR} of the
	// config is in the environment.
	secret := only[*corev1.Secret](t, set)
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("env %s is set twice", e.Name)
		}
		env[e.Name] = e
	}
	for _, name := range secretEnv {
		e, ok := env[name]
		switch {
		case !ok:
			t.Errorf("env %s is not set", name)
		case e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil:
			t.Errorf("env %s does not come from a secretKeyRef", name)
		case e.ValueFrom.SecretKeyRef.Name != secret.Name:
			t.Errorf("env %s comes from Secret %q, want %q", name, e.ValueFrom.SecretKeyRef.Name, secret.Name)
		case e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional:
			t.Errorf("env %s is optional: a missing key would start cometsync without it", name)
		default:
			if _, ok := secret.StringData[e.ValueFrom.SecretKeyRef.Key]; !ok {
				t.Errorf("env %s refers to key %q, which Secret %s does not have", name, e.ValueFrom.SecretKeyRef.Key, secret.Name)
			}
		}
	}
	for _, ref := range configVarRef.FindAllStringSubmatch(cfg.raw, -1) {
		if _, ok := env[ref[1]]; !ok {
			t.Errorf("the config refers to ${%s}, which the container's env does not set", ref[1])
		}
	}

	// The state on the claim, writable.
	m, v = mountHolding(t, c, ps, cfg.State.Path)
	if v.PersistentVolumeClaim == nil {
		t.Errorf("state.path %s is on volume %q, which is not a PersistentVolumeClaim", cfg.State.Path, v.Name)
	} else if _, ok := find[*corev1.PersistentVolumeClaim](set, v.PersistentVolumeClaim.ClaimName); !ok {
		t.Errorf("volume %q claims %q, which is not applied with this workload", v.Name, v.PersistentVolumeClaim.ClaimName)
	}
	if m.ReadOnly || v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ReadOnly {
		t.Errorf("the state mount %s is read-only", m.MountPath)
	}

	// /tmp: the root file system is read-only, and a dry run before the
	// first pass writes a throwaway state under the temporary directory.
	m, v = mountHolding(t, c, ps, "/tmp/x")
	if m.MountPath != "/tmp" || v.EmptyDir == nil {
		t.Errorf("/tmp is not an emptyDir (mount %s, volume %q)", m.MountPath, v.Name)
	}

	// Every mount has its volume and every volume is mounted.
	mounted := map[string]bool{}
	for _, vm := range c.VolumeMounts {
		mounted[vm.Name] = true
		if !slices.ContainsFunc(ps.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name }) {
			t.Errorf("mount %s: no volume %q", vm.MountPath, vm.Name)
		}
	}
	for _, v := range ps.Volumes {
		if !mounted[v.Name] {
			t.Errorf("volume %q is not mounted", v.Name)
		}
	}

	// Time to stop: after SIGTERM cometsync lets the requests in flight
	// finish for up to shutdown_timeout, then records them; `run` gives its
	// pass 5s more and its HTTP server 5s, `once` up to 10s to push its
	// metrics. The kill must come after all that.
	grace := ps.TerminationGracePeriodSeconds
	if need := cfg.ShutdownTimeout.Duration() + 10*time.Second; grace == nil || time.Duration(*grace)*time.Second < need {
		t.Errorf("terminationGracePeriodSeconds %v is less than shutdown_timeout %s + 10s", deref(grace), cfg.ShutdownTimeout)
	}
	return c
}

// configVarRef is a ${NAME} reference in the config.
var configVarRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// mountHolding returns the container's mount that holds file (the deepest
// mountPath above it) and its volume.
func mountHolding(t *testing.T, c corev1.Container, ps corev1.PodSpec, file string) (corev1.VolumeMount, corev1.Volume) {
	t.Helper()
	var best corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") && len(m.MountPath) > len(best.MountPath) {
			best = m
		}
	}
	if best.Name == "" {
		t.Fatalf("no volume is mounted at %s or above it", file)
	}
	for _, v := range ps.Volumes {
		if v.Name == best.Name {
			return best, v
		}
	}
	t.Fatalf("mount %s: no volume %q", best.MountPath, best.Name)
	return best, corev1.Volume{}
}

// flagValue returns the value of flag in args ("--flag value" or
// "--flag=value"), or "".
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

func isTrue(b *bool) bool { return b != nil && *b }

func deref[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}

// TestCronJob checks the CronJob overlay: one pass every five minutes, never
// two at once, and failures that are retried a bounded number of times.
func TestCronJob(t *testing.T) {
	set := build(t, kubeDir+"/cronjob")
	cj := only[*batchv1.CronJob](t, set)
	if n := len(objectsOf[*appsv1.Deployment](set)); n != 0 {
		t.Errorf("the CronJob overlay also has %d Deployments: both would use one state", n)
	}
	s := cj.Spec
	sched, err := cron.ParseStandard(s.Schedule)
	if err != nil {
		t.Errorf("schedule %q: %v", s.Schedule, err)
	} else {
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		next := sched.Next(t0)
		if every := sched.Next(next).Sub(next); every != 5*time.Minute {
			t.Errorf("schedule %q runs every %s, want 5m (the alerts assume it)", s.Schedule, every)
		}
	}
	if s.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy %q, want Forbid: two passes cannot share the state", s.ConcurrencyPolicy)
	}
	if d := s.StartingDeadlineSeconds; d == nil || *d < 10 || *d > 300 {
		t.Errorf("startingDeadlineSeconds %v, want 10..300: late runs are skipped, not started in a burst", deref(d))
	}
	if s.SuccessfulJobsHistoryLimit == nil || s.FailedJobsHistoryLimit == nil {
		t.Error("successfulJobsHistoryLimit and failedJobsHistoryLimit are not both set")
	}
	if s.Suspend != nil && *s.Suspend {
		t.Error("the CronJob is suspended")
	}
	j := s.JobTemplate.Spec
	if b := j.BackoffLimit; b == nil || *b < 1 || *b > 3 {
		t.Errorf("backoffLimit %v, want 1..3: a failed pass is retried, a few times", deref(b))
	}
	if d := j.ActiveDeadlineSeconds; d == nil || *d <= 0 {
		t.Errorf("activeDeadlineSeconds %v: a hung pass must end", deref(d))
	}
	if !failsJobOnExitCode(j.PodFailurePolicy, 2) {
		t.Error("podFailurePolicy does not fail the Job on exit code 2 (bad config): retries cannot help it")
	}
	pod := j.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q, want Never", pod.RestartPolicy)
	}
	c := checkPod(t, set, pod)
	if len(c.Args) == 0 || c.Args[0] != "once" {
		t.Errorf("args %q: want the once subcommand", c.Args)
	}
	for _, a := range c.Args {
		if a == "--resync" || a == "--dry-run" {
			t.Errorf("args %q: %s does not belong in the schedule", c.Args, a)
		}
	}
}

// failsJobOnExitCode tells whether p fails the Job at once when the
// cometsync container exits with code.
func failsJobOnExitCode(p *batchv1.PodFailurePolicy, code int32) bool {
	if p == nil {
		return false
	}
	for _, r := range p.Rules {
		ec := r.OnExitCodes
		if r.Action == batchv1.PodFailurePolicyActionFailJob && ec != nil &&
			ec.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && slices.Contains(ec.Values, code) {
			return true
		}
	}
	return false
}

// TestDeployment checks the daemon overlay: exactly one pod, replaced (not
// rolled) on update, probed, and scraped.
func TestDeployment(t *testing.T) {
	set := build(t, kubeDir+"/daemon")
	d := only[*appsv1.Deployment](t, set)
	if n := len(objectsOf[*batchv1.CronJob](set)); n != 0 {
		t.Errorf("the daemon overlay also has %d CronJobs: both would use one state", n)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1: one process per state", deref(d.Spec.Replicas))
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %q, want Recreate: a rolling update would start a second pod on the ReadWriteOnce volume", d.Spec.Strategy.Type)
	}
	tmpl := d.Spec.Template
	sel := d.Spec.Selector
	if sel == nil || len(sel.MatchLabels) == 0 || !labels.SelectorFromSet(sel.MatchLabels).Matches(labels.Set(tmpl.Labels)) {
		t.Errorf("selector %v does not select the template's labels %v", sel, tmpl.Labels)
	}
	c := checkPod(t, set, tmpl.Spec)
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Errorf("args %q: want the run subcommand", c.Args)
	}
	cfg := loadSyncConfig(t, set, only[*corev1.ConfigMap](t, set).Name, "config.yaml")
	port := cfg.listenPort(t)

	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
		switch {
		case p.probe == nil || p.probe.HTTPGet == nil:
			t.Errorf("no %s httpGet", p.name)
		case p.probe.HTTPGet.Path != p.path:
			t.Errorf("%s path %q, want %s", p.name, p.probe.HTTPGet.Path, p.path)
		case containerPort(c, p.probe.HTTPGet.Port) != port:
			t.Errorf("%s port %s, want http.listen's %d", p.name, p.probe.HTTPGet.Port.String(), port)
		}
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == port }) {
		t.Errorf("the container does not declare port %d", port)
	}

	want := map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   strconv.Itoa(int(port)),
		"prometheus.io/path":   "/metrics",
	}
	for k, v := range want {
		if got := tmpl.Annotations[k]; got != v {
			t.Errorf("pod annotation %s is %q, want %q", k, got, v)
		}
	}

	svc := only[*corev1.Service](t, set)
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(tmpl.Labels)) {
		t.Errorf("Service %s selector %v does not select the pods %v", svc.Name, svc.Spec.Selector, tmpl.Labels)
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
		if p.TargetPort == (intstr.IntOrString{}) {
			return p.Port == port // no targetPort: the same as port
		}
		return containerPort(c, p.TargetPort) == port
	}) {
		t.Errorf("Service %s has no port to the metrics port %d", svc.Name, port)
	}
}

// containerPort resolves a probe's or a Service's port (a number or a
// container port's name) to a number.
func containerPort(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

// TestResyncJob checks the one-off resync Job, and that its file says to
// stop the CronJob or the Deployment first.
func TestResyncJob(t *testing.T) {
	const file = kubeDir + "/resync/resync-job.yaml"
	set := applySet(t, file)
	j := only[*batchv1.Job](t, set)
	c := checkPod(t, set, j.Spec.Template.Spec)
	if len(c.Args) == 0 || c.Args[0] != "once" || !slices.Contains(c.Args, "--resync") {
		t.Errorf("args %q: want once --resync", c.Args)
	}
	if rp := j.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q, want Never", rp)
	}
	text := string(readRepoFile(t, file))
	for _, want := range []string{`"suspend":true`, "kubectl scale deployment cometsync --replicas=0"} {
		if !strings.Contains(text, want) {
			t.Errorf("%s does not say %q: the CronJob and the Deployment share the state and must be stopped first", file, want)
		}
	}
}
