"""Launch the mtpano_ros perception node (and optionally RViz).

    ros2 launch mtpano_ros perception.launch.py image_topic:=/theta/image_raw
    ros2 launch mtpano_ros perception.launch.py image_topic:=/theta/image_raw backend:=tensorrt use_rviz:=true
    ros2 launch mtpano_ros perception.launch.py namespace:=/robot1 params_file:=/path/to/robot1.yaml

Arguments:
  image_topic  input panorama topic (sensor_msgs/Image); with `input_transport: compressed` in the params file the
               node reads `<image_topic>/compressed` (sensor_msgs/CompressedImage). Default: `image`.
  params_file  node parameters (default: share/mtpano_ros/config/perception.yaml; keyed `/**/mtpano_perception`,
               so it applies under any namespace).
  namespace    ROS namespace for the node and all its output topics. Default: none.
  use_rviz     start rviz2 with rviz_config (default false: robots usually run headless).
  rviz_config  RViz config (default: share/mtpano_ros/config/mtpano.rviz).
  backend, model, device, precision, input_height, ... : every runtime option of
               mtpano_ros.runtime.options.RuntimeOptions (names and descriptions come from there). Each overrides the
               params file only when given; left empty, the params file (or the node's default) decides.

The node gets the Fast DDS large-image profile share/mtpano_ros/config/fastdds_large_images.xml unless the
environment already names one: without it Fast DDS loses best-effort images larger than 512 KiB. Fast DDS 3 (Kilted)
reads FASTDDS_DEFAULT_PROFILES_FILE, Fast DDS 2 (Humble, Jazzy) FASTRTPS_DEFAULT_PROFILES_FILE: both are set, each
only where the environment has neither it nor (for the Fast DDS 2 name) the Fast DDS 3 one.
"""

from dataclasses import fields

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from mtpano_ros.runtime.options import RuntimeOptions

PACKAGE = "mtpano_ros"
NODE_NAME = "mtpano_perception"
FASTDDS_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"  # Fast DDS 3 (Kilted)
FASTRTPS_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"  # Fast DDS 2 (Humble, Jazzy)


def runtime_arguments() -> list[DeclareLaunchArgument]:
    """One launch argument per runtime option, default "" (= not given: the params file decides)."""
    return [DeclareLaunchArgument(f.name, default_value="",
                                  description=f"{f.metadata['description']} (overrides the params file when given; "
                                              f"node default {f.default!r})")
            for f in fields(RuntimeOptions)]


def _typed(text: str, default):
    """A launch argument's text as the option's type (bool, int, float or str)."""
    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    return type(default)(text)


def runtime_overrides(context) -> dict:
    """{option: typed value} for the runtime launch arguments that were given (non-empty)."""
    overrides = {}
    for f in fields(RuntimeOptions):
        text = LaunchConfiguration(f.name).perform(context)
        if text != "":
            try:
                overrides[f.name] = _typed(text, f.default)
            except ValueError as err:
                raise ValueError(f"launch argument {f.name}:={text} is not a {type(f.default).__name__}: {err}") \
                    from None
    return overrides


def _perception_node(context):
    image_topic = LaunchConfiguration("image_topic").perform(context)
    parameters = [LaunchConfiguration("params_file").perform(context)]
    overrides = runtime_overrides(context)
    if overrides:
        parameters.append(overrides)
    return [Node(
        package=PACKAGE,
        executable="perception_node",
        name=NODE_NAME,
        namespace=LaunchConfiguration("namespace").perform(context),
        output="screen",
        emulate_tty=True,
        parameters=parameters,
        remappings=[("image", image_topic), ("image/compressed", image_topic + "/compressed")],
    )]


def generate_launch_description() -> LaunchDescription:
    """Launch description: the perception node with remapped input, params file and given overrides; rviz2 if
    asked; the Fast DDS large-image profile unless the environment names one."""
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("image_topic", default_value="image",
                              description="Input panorama topic (sensor_msgs/Image, equirectangular)"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "perception.yaml"]),
                              description="Node parameters file (keyed /**/mtpano_perception)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node and its output topics"),
        DeclareLaunchArgument("use_rviz", default_value="false", choices=["true", "false"],
                              description="Start rviz2 with rviz_config"),
        DeclareLaunchArgument("rviz_config", default_value=PathJoinSubstitution([share, "config", "mtpano.rviz"]),
                              description="RViz configuration file"),
        *runtime_arguments(),
    ]
    shipped = PathJoinSubstitution([share, "config", "fastdds_large_images.xml"])
    profile_env = [
        SetEnvironmentVariable(FASTRTPS_VARIABLE, EnvironmentVariable(
            FASTRTPS_VARIABLE, default_value=EnvironmentVariable(FASTDDS_VARIABLE, default_value=shipped))),
        SetEnvironmentVariable(FASTDDS_VARIABLE, EnvironmentVariable(FASTDDS_VARIABLE, default_value=shipped)),
    ]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", LaunchConfiguration("rviz_config")],
        output="screen",
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    return LaunchDescription([*arguments, *profile_env, OpaqueFunction(function=_perception_node), rviz])
