"""mtpano_ros.runtime."""
