"""Demo on a ROS 2 machine: replay a folder of panoramas (or an MCAP bag) into the perception node, with RViz.

    ros2 launch mtpano_ros replay.launch.py panos:=/path/to/panoramas
    ros2 launch mtpano_ros replay.launch.py panos:=robot.mcap rate_hz:=5 backend:=tensorrt use_rviz:=false

Arguments: panos (required: folder of .jpg/.png panoramas, one image or an .mcap bag), rate_hz (default 1),
use_rviz (default true), and namespace, params_file and every runtime option (backend, model, ...) as in
perception.launch.py (given ones override the params file). The panoramas loop until Ctrl-C on the node's input
topic `image` (in the namespace).
"""

from dataclasses import fields

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from mtpano_ros.runtime.options import RuntimeOptions

PACKAGE = "mtpano_ros"


def generate_launch_description() -> LaunchDescription:
    """Launch description: perception.launch.py (node, optional RViz) plus mtpano-replay looping `panos`."""
    share = FindPackageShare(PACKAGE)
    runtime = [f.name for f in fields(RuntimeOptions)]
    arguments = [
        DeclareLaunchArgument("panos", description="Folder of .jpg/.png panoramas, one image, or an .mcap bag"),
        DeclareLaunchArgument("rate_hz", default_value="1.0", description="Replay rate in Hz"),
        DeclareLaunchArgument("use_rviz", default_value="true", choices=["true", "false"],
                              description="Start rviz2 with the package's RViz config"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node and the replay"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "perception.yaml"]),
                              description="Node parameters file"),
        *[DeclareLaunchArgument(name, default_value="", description=f"runtime option {name} (as in "
                                                                     "perception.launch.py; empty = params file)")
          for name in runtime],
    ]
    forwarded = ["use_rviz", "namespace", "params_file", *runtime]
    perception = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "perception.launch.py"])),
        launch_arguments=[("image_topic", "image"), *((name, LaunchConfiguration(name)) for name in forwarded)],
    )
    replay = Node(
        package=PACKAGE,
        executable="mtpano-replay",
        name="mtpano_replay",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        arguments=[LaunchConfiguration("panos"), "--rate-hz", LaunchConfiguration("rate_hz"), "--loop"],
    )
    return LaunchDescription([*arguments, perception, replay])
