#!/usr/bin/env bash
# Builds a Kubernetes control plane without containers into the tool cache, from the Go module proxy:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake nodes), plus the kwok
# stages and the Gateway API CRDs they need. Nothing fetched lands in the clone: every build module is
# generated in a temporary directory and thrown away. See docs/targets.md.
#
#   scripts/kube-tools.sh DIR     # builds what is missing in DIR (about 10 minutes on 2 cores, once)
set -euo pipefail

dir=${1:?usage: kube-tools.sh DIR}
ETCD_VERSION=${ETCD_VERSION:-3.6.13}
KUBE_VERSION=${KUBE_VERSION:-1.37.2}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
GATEWAY_API_VERSION=${GATEWAY_API_VERSION:-1.6.3}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0

# etcd cannot be `go install`ed (its go.mod has replace directives); a module requiring it can build it.
if [[ ! -x $dir/etcd ]]; then
	echo "building etcd v$ETCD_VERSION"
	mkdir -p "$tmp/etcd" && cd "$tmp/etcd"
	go mod init shepherd.local/etcd >/dev/null 2>&1
	go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null
	go build -trimpath -ldflags '-s -w' -o "$tmp/etcd.bin" go.etcd.io/etcd/server/v3
	mv "$tmp/etcd.bin" "$dir/etcd"
fi

# k8s.io/kubernetes replaces its staging modules with ./staging/...; a throw-away module replaces each
# of them with the published k8s.io/X v0.MINOR.PATCH instead. Without the version ldflags the server
# reports v0.0.0-master and clients that parse the version fail.
if [[ ! -x $dir/kube-apiserver || ! -x $dir/kube-controller-manager || ! -x $dir/kube-scheduler ]]; then
	echo "building kube-apiserver, kube-controller-manager, kube-scheduler v$KUBE_VERSION"
	mkdir -p "$tmp/kube" && cd "$tmp/kube"
	gomod=$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
	{
		echo "module shepherd.local/kube"
		echo
		echo "go $(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
		echo
		echo "require k8s.io/kubernetes v$KUBE_VERSION"
		echo
		sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#replace \1 => \1 v0.'"${KUBE_VERSION#1.}"'#p' "$gomod"
	} >go.mod
	pkgs="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler"
	major=${KUBE_VERSION%%.*} minor=${KUBE_VERSION#*.}
	minor=${minor%%.*}
	ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$KUBE_VERSION"
	ldflags+=" -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor"
	ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
	mkdir -p "$tmp/kube-out"
	# shellcheck disable=SC2086
	go build -trimpath -ldflags "$ldflags" -o "$tmp/kube-out/" $pkgs
	mv "$tmp/kube-out/"* "$dir/"
fi

if [[ ! -x $dir/kwok ]]; then
	echo "building kwok v$KWOK_VERSION"
	GOBIN="$tmp/kwok-out" go install -trimpath -ldflags '-s -w' "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
	mv "$tmp/kwok-out/kwok" "$dir/kwok"
fi

# Data the cluster needs, copied out of the modules: kwok's stages (Nodes and Pods become Ready without
# containers), joined into one config file, and the Gateway API standard CRDs.
assets=$dir/kube-assets
if [[ ! -f $assets/v$KWOK_VERSION-$GATEWAY_API_VERSION ]]; then
	rm -rf "$assets" && mkdir -p "$assets/gateway-api-crds"
	kwokdir=$(go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	for stage in node/fast node/heartbeat pod/fast; do
		for f in "$kwokdir/kustomize/stage/$stage/"*.yaml; do
			[[ $(basename "$f") == kustomization.yaml ]] && continue
			echo "---"
			cat "$f"
		done
	done >"$assets/kwok.yaml"
	gwdir=$(go mod download -json "sigs.k8s.io/gateway-api@v$GATEWAY_API_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	cp "$gwdir/config/crd/standard/"*.yaml "$assets/gateway-api-crds/"
	chmod -R u+w "$assets"
	touch "$assets/v$KWOK_VERSION-$GATEWAY_API_VERSION"
fi
echo "kube tools ready in $dir"
