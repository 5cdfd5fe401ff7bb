"""mtpano_ros.model."""
