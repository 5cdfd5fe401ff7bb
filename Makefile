# Two user-facing targets: `make demo` (the main job) and `make test` (what CI runs).
VENV   ?= .venv
PY     := $(VENV)/bin/python
PANOS  ?= examples/panoramas
OUT    ?= demo_out
COLCON_TMP ?= $(CURDIR)/build/colcon
# ROS 2 launch stack, sensor_msgs_py and cv_bridge as wheels (Kilted and Jazzy), where this machine has them.
WHEELS     ?= $(abspath $(CURDIR)/../shared/wheels)
# Jazzy venv: outside the checkout so a fresh clone reuses it; the project itself comes from PYTHONPATH.
JAZZY_VENV ?= $(HOME)/.cache/mtpano_ros/venv-jazzy-1
JAZZY_PY   := $(JAZZY_VENV)/bin/python
JAZZY_REQS := ros-rclpy==7.1.6 ros-rmw-fastrtps-cpp==8.4.3 ros-sensor-msgs==5.3.6 ros-std-msgs==5.3.6 \
	ros-diagnostic-msgs==5.3.6 torch==2.13.0 numpy pyyaml safetensors pillow mcap-ros2-support pytest \
	colcon-common-extensions ros-ament-package ros-ros2launch ros-launch-xml ros-launch-yaml ros-sensor-msgs-py \
	'ros-cv-bridge[headless]'
JAZZY_TESTS ?= test/test_ros_conversions.py test/test_ros_params.py test/test_ros_diagnostics.py \
	test/test_ros_lifecycle.py test/test_launch_ros.py test/test_ros_node.py
JAZZY_COLCON ?= $(CURDIR)/build/colcon-jazzy
CV_BRIDGE_LIBS := libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 libboost-python1.74.0

.PHONY: setup demo test lint colcon clean ros-wheels cv-bridge-libs jazzy colcon-jazzy test-jazzy

$(VENV)/.installed: requirements.txt requirements-dev.txt setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed

# The launch stack and sensor_msgs_py into the main (Kilted) venv, when ../shared/wheels exists (else the launch
# tests skip and say why). No stamp without the folder, so it is looked for again next time.
$(VENV)/.ros-wheels: $(VENV)/.installed
	@if [ -d "$(WHEELS)/kilted" ]; then \
		$(PY) -m pip install -q --find-links "$(WHEELS)/kilted" ros-ros2launch ros-launch-xml ros-launch-yaml \
			ros-sensor-msgs-py && touch $@; \
	else echo "no $(WHEELS)/kilted: ros2 launch tests will skip"; fi

ros-wheels: $(VENV)/.ros-wheels

# cv_bridge's compiled module links Debian's OpenCV 4.6 and Boost.Python (see ../shared/wheels/README.md).
cv-bridge-libs:
	@if dpkg -s $(CV_BRIDGE_LIBS) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		{ apt-get install -y -qq --no-install-recommends $(CV_BRIDGE_LIBS) >/dev/null 2>&1 || \
		  { apt-get update -qq >/dev/null 2>&1 && \
		    apt-get install -y -qq --no-install-recommends $(CV_BRIDGE_LIBS) >/dev/null 2>&1; }; } || \
		echo "could not install $(CV_BRIDGE_LIBS): the cv_bridge cross-checks will skip"; \
	else echo "cv_bridge needs $(CV_BRIDGE_LIBS) (apt, as root): the cv_bridge cross-checks will skip"; fi

# A second venv with the ROS 2 Jazzy wheels (rclpy 7.1.6) for the ROS test files, when ../shared/wheels/jazzy exists.
$(JAZZY_VENV)/.installed:
	@if [ -d "$(WHEELS)/jazzy" ]; then \
		rm -rf "$(JAZZY_VENV)" && python3 -m venv "$(JAZZY_VENV)" && \
		$(JAZZY_PY) -m pip install -q --upgrade pip && \
		$(JAZZY_PY) -m pip install -q --find-links "$(WHEELS)/jazzy" $(JAZZY_REQS) && touch $@; \
	else echo "no $(WHEELS)/jazzy: the Jazzy test run is skipped"; fi

jazzy: $(JAZZY_VENV)/.installed

colcon-jazzy: jazzy
	@if [ -f "$(JAZZY_VENV)/.installed" ]; then \
		rm -rf "$(JAZZY_COLCON)" && mkdir -p build && touch build/COLCON_IGNORE && \
		PATH="$(JAZZY_VENV)/bin:$$PATH" "$(JAZZY_VENV)/bin/colcon" --log-base "$(JAZZY_COLCON)/log" build \
			--base-paths . --build-base "$(JAZZY_COLCON)/build" --install-base "$(JAZZY_COLCON)/install" \
			--packages-select mtpano_ros >/dev/null && \
		test -f "$(JAZZY_COLCON)/install/mtpano_ros/share/mtpano_ros/launch/perception.launch.py"; fi

# The ROS test files again on Jazzy (the project from this checkout via PYTHONPATH, launch against its own install).
test-jazzy: colcon-jazzy cv-bridge-libs
	@if [ -f "$(JAZZY_VENV)/.installed" ]; then \
		echo "ROS 2 Jazzy (rclpy 7.1.6): $(JAZZY_TESTS)"; \
		PYTHONPATH="$(CURDIR)" MTPANO_COLCON_INSTALL="$(JAZZY_COLCON)/install" $(JAZZY_PY) -m pytest -q $(JAZZY_TESTS); \
	else echo "Jazzy run skipped: no $(WHEELS)/jazzy"; fi

demo: setup
	$(PY) -m mtpano_ros.ros.demo --panos $(PANOS) --out $(OUT) --model $(or $(MODEL),default) \
		--backend $(or $(BACKEND),auto)

lint: setup
	$(VENV)/bin/ruff check .

colcon: setup
	rm -rf $(COLCON_TMP)
	mkdir -p build && touch build/COLCON_IGNORE
	cd $(CURDIR) && PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/colcon --log-base $(COLCON_TMP)/log build \
		--base-paths . --build-base $(COLCON_TMP)/build --install-base $(COLCON_TMP)/install \
		--packages-select mtpano_ros
	test -f $(COLCON_TMP)/install/mtpano_ros/share/ament_index/resource_index/packages/mtpano_ros
	test -f $(COLCON_TMP)/install/mtpano_ros/share/mtpano_ros/launch/perception.launch.py
	test -f $(COLCON_TMP)/install/mtpano_ros/share/mtpano_ros/config/perception.yaml

test: lint ros-wheels
	$(MAKE) colcon
	$(PY) -m pytest -q
	$(MAKE) test-jazzy

clean:
	rm -rf build install log $(OUT) .pytest_cache
