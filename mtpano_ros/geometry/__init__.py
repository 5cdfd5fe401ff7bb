"""Spherical geometry shared by the model, the node, the exporter and the trainer (numpy + torch only)."""

from mtpano_ros.geometry.erp import (
    erp_lonlat_grid,
    erp_lonlat_grid_np,
    erp_ray_grid,
    erp_ray_grid_np,
    lonlat_to_pixel,
    lonlat_to_ray,
    pixel_to_lonlat,
    ray_to_lonlat,
)

__all__ = [
    "erp_lonlat_grid",
    "erp_lonlat_grid_np",
    "erp_ray_grid",
    "erp_ray_grid_np",
    "lonlat_to_pixel",
    "lonlat_to_ray",
    "pixel_to_lonlat",
    "ray_to_lonlat",
]
