"""mtpano_ros: 360-degree panoramic perception (semantics, metric depth, normals) for ROS 2.

Rooms (imports point one way): geometry <- model <- runtime <- ros; training may import all of them.
Only ``mtpano_ros.ros`` imports rclpy.
"""

__version__ = "0.1.0"
