"""mtpano_ros.ros."""
