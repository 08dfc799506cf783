package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// No Docker engine runs here, so the production-like stack is checked the way it can
// be: compose.yaml parses, each service it builds exists and builds statically the way
// the Dockerfile builds it, and each gets the configuration its binary requires.
func TestComposeStackIsConsistent(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Image       string
			Build       struct{ Args map[string]string }
			Environment map[string]string
			Deploy      struct{ Replicas int }
		}
	}
	data, err := os.ReadFile("../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("compose.yaml does not parse: %v", err)
	}
	required := map[string][]string{
		"ticker":    {"NATS_URL", "DATABASE_URL"},
		"sla":       {"NATS_URL", "DATABASE_URL"},
		"reminders": {"NATS_URL", "DATABASE_URL", "SMTP_URL", "SMTP_FROM"},
		"analytics": {"NATS_URL", "DATABASE_URL"},
		"gateway":   {"NATS_URL", "DATABASE_URL", "AUTH_JWT_SECRET", "OPERATOR_JWT_SECRET", "HTTP_ADDR"},
	}
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dockerfile), "CGO_ENABLED=0 go build") {
		t.Fatal("the Dockerfile no longer builds static binaries; update this test with it")
	}
	outDir := t.TempDir()
	for name, want := range required {
		svc, ok := compose.Services[name]
		if !ok {
			t.Errorf("compose.yaml has no %s service", name)
			continue
		}
		if svc.Build.Args["SERVICE"] != name {
			t.Errorf("%s: build arg SERVICE = %q", name, svc.Build.Args["SERVICE"])
		}
		for _, v := range want {
			if svc.Environment[v] == "" {
				t.Errorf("%s: environment lacks %s", name, v)
			}
		}
		if name != "gateway" && svc.Deploy.Replicas < 2 {
			t.Errorf("%s: %d replicas; the stack runs two to show replicas cooperate", name, svc.Deploy.Replicas)
		}
	}
	// One build of all five, as the Dockerfile builds each: static, no cgo.
	args := []string{"build", "-trimpath", "-o", outDir + "/"}
	for name := range required {
		args = append(args, "./services/"+name+"/cmd/"+name)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the services do not build as the Dockerfile builds them: %v\n%s", err, out)
	}
	for name := range required {
		if _, err := os.Stat(filepath.Join(outDir, name)); err != nil {
			t.Errorf("no %s binary after the build: %v", name, err)
		}
	}
	for _, dep := range []string{"nats", "postgres"} {
		if compose.Services[dep].Image == "" {
			t.Errorf("compose.yaml has no %s image", dep)
		}
	}
}
