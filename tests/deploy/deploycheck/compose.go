package main

// The `compose` check: the output of `docker-compose config` (Compose
// file format, variables resolved). Every service that gets a CASCADE_*
// variable is taken to run cascade-<service name>, and each of its
// variables must be one that binary reads; each such service needs a
// healthcheck that asks its /healthz.

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

type composeFile struct {
	Services map[string]struct {
		Image       string            `json:"image"`
		Environment map[string]string `json:"environment"`
		Healthcheck *struct {
			Test []string `json:"test"`
		} `json:"healthcheck"`
	} `json:"services"`
}

func runCompose(in io.Reader, kn known) ([]string, int, error) {
	raw, err := io.ReadAll(in)
	if err != nil {
		return nil, 0, err
	}
	var f composeFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		return nil, 0, err
	}
	var problems []string
	var names []string
	for n := range f.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	cascade := 0
	for _, n := range names {
		s := f.Services[n]
		var env []string
		for k := range s.Environment {
			env = append(env, k)
		}
		isCascade := false
		for _, k := range env {
			isCascade = isCascade || strings.HasPrefix(k, "CASCADE_")
		}
		if !isCascade {
			continue
		}
		cascade++
		where := "compose service " + n
		if kn != nil {
			problems = append(problems, kn.check(where, "cascade-"+n, env)...)
		}
		if s.Healthcheck == nil || !strings.Contains(strings.Join(s.Healthcheck.Test, " "), "/healthz") {
			problems = append(problems, fmt.Sprintf("%s: no healthcheck on /healthz", where))
		}
	}
	return problems, cascade, nil
}
