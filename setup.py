"""Build script for mtpano_ros (ament_python: works with colcon on a ROS 2 machine and with pip)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "mtpano_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="360-degree semantic, depth and normal perception for ROS 2 (PD-BridgeNet / MTPano)",
    license="Apache-2.0",
    python_requires=">=3.10",
    # `training` (distillation, training, evaluation) is installed too, so its entry points need no path tricks
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*", "training", "training.*"]),
    package_data={PACKAGE: ["weights/*/*.json", "weights/*/*.safetensors", "weights/*/*.md", "runtime/data/*"],
                  "training": ["configs/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
    ],
    install_requires=["setuptools", "numpy", "pyyaml"],
    zip_safe=True,
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "perception_node = mtpano_ros.ros.node:main",
            "perception_lifecycle_node = mtpano_ros.ros.lifecycle:main",
            "mtpano-replay = mtpano_ros.ros.replay:main",
            "mtpano-record = mtpano_ros.ros.record:main",
            "mtpano-export = mtpano_ros.runtime.cli:main",
            "mtpano-import-official = mtpano_ros.model.official:main",
            "mtpano-views = mtpano_ros.geometry.demo:main",
            "mtpano-train = training.train:main",
            "mtpano-evaluate = training.evaluate:main",
            "mtpano-pseudo-label = training.pseudo_label:main",
        ],
    },
)
