# Two user-facing targets: `make demo` (the main job) and `make test` (what CI runs).
VENV   ?= .venv
PY     := $(VENV)/bin/python
PANOS  ?= examples/panoramas
OUT    ?= demo_out
COLCON_TMP ?= $(CURDIR)/build/colcon

.PHONY: setup demo test lint colcon clean

$(VENV)/.installed: requirements.txt requirements-dev.txt setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m mtpano_ros.ros.demo --panos $(PANOS) --out $(OUT) --model $(or $(MODEL),default) \
		--backend $(or $(BACKEND),auto)

lint: setup
	$(VENV)/bin/ruff check .

colcon: setup
	rm -rf $(COLCON_TMP)
	cd $(CURDIR) && PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/colcon --log-base $(COLCON_TMP)/log build \
		--base-paths . --build-base $(COLCON_TMP)/build --install-base $(COLCON_TMP)/install \
		--packages-select mtpano_ros
	test -f $(COLCON_TMP)/install/mtpano_ros/share/ament_index/resource_index/packages/mtpano_ros
	test -f $(COLCON_TMP)/install/mtpano_ros/share/mtpano_ros/launch/perception.launch.py
	test -f $(COLCON_TMP)/install/mtpano_ros/share/mtpano_ros/config/perception.yaml

test: lint
	$(PY) -m pytest -q
	$(MAKE) colcon

clean:
	rm -rf build install log $(OUT) .pytest_cache
