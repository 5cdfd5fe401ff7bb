"""Procedural panoramas with exact ground truth: seeded scenes, ERP and perspective renders.

    scene = make_scene(seed, kind="auto"|"indoor"|"outdoor")
    sample = render_erp(scene, height, width)   # rgb, depth (radial m), normals (panorama frame), semantic
    view = render_perspective(scene, yaw_deg, pitch_deg, roll_deg, fov_deg, out_hw)

`python -m training.synthetic --out DIR --count N --seed S --size 256x512` writes a dataset folder.
"""

from training.synthetic.render import render_erp, render_perspective
from training.synthetic.scenes import Scene, make_scene

__all__ = ["Scene", "make_scene", "render_erp", "render_perspective"]
