"""Demo on a ROS 2 machine: replay a folder of panoramas (or an MCAP bag) into the perception node, with RViz.

    ros2 launch mtpano_ros replay.launch.py panos:=/path/to/panoramas
    ros2 launch mtpano_ros replay.launch.py panos:=robot.mcap rate_hz:=5 backend:=tensorrt use_rviz:=false

Arguments: panos (required: folder of .jpg/.png panoramas, one image or an .mcap bag), rate_hz (default 1),
backend, model, use_rviz (default true) — the last three as in perception.launch.py. The panoramas loop until
Ctrl-C on the node's default input topic `image`.
"""

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "mtpano_ros"


def generate_launch_description() -> LaunchDescription:
    """Launch description: perception.launch.py (node, optional RViz) plus mtpano-replay looping `panos`."""
    arguments = [
        DeclareLaunchArgument("panos", description="Folder of .jpg/.png panoramas, one image, or an .mcap bag"),
        DeclareLaunchArgument("rate_hz", default_value="1.0", description="Replay rate in Hz"),
        DeclareLaunchArgument("backend", default_value="auto",
                              choices=["auto", "tensorrt", "onnxruntime", "torch"], description="Inference backend"),
        DeclareLaunchArgument("model", default_value="default", description="Bundled model name or weights path"),
        DeclareLaunchArgument("use_rviz", default_value="true", choices=["true", "false"],
                              description="Start rviz2 with the package's RViz config"),
    ]
    perception = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(PACKAGE), "launch",
                                                            "perception.launch.py"])),
        launch_arguments={"image_topic": "image", "backend": LaunchConfiguration("backend"),
                          "model": LaunchConfiguration("model"), "use_rviz": LaunchConfiguration("use_rviz")}.items(),
    )
    replay = Node(
        package=PACKAGE,
        executable="mtpano-replay",
        name="mtpano_replay",
        output="screen",
        arguments=[LaunchConfiguration("panos"), "--rate-hz", LaunchConfiguration("rate_hz"), "--loop"],
    )
    return LaunchDescription([*arguments, perception, replay])
