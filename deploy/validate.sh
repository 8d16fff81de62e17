#!/usr/bin/env bash
# validate.sh: check the deployment files as far as this machine allows:
# the Kubernetes manifests against the Kubernetes API schemas
# (kubernetes-validate, offline), the KEDA ScaledObject's required fields,
# and the compose files with docker-compose's own parser (given the example
# env file). Called by make test. The env-var drift check (compose, k8s and
# the programs' config loaders) is a Go test: test/deployenv.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${GRADEFLOW_TOOLS:-$HOME/.cache/gradeflow}/venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kubernetes-validate==1.37.0 pyyaml
fi
if ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
  else
    echo "validate: docker-compose missing; install it to validate deploy/compose" >&2; exit 1
  fi
fi

echo "validate: Kubernetes manifests (schemas of Kubernetes 1.32)"
core=()
for f in deploy/k8s/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] && continue
  grep -q '^kind: ScaledObject' "$f" || core+=("$f")
done
"$venv/bin/kubernetes-validate" --strict -k 1.32.0 "${core[@]}"

echo "validate: KEDA ScaledObject and kustomization"
"$venv/bin/python" - <<'PY'
import glob, os, sys, yaml
k = yaml.safe_load(open("deploy/k8s/kustomization.yaml"))
listed = set(k["resources"])
present = {os.path.basename(f) for f in glob.glob("deploy/k8s/*.yaml")} - {"kustomization.yaml"}
assert listed == present, f"kustomization lists {sorted(listed)}, directory has {sorted(present)}"
deployments = set()
for f in glob.glob("deploy/k8s/*.yaml"):
    for d in yaml.safe_load_all(open(f)):
        if d and d.get("kind") == "Deployment":
            deployments.add(d["metadata"]["name"])
so = yaml.safe_load(open("deploy/k8s/keda-execute.yaml"))
assert so["apiVersion"] == "keda.sh/v1alpha1" and so["kind"] == "ScaledObject"
assert so["spec"]["scaleTargetRef"]["name"] in deployments, "ScaledObject targets an unknown Deployment"
t = so["spec"]["triggers"][0]
assert t["type"] == "temporal"
for key in ("endpoint", "namespace", "taskQueue", "targetQueueSize"):
    assert key in t["metadata"], f"temporal trigger lacks {key}"
assert t["metadata"]["taskQueue"] == "gradeflow-execute"
print("ok")
PY

echo "validate: compose files (with the example env file)"
env=deploy/compose/gradeflow.env.example
docker-compose --env-file "$env" -f deploy/compose/compose.yaml config -q
docker-compose --env-file "$env" -f deploy/compose/compose.yaml -f deploy/compose/compose.mongo.yaml config -q
docker-compose --env-file "$env" -f deploy/compose/compose.eval.yaml config -q
# Nothing secret in the compose files: every value of the example env file
# must come in through a ${...} reference, never be written out.
while IFS='=' read -r key value; do
  case $key in ''|'#'*) continue ;; esac
  if grep -rqF -- "$value" deploy/compose/*.yaml; then
    echo "validate: the value of $key appears in a compose file" >&2; exit 1
  fi
  grep -rqF -- "\${$key" deploy/compose/compose.yaml || { echo "validate: compose.yaml does not use $key" >&2; exit 1; }
done <"$env"
echo "validate: all deployment files are valid"
