"""Launch the mtpano_ros perception node (and optionally RViz).

    ros2 launch mtpano_ros perception.launch.py image_topic:=/theta/image_raw
    ros2 launch mtpano_ros perception.launch.py image_topic:=/theta/image_raw backend:=tensorrt use_rviz:=true

Arguments:
  image_topic  input panorama topic (sensor_msgs/Image); with `input_transport: compressed` in the params file the
               node reads `<image_topic>/compressed` (sensor_msgs/CompressedImage). Default: `image`.
  params_file  node parameters (default: share/mtpano_ros/config/perception.yaml).
  backend      auto | tensorrt | onnxruntime | torch (overrides the params file).
  model        bundled model name or a weights path (overrides the params file). Default: default.
  namespace    ROS namespace for the node and all its output topics. Default: none.
  use_rviz     start rviz2 with rviz_config (default false: robots usually run headless).
  rviz_config  RViz config (default: share/mtpano_ros/config/mtpano.rviz).
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "mtpano_ros"


def generate_launch_description() -> LaunchDescription:
    """Launch description: the perception node with remapped input, params file and overrides; rviz2 if asked."""
    image_topic = LaunchConfiguration("image_topic")
    params_file = LaunchConfiguration("params_file")
    backend = LaunchConfiguration("backend")
    model = LaunchConfiguration("model")
    namespace = LaunchConfiguration("namespace")
    use_rviz = LaunchConfiguration("use_rviz")
    rviz_config = LaunchConfiguration("rviz_config")

    arguments = [
        DeclareLaunchArgument("image_topic", default_value="image",
                              description="Input panorama topic (sensor_msgs/Image, equirectangular)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config",
                                                                  "perception.yaml"]),
                              description="Node parameters file"),
        DeclareLaunchArgument("backend", default_value="auto",
                              choices=["auto", "tensorrt", "onnxruntime", "torch"],
                              description="Inference backend (overrides the params file)"),
        DeclareLaunchArgument("model", default_value="default",
                              description="Bundled model name or weights path (overrides the params file)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node and its output topics"),
        DeclareLaunchArgument("use_rviz", default_value="false", choices=["true", "false"],
                              description="Start rviz2 with rviz_config"),
        DeclareLaunchArgument("rviz_config",
                              default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "mtpano.rviz"]),
                              description="RViz configuration file"),
    ]

    perception = Node(
        package=PACKAGE,
        executable="perception_node",
        name="mtpano_perception",
        namespace=namespace,
        output="screen",
        emulate_tty=True,
        parameters=[params_file, {"backend": backend, "model": model}],
        remappings=[("image", image_topic), ("image/compressed", [image_topic, "/compressed"])],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", rviz_config],
        output="screen",
        condition=IfCondition(use_rviz),
    )
    return LaunchDescription([*arguments, perception, rviz])
