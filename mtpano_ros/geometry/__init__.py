"""Spherical geometry shared by the model, the node, the exporter and the trainer (numpy + torch only).

Frames and conventions: DESIGN §3 (ERP pixels, REP 103 panorama frame, radial depth) and the view convention in
mtpano_ros.geometry.views (OpenCV view frame, yaw/pitch/roll/horizontal fov in degrees).
"""

from mtpano_ros.geometry.depth import (
    area_weights,
    depth_to_points,
    depth_to_points_np,
    normals_from_depth,
    radial_to_zdepth,
    zdepth_to_radial,
)
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
from mtpano_ros.geometry.sampling import icosahedral_views, sample_views
from mtpano_ros.geometry.views import (
    CUBE_FACES,
    camera_rays,
    clear_grid_cache,
    cubemap_to_erp,
    erp_to_cubemap,
    erp_to_perspective,
    erp_to_perspective_np,
    focal_px,
    perspective_depth_to_erp,
    perspective_erp_coords,
    perspective_normals_to_erp,
    perspective_to_erp,
    view_rotation,
)

__all__ = [
    "CUBE_FACES",
    "area_weights",
    "camera_rays",
    "clear_grid_cache",
    "cubemap_to_erp",
    "depth_to_points",
    "depth_to_points_np",
    "erp_lonlat_grid",
    "erp_lonlat_grid_np",
    "erp_ray_grid",
    "erp_ray_grid_np",
    "erp_to_cubemap",
    "erp_to_perspective",
    "erp_to_perspective_np",
    "focal_px",
    "icosahedral_views",
    "lonlat_to_pixel",
    "lonlat_to_ray",
    "normals_from_depth",
    "perspective_depth_to_erp",
    "perspective_erp_coords",
    "perspective_normals_to_erp",
    "perspective_to_erp",
    "pixel_to_lonlat",
    "radial_to_zdepth",
    "ray_to_lonlat",
    "sample_views",
    "view_rotation",
    "zdepth_to_radial",
]
