# Two entry points for a fresh Debian machine, run as root:
#   make demo   installs what podnet needs and brings up the demo lab
#   make test   installs what podnet needs and runs the whole test suite
SHELL := /bin/bash
VENV := .venv
APT_PACKAGES := python3 python3-venv iproute2 nftables iputils-ping dnsutils curl \
                netcat-openbsd procps psmisc util-linux tcpdump traceroute

.PHONY: deps demo down test unit

.stamp-apt:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	fi
	@touch $@

$(VENV)/.installed: .stamp-apt requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.lock
	$(VENV)/bin/pip install -q --no-deps -e .
	@touch $@

deps: $(VENV)/.installed

demo: deps
	$(VENV)/bin/podnet lab down demo
	$(VENV)/bin/podnet lab up examples/cluster.yaml
	@echo; echo '$$ podnet exec client -- curl -s http://<web-2 on another node>/get'
	@$(VENV)/bin/podnet exec client -- curl -s \
	  http://$$($(VENV)/bin/podnet get pod web-2 -n apps -o 'jsonpath={.status.podIP}')/get
	@echo; echo "Look around: $(VENV)/bin/podnet exec client -- sh    Tear down: make down"

down: deps
	$(VENV)/bin/podnet lab down --all

test: deps
	$(VENV)/bin/pytest -q

unit: deps
	$(VENV)/bin/pytest -q tests/unit
