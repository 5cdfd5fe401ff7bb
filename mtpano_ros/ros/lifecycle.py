"""perception_lifecycle_node: the perception node as a managed (lifecycle) node, for launch systems that bring
nodes up in order (nav2_lifecycle_manager, launch_ros LifecycleNode).

    perception_lifecycle_node --ros-args -r image:=/theta/image_raw --params-file config/perception.yaml
    ros2 lifecycle set /mtpano_perception configure   # loads and warms up the model (seconds to minutes)
    ros2 lifecycle set /mtpano_perception activate    # subscribes and publishes

Transitions (rclpy.lifecycle, available from Humble on):
  configure   build the backend from the runtime parameters, warm it up, create the (lifecycle) publishers
  activate    subscribe to the input and start the inference thread; outputs are published
  deactivate  unsubscribe and stop the inference thread; nothing is published
  cleanup     destroy the publishers and free the backend (back to unconfigured)
  shutdown    from any state: whatever exists is stopped and freed
Same node name, parameters, topics and /diagnostics as perception_node (the diagnostics name the state).
"""

from __future__ import annotations

import sys

from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn

from mtpano_ros.ros.node import NODE_NAME, PerceptionCore, spin_node


class PerceptionLifecycleNode(PerceptionCore, LifecycleNode):
    """Managed ``mtpano_perception``: parameters at construction, the model in configure, I/O in activate."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._declare_parameters()
        self._diag_pub = None
        self._diag_timer = None
        self.get_logger().info("unconfigured: waiting for the configure transition")

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._load_backend()
        except Exception as exc:  # noqa: BLE001 - a failed configure returns FAILURE, the node stays up
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            self._free_backend()
            return TransitionCallbackReturn.FAILURE
        self._create_outputs(self.create_lifecycle_publisher)
        self._static_diag["state"] = "inactive"
        self.get_logger().info("configured: model loaded and warmed up; activate to start")
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers first
        self._start_input()
        self._static_diag["state"] = "active"
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_input()
        self._static_diag["state"] = "inactive"
        self.get_logger().info("deactivated: unsubscribed, publishing nothing")
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: backend freed")
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._stop_input()
        self._release()
        return super().on_shutdown(state)

    def _release(self) -> None:
        for pub in self._outputs.values():
            self.destroy_lifecycle_publisher(pub)
        if self._scan_pub is not None:
            self.destroy_lifecycle_publisher(self._scan_pub)
        self._outputs, self._scan_pub = {}, None
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self.destroy_publisher(self._diag_pub)
            self._diag_timer = self._diag_pub = None
        self._free_backend()
        self._static_diag = {"state": "unconfigured"}

    def destroy_node(self) -> None:
        if hasattr(self, "_stop"):
            self._stop_input()
        super().destroy_node()


def main(args=None) -> int:
    """Console script ``perception_lifecycle_node``: start unconfigured and serve lifecycle transitions."""
    return spin_node(PerceptionLifecycleNode, args)


if __name__ == "__main__":
    sys.exit(main())
