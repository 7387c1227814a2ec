package deploytest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// kubeDir holds the Kubernetes manifests, relative to the module root.
const kubeDir = "deploy/kubernetes"

// kustomizationFile is the one name a kustomization may have here.
const kustomizationFile = "kustomization.yaml"

// manifestScheme knows the kinds a manifest may have, each with the one
// apiVersion that is current for it. Any other kind, or an old apiVersion
// (batch/v1beta1 CronJob), is an error.
func manifestScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	s.AddKnownTypes(corev1.SchemeGroupVersion,
		&corev1.ConfigMap{}, &corev1.Secret{}, &corev1.PersistentVolumeClaim{}, &corev1.Service{})
	s.AddKnownTypes(appsv1.SchemeGroupVersion, &appsv1.Deployment{})
	s.AddKnownTypes(batchv1.SchemeGroupVersion, &batchv1.CronJob{}, &batchv1.Job{})
	return s
}

// strictDecoder decodes a YAML document into the typed object its kind
// names, the way the API server's strict field validation does: an unknown
// field, a duplicate field or a field in the wrong case is an error. (A plain
// encoding/json decoder with DisallowUnknownFields matches field names
// without regard to case, so "ConcurrencyPolicy" would slip through it.)
var strictDecoder = func() runtime.Decoder {
	s := manifestScheme()
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, s, s,
		kjson.SerializerOptions{Yaml: true, Strict: true})
}()

// manifest is one object of a file under kubeDir.
type manifest struct {
	file string // slash-separated, from the module root
	obj  runtime.Object
}

func (m manifest) name() string { return m.obj.(metav1.Object).GetName() }

func (m manifest) kind() string { return reflect.TypeOf(m.obj).Elem().Name() }

// decodeManifests decodes every document of a YAML file strictly. A document
// holding only comments is skipped; a file without any object is an error.
func decodeManifests(data []byte) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []runtime.Object
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if j, err := yaml.YAMLToJSON(doc); err == nil && string(j) == "null" {
			continue // only comments
		}
		obj, _, err := strictDecoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		return nil, errors.New("no object in the file")
	}
	return objs, nil
}

// loadManifests decodes the file at rel (from the module root).
func loadManifests(tb testing.TB, rel string) []manifest {
	tb.Helper()
	objs, err := decodeManifests(readRepoFile(tb, rel))
	if err != nil {
		tb.Fatalf("%s: %v", rel, err)
	}
	ms := make([]manifest, len(objs))
	for i, o := range objs {
		ms[i] = manifest{file: rel, obj: o}
	}
	return ms
}

// kustomization is the part of a kustomization.yaml that this layout uses;
// anything else is an unknown field, so that a misspelled "resources" cannot
// silently leave a file out.
type kustomization struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Namespace  string      `json:"namespace,omitempty"`
	Resources  []string    `json:"resources"`
	Images     []kustImage `json:"images,omitempty"`
}

// kustImage is an entry of images, as `kustomize edit set image` writes it.
type kustImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

func loadKustomization(tb testing.TB, dir string) kustomization {
	tb.Helper()
	rel := path.Join(dir, kustomizationFile)
	var k kustomization
	if err := yaml.UnmarshalStrict(readRepoFile(tb, rel), &k); err != nil {
		tb.Fatalf("%s: %v", rel, err)
	}
	return k
}

func isDir(tb testing.TB, rel string) bool {
	tb.Helper()
	st, err := os.Stat(filepath.Join(moduleRoot(tb), filepath.FromSlash(rel)))
	return err == nil && st.IsDir()
}

func hasKustomization(tb testing.TB, dir string) bool {
	tb.Helper()
	_, err := os.Stat(filepath.Join(moduleRoot(tb), filepath.FromSlash(path.Join(dir, kustomizationFile))))
	return err == nil
}

// build collects the objects `kubectl apply -k dir` is made of, following
// resources into other kustomizations as kustomize does. Objects annotated
// config.kubernetes.io/local-config (which kustomize leaves out of what it
// applies) are kept, so that references to them can be checked.
func build(tb testing.TB, dir string) []manifest {
	tb.Helper()
	var out []manifest
	var visit func(dir string, seen []string)
	visit = func(dir string, seen []string) {
		if slices.Contains(seen, dir) {
			tb.Fatalf("kustomization cycle: %s", strings.Join(append(seen, dir), " -> "))
		}
		for _, r := range loadKustomization(tb, dir).Resources {
			p := path.Join(dir, r)
			if isDir(tb, p) {
				visit(p, append(seen, dir))
			} else {
				out = append(out, loadManifests(tb, p)...)
			}
		}
	}
	visit(dir, nil)
	ids := map[string]string{}
	for _, m := range out {
		id := m.kind() + "/" + m.name()
		if prev, dup := ids[id]; dup {
			tb.Fatalf("%s: %s is also in %s (kustomize refuses duplicate objects)", dir, id, prev)
		}
		ids[id] = m.file
	}
	return out
}

// applySet returns what a workload in file is applied together with: the
// kustomization of its directory, or, for a file outside any kustomization
// (the resync Job, created by hand), the base it runs against plus itself.
func applySet(tb testing.TB, file string) []manifest {
	tb.Helper()
	if dir := path.Dir(file); hasKustomization(tb, dir) {
		return build(tb, dir)
	}
	return append(build(tb, path.Join(kubeDir, "base")), loadManifests(tb, file)...)
}

// objectsOf returns the objects of type T in ms.
func objectsOf[T runtime.Object](ms []manifest) []T {
	var out []T
	for _, m := range ms {
		if o, ok := m.obj.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

// only returns the one object of type T in ms, failing when there is none
// or more than one.
func only[T runtime.Object](tb testing.TB, ms []manifest) T {
	tb.Helper()
	objs := objectsOf[T](ms)
	if len(objs) != 1 {
		var zero T
		tb.Fatalf("want exactly one %T, found %d", zero, len(objs))
	}
	return objs[0]
}

// find returns the object of type T named name in ms.
func find[T runtime.Object](ms []manifest, name string) (T, bool) {
	for _, o := range objectsOf[T](ms) {
		if any(o).(metav1.Object).GetName() == name {
			return o, true
		}
	}
	var zero T
	return zero, false
}

// kubeFiles returns every file under kubeDir, slash-separated from the module
// root, and the directories holding them.
func kubeFiles(tb testing.TB) (files []string, dirs map[string][]string) {
	tb.Helper()
	root := moduleRoot(tb)
	dirs = map[string][]string{}
	err := filepath.WalkDir(filepath.Join(root, kubeDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			dirs[rel] = nil
			return nil
		}
		files = append(files, rel)
		dirs[path.Dir(rel)] = append(dirs[path.Dir(rel)], path.Base(rel))
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return files, dirs
}

func isYAML(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// TestManifestsDecodeStrictly decodes every document of every YAML file
// under deploy/kubernetes into its typed API object: a misspelled field, a
// duplicate key or an unexpected kind would be applied wrongly (or dropped
// without a word by an older kubectl).
func TestManifestsDecodeStrictly(t *testing.T) {
	files, _ := kubeFiles(t)
	n := 0
	for _, f := range files {
		if path.Base(f) == kustomizationFile || !isYAML(f) {
			continue
		}
		n++
		t.Run(strings.TrimPrefix(f, kubeDir+"/"), func(t *testing.T) {
			objs, err := decodeManifests(readRepoFile(t, f))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if o.(metav1.Object).GetName() == "" {
					t.Errorf("a %T has no metadata.name", o)
				}
			}
		})
	}
	if n < 7 {
		t.Fatalf("found %d manifests under %s; the layout has at least 7", n, kubeDir)
	}
}

// TestStrictDecoderRejectsMistakes proves the strict decoding above can
// fail: each case breaks a real manifest the way a person editing it might.
func TestStrictDecoderRejectsMistakes(t *testing.T) {
	cronJob := string(readRepoFile(t, kubeDir+"/cronjob/cronjob.yaml"))
	deployment := string(readRepoFile(t, kubeDir+"/daemon/deployment.yaml"))
	tests := []struct {
		name, doc, old, new, wantErr string
	}{
		{"misspelled field", cronJob, "concurrencyPolicy:", "concurencyPolicy:", `unknown field "spec.concurencyPolicy"`},
		{"field in the wrong case", cronJob, "concurrencyPolicy:", "ConcurrencyPolicy:", `unknown field "spec.ConcurrencyPolicy"`},
		{"misspelled nested field", deployment, "readinessProbe:", "readinesProbe:", `unknown field "spec.template.spec.containers[0].readinesProbe"`},
		{"duplicate field", deployment, "  replicas: 1\n", "  replicas: 1\n  replicas: 2\n", `"replicas" already set in map`},
		{"unknown kind", deployment, "kind: Deployment", "kind: StatefulSet", `no kind "StatefulSet" is registered`},
		{"old apiVersion", cronJob, "apiVersion: batch/v1", "apiVersion: batch/v1beta1", `no kind "CronJob" is registered for version "batch/v1beta1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Count(tt.doc, tt.old) != 1 {
				t.Fatalf("the manifest should hold %q exactly once to be broken by this case", tt.old)
			}
			broken := strings.Replace(tt.doc, tt.old, tt.new, 1)
			_, err := decodeManifests([]byte(broken))
			if err == nil {
				t.Fatalf("decoded a manifest with %q in place of %q", tt.new, tt.old)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not say %q", err, tt.wantErr)
			}
		})
	}
}

// TestKustomizations checks every kustomization: every resource it lists
// exists (a directory holding a kustomization, or a file), and every file
// beside it is listed, so that nothing is silently left out of an apply.
func TestKustomizations(t *testing.T) {
	_, dirs := kubeFiles(t)
	var found []string
	for dir, names := range dirs {
		for _, n := range names {
			if strings.EqualFold(n, "kustomization.yml") || n == "Kustomization" {
				t.Errorf("%s/%s: name it %s", dir, n, kustomizationFile)
			}
		}
		if !slices.Contains(names, kustomizationFile) {
			continue
		}
		found = append(found, strings.TrimPrefix(dir, kubeDir+"/"))
		t.Run(strings.TrimPrefix(dir, kubeDir+"/"), func(t *testing.T) {
			k := loadKustomization(t, dir)
			if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
				t.Errorf("apiVersion %q, kind %q: want kustomize.config.k8s.io/v1beta1, Kustomization", k.APIVersion, k.Kind)
			}
			if len(k.Resources) == 0 {
				t.Error("lists no resources")
			}
			listed := map[string]bool{}
			for _, r := range k.Resources {
				p := path.Join(dir, r)
				switch {
				case listed[p]:
					t.Errorf("resource %q is listed twice", r)
				case strings.Contains(r, "://") || path.IsAbs(r):
					t.Errorf("resource %q: only paths inside the repository", r)
				case !strings.HasPrefix(p, kubeDir+"/"):
					t.Errorf("resource %q is outside %s", r, kubeDir)
				case isDir(t, p):
					if !hasKustomization(t, p) {
						t.Errorf("resource %q is a directory without a %s", r, kustomizationFile)
					}
				default:
					if _, err := os.Stat(filepath.Join(moduleRoot(t), filepath.FromSlash(p))); err != nil {
						t.Errorf("resource %q: %v", r, err)
					} else if !isYAML(p) {
						t.Errorf("resource %q is not a YAML file", r)
					}
				}
				listed[p] = true
			}
			for _, n := range names {
				if n != kustomizationFile && !listed[path.Join(dir, n)] {
					t.Errorf("%s is in the directory but not in its resources", n)
				}
			}
			build(t, dir) // every listed file decodes, and no object is there twice
		})
	}
	slices.Sort(found)
	if want := []string{"base", "cronjob", "daemon"}; !slices.Equal(found, want) {
		t.Errorf("kustomizations in %v, want %v", found, want)
	}
}
