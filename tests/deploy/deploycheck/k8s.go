// The `k8s` check: rendered Kubernetes manifests (helm template output),
// without a cluster. Every document is decoded strictly into the API types
// of k8s.io/api (unknown or duplicate fields, wrong types and unknown kinds
// are errors, as `kubectl apply --validate=strict` would make them), then a
// set of the API server's own rules and cross-object references are
// checked: names and labels, selectors that match their pods, probe and
// service ports that exist, requests within limits, extended resources
// (nvidia.com/gpu) set as whole limits, ConfigMaps that are referenced but
// not rendered, and (with -known) that every environment variable a
// Cascade container gets is one its binary reads.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

type checker struct {
	problems    []string
	kinds       map[string]int
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	configMaps  map[string]bool
	cmRefs      map[string]string // referenced ConfigMap -> by whom
	cmData      map[string]map[string]string
	known       known // nil: names not checked
}

func (c *checker) errorf(where, format string, args ...any) {
	c.problems = append(c.problems, where+": "+fmt.Sprintf(format, args...))
}

func (c *checker) msgs(where, what string, msgs []string) {
	for _, m := range msgs {
		c.errorf(where, "%s: %s", what, m)
	}
}

func (c *checker) checkMeta(where string, m *metav1.ObjectMeta, dns1035 bool) {
	if m.Name == "" {
		c.errorf(where, "metadata.name is empty")
	} else if dns1035 {
		c.msgs(where, "name "+m.Name, validation.IsDNS1035Label(m.Name))
	} else {
		c.msgs(where, "name "+m.Name, validation.IsDNS1123Subdomain(m.Name))
	}
	c.checkLabels(where+" metadata.labels", m.Labels)
	for k := range m.Annotations {
		c.msgs(where, "annotation "+k, validation.IsQualifiedName(k))
	}
}

func (c *checker) checkLabels(where string, l map[string]string) {
	for k, v := range l {
		c.msgs(where, "label key "+k, validation.IsQualifiedName(k))
		c.msgs(where, "label "+k+" value", validation.IsValidLabelValue(v))
	}
}

func (c *checker) checkSelector(where string, sel *metav1.LabelSelector, podLabels map[string]string) {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		c.errorf(where, "empty selector")
		return
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		c.errorf(where, "selector: %v", err)
		return
	}
	if podLabels != nil && !s.Matches(labels.Set(podLabels)) {
		c.errorf(where, "selector %s does not match the pod template's labels %v", s, podLabels)
	}
}

// Extended resources (a domain-prefixed name such as nvidia.com/gpu) must
// be whole numbers, must be limits, and a request must equal the limit.
func (c *checker) checkResources(where string, r corev1.ResourceRequirements) {
	for name, req := range r.Requests {
		lim, ok := r.Limits[name]
		if ok && req.Cmp(lim) > 0 {
			c.errorf(where, "request %s=%s above its limit %s", name, req.String(), lim.String())
		}
		if isExtended(name) && (!ok || req.Cmp(lim) != 0) {
			c.errorf(where, "extended resource %s: request must equal a limit", name)
		}
	}
	for name, lim := range r.Limits {
		if isExtended(name) && lim.MilliValue()%1000 != 0 {
			c.errorf(where, "extended resource %s=%s is not a whole number", name, lim.String())
		}
	}
}

func isExtended(n corev1.ResourceName) bool {
	s := string(n)
	return strings.Contains(s, "/") && !strings.HasPrefix(s, "kubernetes.io/") &&
		!strings.HasPrefix(s, "requests.") && !strings.HasPrefix(s, "hugepages-")
}

func (c *checker) checkProbe(where string, p *corev1.Probe, ports map[string]bool) {
	if p == nil {
		return
	}
	if p.HTTPGet == nil && p.TCPSocket == nil && p.Exec == nil && p.GRPC == nil {
		c.errorf(where, "probe without a handler")
		return
	}
	if h := p.HTTPGet; h != nil {
		if !strings.HasPrefix(h.Path, "/") {
			c.errorf(where, "probe path %q does not start with /", h.Path)
		}
		if h.Port.StrVal != "" && !ports[h.Port.StrVal] {
			c.errorf(where, "probe port %q is not a named container port", h.Port.StrVal)
		}
	}
}

func (c *checker) checkEnv(where string, ct *corev1.Container) {
	seen := map[string]bool{}
	for _, e := range ct.Env {
		c.msgs(where, "env "+e.Name, validation.IsEnvVarName(e.Name))
		if seen[e.Name] {
			c.errorf(where, "env %s set twice", e.Name)
		}
		seen[e.Name] = true
		if e.ValueFrom == nil {
			continue
		}
		if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
			if r.Optional == nil || !*r.Optional {
				c.cmRefs[r.Name] = where + " env " + e.Name
			}
			c.msgs(where, "env "+e.Name+" configMapKeyRef key", validation.IsConfigMapKey(r.Key))
		}
		if r := e.ValueFrom.SecretKeyRef; r != nil && (r.Name == "" || r.Key == "") {
			c.errorf(where, "env %s: secretKeyRef without name or key", e.Name)
		}
	}
	for _, f := range ct.EnvFrom {
		if r := f.ConfigMapRef; r != nil && (r.Optional == nil || !*r.Optional) {
			c.cmRefs[r.Name] = where + " envFrom"
		}
		if r := f.SecretRef; r != nil && r.Name == "" {
			c.errorf(where, "envFrom secretRef without a name")
		}
	}
}

func (c *checker) checkContainer(where string, ct *corev1.Container, volumes map[string]bool) {
	c.msgs(where, "container name", validation.IsDNS1123Label(ct.Name))
	if ct.Image == "" {
		c.errorf(where, "no image")
	}
	ports := map[string]bool{}
	for _, p := range ct.Ports {
		c.msgs(where, "containerPort", validation.IsValidPortNum(int(p.ContainerPort)))
		if p.Name != "" {
			c.msgs(where, "port name "+p.Name, validation.IsValidPortName(p.Name))
			if ports[p.Name] {
				c.errorf(where, "port name %s used twice", p.Name)
			}
			ports[p.Name] = true
		}
	}
	c.checkProbe(where+" livenessProbe", ct.LivenessProbe, ports)
	c.checkProbe(where+" readinessProbe", ct.ReadinessProbe, ports)
	c.checkProbe(where+" startupProbe", ct.StartupProbe, ports)
	c.checkResources(where+" resources", ct.Resources)
	c.checkEnv(where, ct)
	for _, m := range ct.VolumeMounts {
		if !volumes[m.Name] {
			c.errorf(where, "volumeMount %s names no volume", m.Name)
		}
		if !strings.HasPrefix(m.MountPath, "/") {
			c.errorf(where, "volumeMount %s: mountPath %q is not absolute", m.Name, m.MountPath)
		}
	}
}

func (c *checker) checkPodSpec(where string, s *corev1.PodSpec) {
	if len(s.Containers) == 0 {
		c.errorf(where, "no containers")
	}
	volumes := map[string]bool{}
	for _, v := range s.Volumes {
		c.msgs(where, "volume name", validation.IsDNS1123Label(v.Name))
		if volumes[v.Name] {
			c.errorf(where, "volume %s declared twice", v.Name)
		}
		volumes[v.Name] = true
		if v.ConfigMap != nil && (v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional) {
			c.cmRefs[v.ConfigMap.Name] = where + " volume " + v.Name
		}
	}
	names := map[string]bool{}
	for i := range s.Containers {
		ct := &s.Containers[i]
		if names[ct.Name] {
			c.errorf(where, "container %s declared twice", ct.Name)
		}
		names[ct.Name] = true
		c.checkContainer(where+" container "+ct.Name, ct, volumes)
	}
	if g := s.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		c.errorf(where, "negative terminationGracePeriodSeconds")
	}
	for k := range s.NodeSelector {
		c.msgs(where, "nodeSelector key "+k, validation.IsQualifiedName(k))
	}
	for _, t := range s.Tolerations {
		if t.Operator == corev1.TolerationOpExists && t.Value != "" {
			c.errorf(where, "toleration %s: operator Exists takes no value", t.Key)
		}
		switch t.Effect {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			c.errorf(where, "toleration %s: unknown effect %s", t.Key, t.Effect)
		}
	}
}

func (c *checker) add(obj runtime.Object) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		w := "Deployment " + o.Name
		c.checkMeta(w, &o.ObjectMeta, false)
		// A pod template has no name of its own.
		c.checkLabels(w+" template labels", o.Spec.Template.Labels)
		c.checkSelector(w, o.Spec.Selector, o.Spec.Template.Labels)
		c.checkPodSpec(w, &o.Spec.Template.Spec)
		c.deployments = append(c.deployments, o)
	case *batchv1.Job:
		w := "Job " + o.Name
		c.checkMeta(w, &o.ObjectMeta, false)
		c.checkLabels(w+" template labels", o.Spec.Template.Labels)
		if p := o.Spec.Template.Spec.RestartPolicy; p != corev1.RestartPolicyNever && p != corev1.RestartPolicyOnFailure {
			c.errorf(w, "restartPolicy must be Never or OnFailure, not %q", p)
		}
		c.checkPodSpec(w, &o.Spec.Template.Spec)
	case *corev1.Service:
		w := "Service " + o.Name
		c.checkMeta(w, &o.ObjectMeta, true)
		if len(o.Spec.Selector) == 0 {
			c.errorf(w, "no selector")
		}
		if len(o.Spec.Ports) == 0 {
			c.errorf(w, "no ports")
		}
		c.services = append(c.services, o)
	case *policyv1.PodDisruptionBudget:
		w := "PodDisruptionBudget " + o.Name
		c.checkMeta(w, &o.ObjectMeta, false)
		if (o.Spec.MinAvailable == nil) == (o.Spec.MaxUnavailable == nil) {
			c.errorf(w, "exactly one of minAvailable and maxUnavailable must be set")
		}
		c.checkSelector(w, o.Spec.Selector, nil)
		c.pdbs = append(c.pdbs, o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		w := "HorizontalPodAutoscaler " + o.Name
		c.checkMeta(w, &o.ObjectMeta, false)
		if o.Spec.MinReplicas != nil && *o.Spec.MinReplicas > o.Spec.MaxReplicas {
			c.errorf(w, "minReplicas above maxReplicas")
		}
		if len(o.Spec.Metrics) == 0 {
			c.errorf(w, "no metrics")
		}
		c.hpas = append(c.hpas, o)
	case *corev1.ConfigMap:
		w := "ConfigMap " + o.Name
		c.checkMeta(w, &o.ObjectMeta, false)
		for k := range o.Data {
			c.msgs(w, "key "+k, validation.IsConfigMapKey(k))
		}
		c.configMaps[o.Name] = true
		c.cmData[o.Name] = o.Data
	default:
		if m, ok := obj.(metav1.ObjectMetaAccessor); ok {
			c.checkMeta(fmt.Sprintf("%T", obj), m.GetObjectMeta().(*metav1.ObjectMeta), false)
		}
	}
}

// References between objects: what a Service, PDB or HPA points at must be
// in the same render.
func (c *checker) crossCheck() {
	podsMatching := func(sel labels.Selector) []*appsv1.Deployment {
		var out []*appsv1.Deployment
		for _, d := range c.deployments {
			if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				out = append(out, d)
			}
		}
		return out
	}
	for _, s := range c.services {
		ds := podsMatching(labels.SelectorFromSet(s.Spec.Selector))
		if len(ds) == 0 {
			c.errorf("Service "+s.Name, "selector %v matches no Deployment's pods", s.Spec.Selector)
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal == "" {
				continue
			}
			for _, d := range ds {
				if !hasPort(&d.Spec.Template.Spec, p.TargetPort.StrVal) {
					c.errorf("Service "+s.Name, "targetPort %s is not a port of Deployment %s", p.TargetPort.StrVal, d.Name)
				}
			}
		}
	}
	for _, p := range c.pdbs {
		if sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector); err == nil && len(podsMatching(sel)) == 0 {
			c.errorf("PodDisruptionBudget "+p.Name, "selector matches no Deployment's pods")
		}
	}
	for _, h := range c.hpas {
		found := false
		for _, d := range c.deployments {
			found = found || (h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == d.Name)
		}
		if !found {
			c.errorf("HorizontalPodAutoscaler "+h.Name, "scale target %s/%s is not rendered", h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
	}
	for name, by := range c.cmRefs {
		if !c.configMaps[name] {
			c.errorf(by, "ConfigMap %s is referenced but not rendered", name)
		}
	}
}

func hasPort(s *corev1.PodSpec, name string) bool {
	for _, ct := range s.Containers {
		for _, p := range ct.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

// The environment of each Cascade container: its env entries and the keys of
// the ConfigMaps it takes whole (envFrom), each of which its binary must
// read. The binary is cascade-<app.kubernetes.io/component>.
func (c *checker) envNames() {
	for _, d := range c.deployments {
		comp := d.Spec.Template.Labels["app.kubernetes.io/component"]
		if comp == "" {
			c.errorf("Deployment "+d.Name, "no app.kubernetes.io/component label: which binary runs here?")
			continue
		}
		for _, ct := range d.Spec.Template.Spec.Containers {
			where := "Deployment " + d.Name + " container " + ct.Name
			var names []string
			for _, e := range ct.Env {
				names = append(names, e.Name)
			}
			for _, f := range ct.EnvFrom {
				if f.ConfigMapRef != nil {
					for k := range c.cmData[f.ConfigMapRef.Name] {
						names = append(names, f.Prefix+k)
					}
				}
			}
			c.problems = append(c.problems, c.known.check(where, "cascade-"+comp, names)...)
		}
	}
}

func runK8s(in io.Reader, kn known) (*checker, error) {
	c := &checker{kinds: map[string]int{}, configMaps: map[string]bool{}, cmRefs: map[string]string{},
		cmData: map[string]map[string]string{}, known: kn}
	dec := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			c.errorf(fmt.Sprintf("document %d", n), "%v", err)
			continue
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue // only comments
		}
		obj, gvk, err := dec.Decode(js, nil, nil)
		if err != nil {
			c.errorf(fmt.Sprintf("document %d (%s)", n, firstLine(doc)), "%v", err)
			continue
		}
		c.kinds[gvk.Kind]++
		c.add(obj)
	}
	c.crossCheck()
	if c.known != nil {
		c.envNames()
	}
	return c, nil
}

func firstLine(doc []byte) string {
	for _, l := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			return t
		}
	}
	return ""
}
