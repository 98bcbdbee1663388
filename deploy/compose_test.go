package deploy

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/internal/devstack"
	"github.com/shepherd-release/shepherd/internal/observe"
	"github.com/shepherd-release/shepherd/worker"
	"github.com/shepherd-release/shepherd/workflows"
)

// No Docker engine runs where these tests run: docker-compose.yml is checked with compose-go, the loader
// Docker Compose itself uses, and by cross-checking it with the files it mounts and the configs that
// name its services.

// loadCompose loads docker-compose.yml with every profile enabled and no environment from the caller,
// so the test sees the whole file exactly as written.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(nil),
		cli.WithProfiles([]string{"*"}),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	if len(p.DisabledServices) > 0 {
		t.Fatalf("services left disabled with every profile on: %v", p.DisabledServiceNames())
	}
	return p
}

// pinned reports whether an image reference names a fixed version: a digest, or a tag other than
// latest that contains a digit (so "stable", "main" or "nonroot" do not count).
func pinned(ref string) (bool, string) {
	if _, digest, ok := strings.Cut(ref, "@"); ok {
		return strings.HasPrefix(digest, "sha256:"), "digest"
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	switch {
	case !ok || tag == "":
		return false, "no tag (means latest)"
	case tag == "latest":
		return false, "tag latest"
	case !strings.ContainsAny(tag, "0123456789"):
		return false, "tag " + tag + " is not a version"
	}
	return true, tag
}

func TestPinned(t *testing.T) {
	for ref, want := range map[string]bool{
		"postgres:16.4": true, "prom/prometheus:v3.5.0": true, "registry:5000/team/img:1.2": true,
		"temporalio/admin-tools:1.29.1-tctl-1.18.4-cli-1.5.0": true, "img@sha256:abc": true,
		"postgres": false, "postgres:latest": false, "registry:5000/img": false, "gcr.io/distroless/static:nonroot": false,
	} {
		if got, why := pinned(ref); got != want {
			t.Errorf("pinned(%q) = %v (%s), want %v", ref, got, why, want)
		}
	}
}

func TestComposeImagesPinned(t *testing.T) {
	p := loadCompose(t)
	built := map[string]bool{}
	for _, s := range p.Services {
		if s.Build != nil && s.Image != "" {
			built[s.Image] = true
		}
	}
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		switch {
		case s.Image == "" && s.Build == nil:
			t.Errorf("service %s has neither image nor build", name)
		case s.Image == "":
			// built here, untagged
		case built[s.Image]:
			if ok, why := pinned(s.Image); !ok && why == "tag latest" {
				t.Errorf("service %s tags its build %q: latest is ambiguous", name, s.Image)
			}
		default:
			if ok, why := pinned(s.Image); !ok {
				t.Errorf("service %s: image %q is not pinned (%s)", name, s.Image, why)
			}
		}
	}
}

func TestComposeBindMountsExist(t *testing.T) {
	p := loadCompose(t)
	root, _ := filepath.Abs(repoRoot)
	binds := 0
	for _, name := range p.ServiceNames() {
		for _, v := range p.Services[name].Volumes {
			if v.Type != types.VolumeTypeBind {
				if _, ok := p.Volumes[v.Source]; v.Type == types.VolumeTypeVolume && !ok {
					t.Errorf("service %s mounts volume %q, which is not declared", name, v.Source)
				}
				continue
			}
			binds++
			rel, err := filepath.Rel(root, v.Source)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("service %s bind-mounts %s, outside the repository", name, v.Source)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s bind-mounts %s, which does not exist: %v", name, rel, err)
			}
		}
	}
	if binds == 0 {
		t.Error("no bind mounts found: the Prometheus and Grafana configuration should be mounted")
	}
}

func TestComposePortsUnique(t *testing.T) {
	p := loadCompose(t)
	seen := map[string]string{}
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		if strings.HasPrefix(s.NetworkMode, types.NetworkModeServicePrefix) && len(s.Ports) > 0 {
			t.Errorf("service %s shares another service's network and cannot publish ports", name)
		}
		for _, port := range s.Ports {
			if port.Published == "" {
				continue
			}
			key := fmt.Sprintf("%s:%s/%s", port.HostIP, port.Published, cmpOr(port.Protocol, "tcp"))
			if other, dup := seen[key]; dup {
				t.Errorf("host port %s is published by both %s and %s", key, other, name)
			}
			seen[key] = name
		}
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestComposeReferencesExist(t *testing.T) {
	p := loadCompose(t)
	names := p.ServiceNames()
	for _, name := range names {
		s := p.Services[name]
		for dep := range s.DependsOn {
			if !slices.Contains(names, dep) {
				t.Errorf("service %s depends on %q, which is not a service", name, dep)
			}
		}
		if target, ok := strings.CutPrefix(s.NetworkMode, types.NetworkModeServicePrefix); ok && !slices.Contains(names, target) {
			t.Errorf("service %s shares the network of %q, which is not a service", name, target)
		}
	}
}

// hostnames are the names a container reaches another by: service names and network aliases.
func hostnames(p *types.Project) map[string]string {
	out := map[string]string{}
	for _, name := range p.ServiceNames() {
		out[name] = name
		for _, n := range p.Services[name].Networks {
			if n == nil {
				continue
			}
			for _, a := range n.Aliases {
				out[a] = name
			}
		}
	}
	return out
}

// The stack's wiring: Prometheus scrapes services that exist, Grafana queries the Prometheus service,
// the worker dials the Temporal service and serves metrics where Prometheus scrapes them.
func TestComposeWiring(t *testing.T) {
	p := loadCompose(t)
	hosts := hostnames(p)

	var prom struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	readYAML(t, repoPath("deploy", "prometheus", "prometheus.yml"), &prom)
	jobs := map[string][]string{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				jobs[sc.JobName] = append(jobs[sc.JobName], target)
				host, _, _ := strings.Cut(target, ":")
				if host != "localhost" && hosts[host] == "" {
					t.Errorf("prometheus.yml job %s scrapes %s: no compose service or alias is called %q", sc.JobName, target, host)
				}
			}
		}
	}
	_, metricsPort, _ := strings.Cut(observe.DefaultAddr, ":")
	if want := "shepherd-worker:" + metricsPort; !slices.Contains(jobs["shepherd-worker"], want) {
		t.Errorf("prometheus.yml job shepherd-worker scrapes %v, want %s (the alert rules select this job)", jobs["shepherd-worker"], want)
	}
	if !slices.Contains(prom.RuleFiles, "alerts.yml") {
		t.Errorf("prometheus.yml rule_files %v does not load alerts.yml", prom.RuleFiles)
	}

	var ds struct {
		Datasources []struct {
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"datasources"`
	}
	readYAML(t, repoPath("deploy", "grafana", "provisioning", "datasources", "prometheus.yml"), &ds)
	if len(ds.Datasources) == 0 {
		t.Fatal("no Grafana datasource provisioned")
	}
	for _, d := range ds.Datasources {
		u, err := url.Parse(d.URL)
		if err != nil || hosts[u.Hostname()] != "prometheus" {
			t.Errorf("Grafana datasource %s URL %q does not point at the prometheus service", d.Type, d.URL)
		}
	}

	w, err := p.GetService("shepherd-worker")
	if err != nil {
		t.Fatal(err)
	}
	addr := ""
	if v := w.Environment["TEMPORAL_ADDRESS"]; v != nil {
		addr = *v
	}
	if host, _, _ := strings.Cut(addr, ":"); hosts[host] != "temporal" {
		t.Errorf("shepherd-worker TEMPORAL_ADDRESS = %q, want the temporal service (empty silently means localhost)", addr)
	}
	if dep, ok := w.DependsOn["search-attributes"]; !ok || dep.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Error("shepherd-worker must wait for search-attributes to complete: an unknown attribute stalls releases")
	}

	// The worker's configuration is mounted where SHEPHERD_CONFIG says, valid, and its providers name
	// compose services.
	cfgPath := ""
	if v := w.Environment["SHEPHERD_CONFIG"]; v != nil {
		cfgPath = *v
	}
	var source string
	for _, v := range w.Volumes {
		if v.Target == cfgPath {
			source = v.Source
		}
	}
	if cfgPath == "" || source == "" {
		t.Fatalf("shepherd-worker: SHEPHERD_CONFIG %q is not a mounted file (volumes %v)", cfgPath, w.Volumes)
	}
	cfg, err := config.Load(source)
	if err != nil {
		t.Fatal(err)
	}
	built, err := worker.Build(cfg, worker.BuildOptions{CheckSecrets: true})
	if err != nil {
		t.Fatalf("the compose worker configuration: %v", err)
	}
	for section, descs := range built.Descriptions {
		for name, d := range descs {
			for _, word := range strings.Fields(d.Summary) {
				u, err := url.Parse(strings.Trim(word, "`,()"))
				if err == nil && u.Host != "" && hosts[u.Hostname()] == "" {
					t.Errorf("%s.%s points at %s, which is no compose service", section, name, u.Host)
				}
			}
		}
	}
}

// The one-shot container registers every search attribute the workflow upserts, with its type.
func TestComposeCreatesSearchAttributes(t *testing.T) {
	p := loadCompose(t)
	s, err := p.GetService("search-attributes")
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Join(append(s.Entrypoint, s.Command...), " ")
	script = strings.ReplaceAll(script, "\\\n", " ")
	creates := regexp.MustCompile(`temporal operator search-attribute create([^\n]*)`).FindAllStringSubmatch(script, -1)
	if len(creates) == 0 {
		t.Fatal("search-attributes runs no `temporal operator search-attribute create`")
	}
	registered := map[string]string{}
	for _, c := range creates {
		// Checked against a dev server (CLI 1.5.1): with one --type and several --name the CLI creates only
		// the first name and still succeeds; so every call must pair each --name with its own --type.
		names := regexp.MustCompile(`--name[ =](\w+)`).FindAllStringSubmatch(c[1], -1)
		typs := regexp.MustCompile(`--type[ =](\w+)`).FindAllStringSubmatch(c[1], -1)
		if len(names) == 0 || len(names) != len(typs) {
			t.Errorf("%q: want one --type per --name", c[0])
			continue
		}
		for i, n := range names {
			registered[n[1]] = typs[i][1]
		}
	}
	for _, sa := range workflows.SearchAttributes {
		if got := registered[sa.Name]; got != sa.Type {
			t.Errorf("search attribute %s: compose registers type %q, the workflow needs %q", sa.Name, got, sa.Type)
		}
	}
}

var fromLine = regexp.MustCompile(`(?i)^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?`)

func TestDockerfilePinned(t *testing.T) {
	f, err := os.Open(repoPath("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stages := map[string]bool{}
	froms := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if syntax, ok := strings.CutPrefix(line, "# syntax="); ok {
			if ok, why := pinned(syntax); !ok {
				t.Errorf("Dockerfile syntax directive %q is not pinned (%s)", syntax, why)
			}
			continue
		}
		m := fromLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		froms++
		if !stages[strings.ToLower(m[1])] {
			if ok, why := pinned(m[1]); !ok {
				t.Errorf("Dockerfile: FROM %s is not pinned (%s)", m[1], why)
			}
		}
		if m[2] != "" {
			stages[strings.ToLower(m[2])] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if froms < 2 {
		t.Errorf("Dockerfile has %d FROM lines; want a multi-stage build", froms)
	}
}

// TestComposeMatchesTestedStack: the compose stack runs the versions and settings of the stack the fault
// suite runs (internal/devstack.Cluster): Temporal server, PostgreSQL major, history shards (fixed when
// the schema is created, never changeable) and the dynamic config.
func TestComposeMatchesTestedStack(t *testing.T) {
	p := loadCompose(t)
	tmp, err := p.GetService("temporal")
	if err != nil {
		t.Fatal(err)
	}
	if want := "temporalio/auto-setup:" + devstack.TemporalServerVersion; tmp.Image != want {
		t.Errorf("temporal image %s, want %s (the server the fault suite runs)", tmp.Image, want)
	}
	env := func(k string) string {
		if v := tmp.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	if got := env("NUM_HISTORY_SHARDS"); got != strconv.Itoa(devstack.NumHistoryShards) {
		t.Errorf("temporal NUM_HISTORY_SHARDS = %q, want %d", got, devstack.NumHistoryShards)
	}
	dc := env("DYNAMIC_CONFIG_FILE_PATH")
	mounted := ""
	for _, v := range tmp.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == "/etc/temporal/config/dynamicconfig" {
			mounted = filepath.Join(v.Source, filepath.Base(dc))
		}
	}
	if dc != "config/dynamicconfig/shepherd.yaml" || mounted == "" {
		t.Fatalf("temporal DYNAMIC_CONFIG_FILE_PATH %q, mounted from %q; want config/dynamicconfig/shepherd.yaml from deploy/temporal/dynamicconfig", dc, mounted)
	}
	if b, err := os.ReadFile(mounted); err != nil || string(b) != devstack.DynamicConfig {
		t.Errorf("%s differs from devstack.DynamicConfig (err %v): regenerate it from the constant", mounted, err)
	}
	pg, err := p.GetService("postgresql")
	if err != nil {
		t.Fatal(err)
	}
	if _, tag, _ := strings.Cut(pg.Image, ":"); !strings.HasPrefix(tag, strconv.Itoa(devstack.PostgresMajor)+".") {
		t.Errorf("postgresql image %s, want PostgreSQL %d", pg.Image, devstack.PostgresMajor)
	}
	sa, err := p.GetService("search-attributes")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sa.Image, ":"+devstack.TemporalServerVersion+"-") {
		t.Errorf("search-attributes image %s is not the admin-tools of server %s", sa.Image, devstack.TemporalServerVersion)
	}
}
