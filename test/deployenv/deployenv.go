// Package deployenv reads which environment variables the deployment files
// (deploy/compose and deploy/k8s) give each gradeflow program, so that each
// program's tests can check it reads every one of them: a variable renamed
// in the code or misspelt in a manifest is silently ignored at run time, and
// only such a check sees the drift.
package deployenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Program is a gradeflow program as the deployment files run it.
type Program string

// The programs that deployment files run.
const (
	API    Program = "api"    // gradeflow-api
	Worker Program = "worker" // gradeflow-worker
)

// Libraries lists the variables that libraries linked into every program
// read themselves, which deployment files may set: gRPC's TXT service-config
// switch (see deploy/compose/compose.yaml).
var Libraries = []string{"GRPC_ENABLE_TXT_SERVICE_CONFIG"}

// DockerSDK lists the variables that the Docker SDK reads itself
// (client.FromEnv in docker/sandbox), which the worker's manifests may set.
var DockerSDK = []string{"DOCKER_HOST", "DOCKER_API_VERSION", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"}

// Names returns every variable the deployment files under root set for
// program, each with the places that set it ("compose.yaml api", ...).
func Names(root string, program Program) (map[string][]string, error) {
	out := map[string][]string{}
	add := func(name, where string) { out[name] = append(out[name], where) }
	if err := composeNames(root, program, add); err != nil {
		return nil, err
	}
	if err := k8sNames(root, program, add); err != nil {
		return nil, err
	}
	return out, nil
}

// Drift returns the variables deployment files set for program that it
// does not read, given the names it read (its config loader's lookups).
func Drift(root string, program Program, read map[string]bool) ([]string, error) {
	set, err := Names(root, program)
	if err != nil {
		return nil, err
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("no deployment file sets any variable for %s: the parser is out of date", program)
	}
	var drift []string
	for name, where := range set {
		if read[name] || contains(Libraries, name) || (program == Worker && contains(DockerSDK, name)) {
			continue
		}
		drift = append(drift, fmt.Sprintf("%s (set in %s)", name, strings.Join(where, ", ")))
	}
	sort.Strings(drift)
	return drift, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// composeNames reads the compose files: a service running the programs'
// image is the API when its entrypoint is gradeflow-api, else a worker.
func composeNames(root string, program Program, add func(name, where string)) error {
	files, err := filepath.Glob(filepath.Join(root, "deploy/compose/compose*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		var doc struct {
			Services map[string]struct {
				Image       string         `yaml:"image"`
				Entrypoint  any            `yaml:"entrypoint"`
				Environment map[string]any `yaml:"environment"`
			} `yaml:"services"`
		}
		if err := readYAML(f, &doc); err != nil {
			return err
		}
		for name, svc := range doc.Services {
			if !strings.Contains(svc.Image, "gradeflow/app") {
				continue
			}
			p := Worker
			if strings.Contains(fmt.Sprint(svc.Entrypoint), "gradeflow-api") {
				p = API
			}
			if p != program {
				continue
			}
			for k := range svc.Environment {
				add(k, filepath.Base(f)+" "+name)
			}
		}
	}
	return nil
}

// k8sNames reads the Kubernetes manifests: the containers named api or
// worker, their env entries and the keys of the ConfigMaps and Secrets
// they take whole (envFrom).
func k8sNames(root string, program Program, add func(name, where string)) error {
	files, err := filepath.Glob(filepath.Join(root, "deploy/k8s/*.yaml"))
	if err != nil {
		return err
	}
	type object struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Data       map[string]any `yaml:"data"`
		StringData map[string]any `yaml:"stringData"`
		Spec       struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name string `yaml:"name"`
						Env  []struct {
							Name string `yaml:"name"`
						} `yaml:"env"`
						EnvFrom []struct {
							ConfigMapRef *struct {
								Name string `yaml:"name"`
							} `yaml:"configMapRef"`
							SecretRef *struct {
								Name string `yaml:"name"`
							} `yaml:"secretRef"`
						} `yaml:"envFrom"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	var objs []object
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(fh)
		for {
			var o object
			if err := dec.Decode(&o); err != nil {
				if err.Error() == "EOF" {
					break
				}
				fh.Close()
				return fmt.Errorf("%s: %w", f, err)
			}
			objs = append(objs, o)
		}
		fh.Close()
	}
	keys := map[string]map[string]any{} // "ConfigMap/name" -> keys
	for _, o := range objs {
		if o.Kind == "ConfigMap" || o.Kind == "Secret" {
			m := map[string]any{}
			for k, v := range o.Data {
				m[k] = v
			}
			for k, v := range o.StringData {
				m[k] = v
			}
			keys[o.Kind+"/"+o.Metadata.Name] = m
		}
	}
	for _, o := range objs {
		if o.Kind != "Deployment" {
			continue
		}
		for _, c := range o.Spec.Template.Spec.Containers {
			if Program(c.Name) != program {
				continue
			}
			where := "k8s " + o.Metadata.Name
			for _, e := range c.Env {
				add(e.Name, where)
			}
			for _, from := range c.EnvFrom {
				ref := ""
				switch {
				case from.ConfigMapRef != nil:
					ref = "ConfigMap/" + from.ConfigMapRef.Name
				case from.SecretRef != nil:
					ref = "Secret/" + from.SecretRef.Name
				}
				m, ok := keys[ref]
				if !ok {
					return fmt.Errorf("%s takes %s, which no manifest defines", where, ref)
				}
				for k := range m {
					add(k, where+" via "+ref)
				}
			}
		}
	}
	return nil
}

func readYAML(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
