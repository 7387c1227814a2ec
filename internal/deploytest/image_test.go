package deploytest

import (
	"bytes"
	"context"
	"database/sql"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	_ "modernc.org/sqlite" // the "sqlite" driver, for the source database

	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
)

// buildInvocation is how the Dockerfile builds the binary; the test builds
// it with the same line.
const buildInvocation = `scripts/build-static.sh /out/cometsync "$VERSION"`

// caBundle is where Go's crypto/x509 looks for the roots on Debian-like
// systems, first; the image must have it there to reach CometChat.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

// dockerfile is the parsed Dockerfile with its build and final stages.
type dockerfile struct {
	stages       []dockerStage
	build, final dockerStage
}

func loadDockerfile(t *testing.T) dockerfile {
	t.Helper()
	stages, err := parseDockerfile(readRepoFile(t, "Dockerfile"))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(stages))
	}
	d := dockerfile{stages: stages, final: stages[len(stages)-1]}
	for _, s := range stages[:len(stages)-1] {
		if s.name == "build" {
			d.build = s
		}
	}
	if d.build.image == "" {
		t.Fatal("Dockerfile has no stage named build")
	}
	return d
}

// buildRun is the build stage's RUN line that builds the binary.
func (d dockerfile) buildRun(t *testing.T) dockerInstruction {
	t.Helper()
	for _, in := range d.build.all("RUN") {
		if strings.Contains(in.args, "scripts/build-static.sh") {
			if !strings.Contains(in.args, buildInvocation) {
				t.Fatalf("Dockerfile line %d: want %s, the build the test repeats", in.line, buildInvocation)
			}
			return in
		}
	}
	t.Fatalf("the build stage does not run %s", buildInvocation)
	return dockerInstruction{}
}

// registryHost reports whether an image reference names a registry host
// (a first path element with a dot or a port, or localhost).
func registryHost(ref string) bool {
	first, _, found := strings.Cut(ref, "/")
	return found && (strings.ContainsAny(first, ".:") || first == "localhost")
}

// goDirective is go.mod's go version, major.minor.
func goDirective(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(readRepoFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// TestDockerfile checks what the image must be: built with this module's Go,
// a scratch final stage holding the static binary and the CA bundle, run as
// a numeric non-root user, with the state volume writable by that user, and
// a default command matching the daemon's manifest.
func TestDockerfile(t *testing.T) {
	d := loadDockerfile(t)
	for _, s := range d.stages {
		if registryHost(s.image) {
			t.Errorf("FROM %s names a registry: keep images unqualified", s.image)
		}
	}
	if want := "golang:" + goDirective(t) + "-bookworm"; d.build.image != want {
		t.Errorf("the build stage is FROM %s, want %s (go.mod's Go)", d.build.image, want)
	}
	if d.final.image != "scratch" {
		t.Errorf("the final stage is FROM %s, want scratch", d.final.image)
	}

	// The build stage: VERSION is an ARG before the build line.
	run := d.buildRun(t)
	hasVersion := slices.ContainsFunc(d.build.all("ARG"), func(in dockerInstruction) bool {
		return in.line < run.line && (in.args == "VERSION" || strings.HasPrefix(in.args, "VERSION="))
	})
	if !hasVersion {
		t.Error("the build stage has no ARG VERSION before it builds")
	}

	// The final stage.
	copies := map[string]dockerCopy{} // by destination
	for _, in := range d.final.all("COPY") {
		c, err := parseCopy(in)
		if err != nil {
			t.Fatal(err)
		}
		copies[c.dest] = c
	}
	if c, ok := copies[caBundle]; !ok || c.from != "build" || !slices.Equal(c.srcs, []string{caBundle}) {
		t.Errorf("the final stage does not COPY --from=build %s %s", caBundle, caBundle)
	}
	if c, ok := copies["/cometsync"]; !ok || c.from != "build" || !slices.Equal(c.srcs, []string{"/out/cometsync"}) {
		t.Error("the final stage does not COPY --from=build /out/cometsync /cometsync")
	}

	users := d.final.all("USER")
	if len(users) != 1 || users[0].args != "65532:65532" {
		t.Errorf("USER %v, want one USER 65532:65532 (numeric: scratch has no /etc/passwd)", users)
	}

	vols := d.final.all("VOLUME")
	if len(vols) != 1 || vols[0].args != "/var/lib/cometsync" {
		t.Fatalf("VOLUME %v, want /var/lib/cometsync", vols)
	}
	if c, ok := copies["/var/lib/cometsync"]; !ok || c.chown != "65532:65532" {
		t.Error("the final stage does not COPY --chown=65532:65532 a directory to /var/lib/cometsync: a fresh volume would be root's")
	}

	ep := d.final.all("ENTRYPOINT")
	if len(ep) != 1 {
		t.Fatalf("%d ENTRYPOINTs, want 1", len(ep))
	}
	if argv, err := execForm(ep[0]); err != nil || !slices.Equal(argv, []string{"/cometsync"}) {
		t.Errorf(`ENTRYPOINT %s, want ["/cometsync"] (%v)`, ep[0].args, err)
	}
	cmds := d.final.all("CMD")
	if len(cmds) != 1 {
		t.Fatalf("%d CMDs, want 1", len(cmds))
	}
	cmd, err := execForm(cmds[0])
	if err != nil {
		t.Fatal(err)
	}
	// The image run bare does what the Deployment does.
	dep := only[*appsv1.Deployment](t, build(t, kubeDir+"/daemon"))
	if args := dep.Spec.Template.Spec.Containers[0].Args; !slices.Equal(cmd, args) {
		t.Errorf("CMD %q differs from the Deployment's args %q", cmd, args)
	}

	// The config's state directory and port are the image's.
	set := build(t, kubeDir+"/base")
	cfg := loadSyncConfig(t, set, only[*corev1.ConfigMap](t, set).Name, "config.yaml")
	if dir := path.Dir(cfg.State.Path); dir != vols[0].args {
		t.Errorf("the ConfigMap's state.path %s is not in the VOLUME %s", cfg.State.Path, vols[0].args)
	}
	if ex := d.final.all("EXPOSE"); len(ex) != 1 || ex[0].args != strconv.Itoa(int(cfg.listenPort(t))) {
		t.Errorf("EXPOSE %v, want the port of http.listen %q", ex, cfg.HTTP.Listen)
	}

	labels := d.final.all("LABEL")
	if !slices.ContainsFunc(labels, func(in dockerInstruction) bool {
		return strings.Contains(in.args, "org.opencontainers.image.version=")
	}) {
		t.Error("the final stage has no org.opencontainers.image.* labels")
	}
}

// TestDockerignore checks that the build context keeps what the build needs
// and leaves out the repository, the built binary and state files.
func TestDockerignore(t *testing.T) {
	ign, err := parseDockerignore(readRepoFile(t, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".git", ".git/HEAD", "cometsync", "cometsync-state.db", "x.db-wal",
		"internal/state/testdata/a.db", "sub/dir/s.db.lock", "bench-results/run.txt"} {
		if !ign.excluded(p) {
			t.Errorf("%s is sent to the build", p)
		}
	}
	keep := []string{"go.mod", "go.sum", "scripts/build-static.sh"}
	root := moduleRoot(t)
	for _, dir := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") {
				rel, _ := filepath.Rel(root, p)
				keep = append(keep, filepath.ToSlash(rel))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range keep {
		if ign.excluded(p) {
			t.Errorf("%s is left out of the build context", p)
		}
	}
}

// TestImage builds the binary as the Dockerfile does, from the build context
// the .dockerignore leaves, checks that it is static, then lays out the
// final stage in a directory (the binary, the CA bundle, /tmp, the state
// volume: nothing else, as in the scratch image) and runs the binary there
// in a chroot, as the image's user.
func TestImage(t *testing.T) {
	d := loadDockerfile(t)
	run := d.buildRun(t)
	root := moduleRoot(t)
	work := t.TempDir()

	// COPY . . : the context, less what .dockerignore leaves out.
	ign, err := parseDockerignore(readRepoFile(t, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(work, "src")
	copyContext(t, root, src, ign)

	// RUN, with the build stage's /out under the temporary directory.
	if strings.Count(run.args, "/out") != strings.Count(run.args, "/out/") {
		t.Fatalf("Dockerfile line %d: the test maps /out/... and cannot map a bare /out: %s", run.line, run.args)
	}
	out := filepath.Join(work, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	const version = "v0.0.0-deploytest"
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	buildCmd := exec.CommandContext(ctx, "sh", "-c", strings.ReplaceAll(run.args, "/out/", out+"/"))
	buildCmd.Dir = src
	buildCmd.Env = append(os.Environ(), "VERSION="+version, "PATH="+filepath.Dir(goTool(t))+string(os.PathListSeparator)+os.Getenv("PATH"))
	if b, err := buildCmd.CombinedOutput(); err != nil {
		t.Fatalf("RUN %s: %v\n%s", run.args, err, b)
	}
	bin := filepath.Join(out, "cometsync")

	t.Run("static", func(t *testing.T) {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary has a PT_INTERP program header: it needs a dynamic loader, which scratch lacks")
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			t.Fatal(err)
		}
		if len(libs) > 0 {
			t.Errorf("the binary needs shared libraries %v (DT_NEEDED): build it with CGO_ENABLED=0", libs)
		}
	})

	t.Run("chroot", func(t *testing.T) {
		if os.Geteuid() != 0 {
			if os.Getenv("CI") != "" {
				t.Fatal("running the image's layout in a chroot needs root, and CI runs as root: this check must not be skipped there")
			}
			t.Skip("running the image's layout in a chroot needs root; run the tests as root (CI does) to check it")
		}
		rootfs := filepath.Join(work, "rootfs")
		img := layOutImage(t, d, rootfs, out, src)
		if img.uid == 0 || img.gid == 0 {
			t.Fatalf("the image runs as %d:%d, want a non-root user and group", img.uid, img.gid)
		}

		got := runInImage(t, rootfs, img, "--version")
		if !strings.Contains(got, version) {
			t.Errorf("--version printed %q, want the stamped version %s", got, version)
		}
		got = runInImage(t, rootfs, img, "demo")
		if !strings.Contains(got, "cometsync demo") {
			t.Errorf("demo printed %q, want it to say cometsync demo", got)
		}
		// The state volume, as a fresh named volume starts: a copy of the
		// image's directory. The user must be able to write there.
		got = runInImage(t, rootfs, img, "demo", "--dir", "/var/lib/cometsync/demo")
		if !strings.Contains(got, "are in /var/lib/cometsync/demo") {
			t.Errorf("demo --dir /var/lib/cometsync/demo printed %q", got)
		}
		st, err := os.Stat(filepath.Join(rootfs, "var/lib/cometsync/demo/state.db"))
		if err != nil {
			t.Fatalf("demo --dir /var/lib/cometsync/demo left no state.db: %v", err)
		}
		if owner := st.Sys().(*syscall.Stat_t).Uid; owner != img.uid {
			t.Errorf("state.db belongs to uid %d, want %d", owner, img.uid)
		}

		t.Run("default command", func(t *testing.T) { checkDefaultCommand(t, d, rootfs, img) })
	})
}

// checkDefaultCommand runs the image as a cluster does: its CMD, with the
// ConfigMap's config.yaml at the path the CMD names, against a SQLite copy
// of the schema the config's queries read and a CometChat emulator. Three
// lines of the config change: the driver, the API's address and the listen
// address (a free loopback port). The daemon must become ready, serve
// every metric the dashboard uses, sync the rows of every stream, and exit 0 on SIGTERM
// within the Deployment's terminationGracePeriodSeconds.
func checkDefaultCommand(t *testing.T, d dockerfile, rootfs string, img imageConfig) {
	cmds := d.final.all("CMD")
	if len(cmds) != 1 {
		t.Fatalf("%d CMDs, want 1", len(cmds))
	}
	cmdArgs, err := execForm(cmds[0])
	if err != nil {
		t.Fatal(err)
	}
	configPath := flagValue(cmdArgs, "--config")
	if configPath == "" {
		t.Fatalf("CMD %q has no --config", cmdArgs)
	}

	emu := cometchattest.New(cometchattest.Config{APIKey: "deploytest-key"})
	api := httptest.NewServer(emu)
	defer api.Close()
	addr := freeLoopbackAddr(t)

	set := build(t, kubeDir+"/daemon")
	cm := only[*corev1.ConfigMap](t, set)
	cfg := cm.Data["config.yaml"]
	for _, r := range []struct{ old, new string }{
		{"driver: mysql", "driver: sqlite"},
		{`base_url: ""`, fmt.Sprintf("base_url: %q", api.URL)},
		{`listen: ":9464"`, fmt.Sprintf("listen: %q", addr)},
	} {
		if strings.Count(cfg, r.old) != 1 {
			t.Fatalf("the ConfigMap's config.yaml should hold %q once for this test to run it", r.old)
		}
		cfg = strings.Replace(cfg, r.old, r.new, 1)
	}
	cfgFile := filepath.Join(rootfs, filepath.FromSlash(configPath))
	if err := os.MkdirAll(filepath.Dir(cfgFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	const groups = 120
	createSourceDB(t, filepath.Join(rootfs, "tmp/source.db"), groups, int(img.uid), int(img.gid))

	argv := append(slices.Clone(img.entrypoint), cmdArgs...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = img.workdir
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/",
		"SOURCE_DSN=file:/tmp/source.db", "COMETCHAT_API_KEY=deploytest-key", "COMETCHAT_APP_ID=deploytest"}, img.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     rootfs,
		Credential: &syscall.Credential{Uid: img.uid, Gid: img.gid, Groups: []uint32{}},
	}
	var output lockedBuffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		t.Logf("chroot %s %s:\n%s", rootfs, strings.Join(argv, " "), output.String())
	}()

	// Ready: a pass has succeeded.
	base := "http://" + addr
	deadline := time.Now().Add(time.Minute)
	for {
		code, body, err := httpGet(base + "/readyz")
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("%s exited before it was ready: %v", strings.Join(argv, " "), err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not answer 200 within a minute: %d %q %v", code, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body, err := httpGet(base + "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz: %d %q %v", code, body, err)
	}
	_, body, err := httpGet(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for name, hist := range exportedMetrics {
		if binlogOnly[name] {
			continue // this daemon polls
		}
		if hist {
			name += "_bucket"
		}
		if !regexp.MustCompile(`(?m)^` + name + `[{ ]`).MatchString(body) {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if n := len(emu.Groups()); n != groups {
		t.Errorf("CometChat has %d groups after the first pass, want %d", n, groups)
	}
	if u, m := len(emu.Users()), len(emu.AllMembers()); u != sourceUsers || m != sourceMembers {
		t.Errorf("CometChat has %d users and %d memberships after the first pass, want %d and %d", u, m, sourceUsers, sourceMembers)
	}
	st, err := os.Stat(filepath.Join(rootfs, "var/lib/cometsync/state.db"))
	if err != nil {
		t.Errorf("no state at /var/lib/cometsync/state.db: %v", err)
	} else if owner := st.Sys().(*syscall.Stat_t).Uid; owner != img.uid {
		t.Errorf("state.db belongs to uid %d, want %d", owner, img.uid)
	}

	// Stopped as Kubernetes stops a pod: SIGTERM, then the kill after the
	// grace period.
	grace := only[*appsv1.Deployment](t, set).Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil {
		t.Fatal("the Deployment has no terminationGracePeriodSeconds")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(time.Duration(*grace) * time.Second):
		t.Errorf("still running %ds after SIGTERM: Kubernetes would kill it", *grace)
	}
}

// The sample createSourceDB writes besides its groups: users u1..u3, and
// u2 and u3 members of each of the first sourceMemberGroups groups.
const (
	sourceUsers        = 3
	sourceMemberGroups = 10
	sourceMembers      = 2 * sourceMemberGroups
)

// createSourceDB writes a SQLite database with the tables the ConfigMap's
// queries read, holding n groups, sourceUsers users and sourceMembers
// memberships last changed an hour ago, owned by uid:gid.
func createSourceDB(t *testing.T, file string, n, uid, gid int) {
	t.Helper()
	db, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hourAgo := time.Now().UTC().Add(-time.Hour)
	stamp := func(d time.Duration) string { return hourAgo.Add(d).Format("2006-01-02 15:04:05.000") }
	stmts := []string{
		`CREATE TABLE users (id INTEGER PRIMARY KEY, uid TEXT NOT NULL, display_name TEXT, avatar_url TEXT,
			created_at TEXT, last_seen_at TEXT, updated_at TEXT NOT NULL)`,
		`CREATE INDEX users_updated_at_id ON users (updated_at, id)`,
		`CREATE TABLE chat_groups (id INTEGER PRIMARY KEY, guid TEXT NOT NULL, title TEXT, kind TEXT,
			join_password TEXT, icon_url TEXT, created_at INTEGER, updated_at TEXT NOT NULL, meta TEXT,
			tags TEXT, owner_uid TEXT)`,
		`CREATE INDEX chat_groups_updated_at_id ON chat_groups (updated_at, id)`,
		`CREATE TABLE memberships (id INTEGER PRIMARY KEY, group_id INTEGER NOT NULL, user_uid TEXT NOT NULL,
			role TEXT, joined_at TEXT, updated_at TEXT NOT NULL)`,
		`CREATE INDEX memberships_updated_at_id ON memberships (updated_at, id)`,
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= sourceUsers; i++ {
		var avatar any
		if i == 1 {
			avatar = "https://example.com/u1.png"
		}
		if _, err := db.Exec(`INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)`, i, fmt.Sprintf("u%d", i), fmt.Sprintf("User %d", i),
			avatar, stamp(-time.Hour), stamp(0), stamp(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= n; i++ {
		var owner, pass any
		kind := []string{"public", "private", "password"}[i%3]
		if kind == "password" {
			pass = "secret"
		}
		if i%2 == 0 {
			owner = "u1"
		}
		_, err := db.Exec(`INSERT INTO chat_groups VALUES (?, ?, ?, ?, ?, NULL, ?, ?, '{"n": 1}', 'a,b', ?)`,
			i, fmt.Sprintf("g-%04d", i), fmt.Sprintf("Group %d", i), kind, pass, hourAgo.Unix(),
			stamp(time.Duration(i)*time.Second), owner)
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range sourceMembers {
		group, member, role := i/2+1, "u2", any(nil)
		if i%2 == 1 {
			member, role = "u3", "moderator"
		}
		if _, err := db.Exec(`INSERT INTO memberships VALUES (?, ?, ?, ?, ?, ?)`, i+1, group, member, role,
			stamp(time.Minute), stamp(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(file, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func httpGet(url string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// lockedBuffer is a bytes.Buffer that a process's output can be written to
// while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// goTool returns the go command the test's own toolchain provides.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go command on PATH or in GOROOT (%s): the image test builds the binary with it", runtime.GOROOT())
	}
	return p
}

// copyContext copies the module at root to dst as Docker sends it as the
// build context: without what ign excludes.
func copyContext(t *testing.T, root, dst string, ign dockerignore) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ign.excluded(rel) {
			if d.IsDir() && !ign.hasExclusions() {
				return filepath.SkipDir
			}
			if !d.IsDir() {
				return nil
			}
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			return copyFile(p, target, info.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy the build context: %v", err)
	}
}

func copyFile(src, dst string, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode&(fs.ModePerm|fs.ModeSticky|fs.ModeSetuid|fs.ModeSetgid))
}

// imageConfig is how the image runs a process.
type imageConfig struct {
	uid, gid   uint32
	entrypoint []string
	env        []string
	workdir    string
}

// layOutImage builds the final stage's file system in rootfs from its
// instructions: COPY --from=build takes the build stage's /out/... from out
// and its other files (the CA bundle) from this machine, which stands in for
// the build image (Debian, as golang:*-bookworm is); COPY without --from
// takes from the context. Instructions it cannot lay out fail the test, so
// that it grows with the Dockerfile.
func layOutImage(t *testing.T, d dockerfile, rootfs, out, context string) imageConfig {
	t.Helper()
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	img := imageConfig{workdir: "/"}
	for _, in := range d.final.instrs {
		switch in.cmd {
		case "COPY":
			c, err := parseCopy(in)
			if err != nil {
				t.Fatal(err)
			}
			uid, gid := -1, -1
			if c.chown != "" {
				u, g, err := numericUser(c.chown)
				if err != nil {
					t.Fatalf("line %d: --chown=%s: %v", in.line, c.chown, err)
				}
				uid, gid = int(u), int(g)
			}
			for _, s := range c.srcs {
				if strings.ContainsAny(s, "*?[") {
					t.Fatalf("line %d: COPY %s: wildcards are not laid out by this test", in.line, s)
				}
				var from string
				switch {
				case c.from == "":
					from = filepath.Join(context, filepath.FromSlash(s))
				case c.from != d.build.name:
					t.Fatalf("line %d: COPY --from=%s: only the build stage is laid out by this test", in.line, c.from)
				case strings.HasPrefix(s, "/out/"):
					from = filepath.Join(out, filepath.FromSlash(strings.TrimPrefix(s, "/out/")))
				default:
					from = s
				}
				dest := c.dest
				if strings.HasSuffix(dest, "/") || len(c.srcs) > 1 {
					dest = path.Join(dest, path.Base(s))
				}
				if err := copyTree(from, filepath.Join(rootfs, filepath.FromSlash(dest)), uid, gid); err != nil {
					t.Fatalf("line %d: COPY %s: %v", in.line, s, err)
				}
			}
		case "USER":
			u, g, err := numericUser(in.args)
			if err != nil {
				t.Fatalf("line %d: USER %s: %v (scratch has no /etc/passwd)", in.line, in.args, err)
			}
			img.uid, img.gid = u, g
		case "ENTRYPOINT":
			argv, err := execForm(in)
			if err != nil {
				t.Fatal(err)
			}
			img.entrypoint = argv
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				if !strings.Contains(kv, "=") || strings.ContainsAny(kv, `"'`) {
					t.Fatalf("line %d: ENV %s: only unquoted KEY=value pairs are read by this test", in.line, in.args)
				}
				img.env = append(img.env, kv)
			}
		case "WORKDIR":
			img.workdir = in.args
		case "VOLUME":
			// Docker creates a missing volume directory (as root).
			for _, v := range strings.Fields(in.args) {
				if err := os.MkdirAll(filepath.Join(rootfs, filepath.FromSlash(v)), 0o755); err != nil {
					t.Fatal(err)
				}
			}
		case "ARG", "LABEL", "EXPOSE", "CMD", "STOPSIGNAL":
			// Metadata: no file, and the test passes its own arguments.
		default:
			t.Fatalf("line %d: the test does not lay out %s in the final stage", in.line, in.cmd)
		}
	}
	if len(img.entrypoint) == 0 {
		t.Fatal("the final stage has no ENTRYPOINT")
	}
	return img
}

// numericUser parses USER's or --chown's uid[:gid]; a missing group is 0,
// as Docker makes it when there is no /etc/passwd to look one up in.
func numericUser(s string) (uid, gid uint32, err error) {
	u, g, hasGroup := strings.Cut(s, ":")
	un, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q is not numeric", u)
	}
	var gn uint64
	if hasGroup {
		if gn, err = strconv.ParseUint(g, 10, 32); err != nil {
			return 0, 0, fmt.Errorf("group %q is not numeric", g)
		}
	}
	return uint32(un), uint32(gn), nil
}

// copyTree copies a file, or a directory's contents, to dst as COPY does:
// modes kept, owned by uid:gid when they are not -1 (--chown; the
// destination directory too), else by root.
func copyTree(src, dst string, uid, gid int) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	owner := func(p string) error {
		if uid < 0 {
			return os.Lchown(p, 0, 0)
		}
		return os.Lchown(p, uid, gid)
	}
	if !st.IsDir() {
		if err := copyFile(src, dst, st.Mode()); err != nil {
			return err
		}
		return owner(dst)
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(target, info.Mode()&(fs.ModePerm|fs.ModeSticky|fs.ModeSetuid|fs.ModeSetgid)); err != nil {
				return err
			}
		} else if err := copyFile(p, target, info.Mode()); err != nil {
			return err
		}
		return owner(target)
	})
}

// runInImage runs the image's entrypoint with args in a chroot of rootfs as
// the image's user, with the environment a container gets, and returns its
// output; a failure or a non-zero exit fails the test.
func runInImage(t *testing.T, rootfs string, img imageConfig, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	argv := append(slices.Clone(img.entrypoint), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = img.workdir
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/"}, img.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     rootfs,
		Credential: &syscall.Credential{Uid: img.uid, Gid: img.gid, Groups: []uint32{}},
	}
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chroot %s %s (as %d:%d): %v\n%s", rootfs, strings.Join(argv, " "), img.uid, img.gid, err, b)
	}
	t.Logf("chroot %s %s (as %d:%d):\n%s", rootfs, strings.Join(argv, " "), img.uid, img.gid, b)
	return string(b)
}
