# ferrokube — build, run and test a local Kubernetes made of Rust daemons.
#
#   make up      install deps, build, start a cluster (kubectl is then set up)
#   make test    install deps, build, run every test (what CI runs)
#   make down    delete the cluster
#
# Works on a fresh Debian 12 as root (or with sudo). Honours CARGO_TARGET_DIR.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

CARGO ?= cargo
OUT_DIR := $(CURDIR)/_output
BIN_DIR := $(OUT_DIR)/bin
IMAGES_DIR := $(OUT_DIR)/images
CLUSTER_NAME ?= ferrokube
# Extra flags for `ferrokube create cluster`, e.g. CREATE_FLAGS="--wait 5m".
CREATE_FLAGS ?=
# Extra flags for `cargo nextest run`, e.g. NEXTEST_FLAGS="-E 'test(kubectl)'".
NEXTEST_FLAGS ?=
BENCH_ARGS ?=
# What `build` compiles besides the binaries (`test` adds --tests).
CARGO_BUILD_TARGETS ?= --bins
# The cargo profile `build` uses: `release`, or `dist` for machines
# (size-optimised, whole-program LTO: smaller and less resident memory,
# slower to build), e.g. `make build install PROFILE=dist`.
PROFILE ?= release

# Debian packages the build and the clusters need.
APT_PACKAGES := etcd-server protobuf-compiler gcc pkg-config ca-certificates openssl curl \
  busybox-static containerd runc containernetworking-plugins docker-registry skopeo nftables iproute2 conntrack
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo || true)

.PHONY: all deps build images up down test e2e bench schemas lint fmt clean install

all: build

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi
	@if ! $(CARGO) nextest --version >/dev/null 2>&1; then \
	  echo "Installing cargo-nextest"; \
	  $(CARGO) install cargo-nextest --locked; \
	fi

# Build every workspace binary in release mode and copy them to _output/bin.
# The executables are taken from cargo's own JSON messages, so this follows
# CARGO_TARGET_DIR and picks up new daemons without changes here.
build:
	@mkdir -p "$(BIN_DIR)"
	@$(CARGO) build --profile $(PROFILE) --workspace $(CARGO_BUILD_TARGETS) --message-format=json-render-diagnostics \
	  > "$(OUT_DIR)/build-messages.json"
	@grep '"kind":\["bin"\]' "$(OUT_DIR)/build-messages.json" | grep '"test":false' \
	  | grep -o '"executable":"[^"]*"' \
	  | sed -e 's/^"executable":"//' -e 's/"$$//' | sort -u \
	  | while read -r exe; do \
	      cp -f "$$exe" "$(BIN_DIR)/"; \
	      echo "  $(BIN_DIR)/$$(basename "$$exe")"; \
	    done
	@rm -f "$(OUT_DIR)/build-messages.json"
	@BIN_DIR="$(BIN_DIR)" IMAGES_DIR="$(IMAGES_DIR)" hack/images/build.sh

# Build the OCI image archives (pause, busybox, test-server) into
# _output/images from Debian packages and the binaries in _output/bin
# (`build` runs this too). Unchanged archives are left untouched.
# See hack/images/README.md.
images:
	@BIN_DIR="$(BIN_DIR)" IMAGES_DIR="$(IMAGES_DIR)" hack/images/build.sh

up: deps build
	@if "$(BIN_DIR)/ferrokube" get clusters 2>/dev/null | grep -qx "$(CLUSTER_NAME)"; then \
	  echo "Cluster \"$(CLUSTER_NAME)\" already exists (run 'make down' first to recreate it)."; \
	else \
	  "$(BIN_DIR)/ferrokube" create cluster --name "$(CLUSTER_NAME)" $(CREATE_FLAGS); \
	fi
	@home="$${FERROKUBE_HOME:-$$HOME/.ferrokube}"; \
	echo; \
	echo "kubectl is set to context \"ferrokube-$(CLUSTER_NAME)\" in your kubeconfig; try:"; \
	echo "  kubectl get ns"; \
	echo "or use the cluster's own kubeconfig:"; \
	echo "  export KUBECONFIG=$$home/clusters/$(CLUSTER_NAME)/kubeconfig"; \
	echo "  kubectl get ns"; \
	echo "Stop it with: make down"

down:
	@if [ -x "$(BIN_DIR)/ferrokube" ]; then \
	  "$(BIN_DIR)/ferrokube" delete cluster --name "$(CLUSTER_NAME)"; \
	else \
	  $(CARGO) run --release -q -p ferrokube -- delete cluster --name "$(CLUSTER_NAME)"; \
	fi

# Tests run in the release profile so they reuse the artifacts of `build`.
# FERROKUBE_BIN_DIR makes the end-to-end tests use (and require) the built
# daemons.
# The tests are compiled together with the binaries: one feature
# resolution (dev-dependencies included) for both, so nothing is built twice.
test: deps
	@$(MAKE) --no-print-directory build PROFILE=release CARGO_BUILD_TARGETS="--bins --tests"
	FERROKUBE_BIN_DIR="$(BIN_DIR)" $(CARGO) nextest run --release --workspace --no-fail-fast $(NEXTEST_FLAGS)

# The conformance-style suite against the cluster your kubeconfig points at
# (KUBECONFIG, or E2E_KUBECONFIG / E2E_CONTEXT); prints the report and writes
# JUnit XML to _output/e2e/junit.xml. Against a ferrokube cluster named
# $(CLUSTER_NAME) the disruptive tests (node failure) run too.
E2E_FLAGS ?=
e2e: build
	@kc="$${E2E_KUBECONFIG:-$${KUBECONFIG:-$$HOME/.kube/config}}"; \
	extra=""; \
	if [ -n "$${E2E_CONTEXT:-}" ]; then extra="--context $$E2E_CONTEXT"; fi; \
	if "$(BIN_DIR)/ferrokube" get clusters 2>/dev/null | grep -qx "$(CLUSTER_NAME)"; then \
	  extra="$$extra --ferrokube-cluster $(CLUSTER_NAME)"; \
	  [ -n "$${E2E_CONTEXT:-}" ] || extra="$$extra --context ferrokube-$(CLUSTER_NAME)"; \
	fi; \
	FERROKUBE_BIN_DIR="$(BIN_DIR)" "$(BIN_DIR)/e2e" --kubeconfig "$$kc" $$extra \
	  --junit "$(OUT_DIR)/e2e/junit.xml" $(E2E_FLAGS)

bench: deps build
	@if [ -f test-e2e/src/bin/bench.rs ] || grep -q '^name = "bench"' test-e2e/Cargo.toml; then \
	  FERROKUBE_BIN_DIR="$(BIN_DIR)" $(CARGO) run --release -p test-e2e --bin bench -- $(BENCH_ARGS); \
	else \
	  echo "No bench binary yet (expected: cargo run -p test-e2e --bin bench)."; \
	fi

schemas:
	$(CARGO) run --release -p schema-gen

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf "$(OUT_DIR)"

# Install onto this machine (or into DESTDIR, for packaging) what
# docs/deploy.md uses: the daemons and ferrokube from _output/bin (run
# `make build` first) into $(DESTDIR)$(PREFIX)/bin, the systemd units of
# hack/systemd (ExecStart pointed at $(PREFIX)/bin) and the etcd/containerd
# drop-ins into $(DESTDIR)/etc/systemd/system; the example /etc/default
# files, containerd's CRI configuration and the KubeletConfiguration only
# where they do not exist yet. Nothing is enabled or started.
PREFIX ?= /usr/local
DESTDIR ?=
INSTALL_BINS := kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy \
  cloud-controller-manager ferrokube
SYSTEMD_SRC := $(CURDIR)/hack/systemd
UNIT_DIR := $(DESTDIR)/etc/systemd/system

install:
	@for b in $(INSTALL_BINS); do \
	  if [ ! -x "$(BIN_DIR)/$$b" ]; then echo "$(BIN_DIR)/$$b is missing: run 'make build' first" >&2; exit 1; fi; \
	done
	@install -d -m 0755 "$(DESTDIR)$(PREFIX)/bin" "$(UNIT_DIR)"
	@for b in $(INSTALL_BINS); do \
	  install -m 0755 "$(BIN_DIR)/$$b" "$(DESTDIR)$(PREFIX)/bin/$$b"; \
	  echo "  $(DESTDIR)$(PREFIX)/bin/$$b"; \
	done
	@for u in "$(SYSTEMD_SRC)"/*.service; do \
	  n="$$(basename "$$u")"; \
	  sed -e 's#/usr/local/bin/#$(PREFIX)/bin/#g' "$$u" > "$(UNIT_DIR)/.$$n.tmp"; \
	  chmod 0644 "$(UNIT_DIR)/.$$n.tmp"; \
	  mv -f "$(UNIT_DIR)/.$$n.tmp" "$(UNIT_DIR)/$$n"; \
	  echo "  $(UNIT_DIR)/$$n"; \
	done
	@for d in etcd containerd; do \
	  install -D -m 0644 "$(SYSTEMD_SRC)/$$d.service.d/10-ferrokube.conf" "$(UNIT_DIR)/$$d.service.d/10-ferrokube.conf"; \
	  echo "  $(UNIT_DIR)/$$d.service.d/10-ferrokube.conf"; \
	done
	@install_new() { \
	  if [ -e "$(DESTDIR)$$2" ]; then echo "  $(DESTDIR)$$2 exists, kept"; \
	  else install -D -m 0644 "$(SYSTEMD_SRC)/$$1" "$(DESTDIR)$$2"; echo "  $(DESTDIR)$$2"; fi; \
	}; \
	for f in kube-apiserver kube-controller-manager kube-scheduler cloud-controller-manager kubelet kube-proxy etcd; do \
	  install_new "default/$$f" "/etc/default/$$f"; \
	done; \
	install_new containerd/ferrokube.toml /etc/containerd/ferrokube.toml; \
	install_new containerd/ferrokube-cni.template /etc/containerd/ferrokube-cni.template; \
	install_new kubelet/config.yaml /var/lib/kubelet/config.yaml
	@echo
	@echo "Installed; nothing was enabled or started. Next (docs/deploy.md walks through it):"
	@echo "  1. certificates and kubeconfigs into /etc/kubernetes: $(PREFIX)/bin/ferrokube certs --help"
	@echo "  2. this machine's values in /etc/default/<daemon> (etcd members: /etc/default/etcd)"
	@echo "  3. systemctl daemon-reload"
	@echo "  4. etcd members:  systemctl restart etcd"
	@echo "     control plane: systemctl enable --now kube-apiserver kube-controller-manager kube-scheduler"
	@echo "     nodes:         systemctl restart containerd && systemctl enable --now kubelet kube-proxy"

