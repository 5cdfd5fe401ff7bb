"""ROS 2 side of mtpano_ros (the only package that imports rclpy).

- ``node``: the ``mtpano_perception`` node (console script ``perception_node``).
- ``conversions``: sensor_msgs Image / CompressedImage / PointCloud2 <-> numpy, vectorised.
- ``diagnostics``: counters, rates, latency percentiles and the /diagnostics message.
- ``replay`` / ``record``: demo tools (``mtpano-replay``, ``mtpano-record``).

Importing this package imports nothing heavy; import the submodules you need.
"""
