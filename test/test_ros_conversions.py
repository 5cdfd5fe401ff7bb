"""Message conversions of the perception node against the sensor_msgs definitions (no DDS needed)."""

import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy")
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from mtpano_ros.geometry import erp_ray_grid_np  # noqa: E402
from mtpano_ros.labels import colorize_labels  # noqa: E402
from mtpano_ros.ros import conversions as C  # noqa: E402
from mtpano_ros.ros.node import colorize  # noqa: E402

PANOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "panoramas"
RNG = np.random.default_rng(7)


def _random(encoding, h=6, w=10):
    dtype, ch = C.ENCODINGS[encoding]
    shape = (h, w) if ch == 1 else (h, w, ch)
    if dtype == np.uint8:
        return RNG.integers(0, 256, shape, dtype=np.uint8)
    return RNG.normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("encoding", sorted(C.ENCODINGS))
def test_image_round_trip_every_encoding(encoding):
    arr = _random(encoding)
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = C.array_to_image(arr, encoding, header)
    dtype, ch = C.ENCODINGS[encoding]
    assert (msg.height, msg.width, msg.encoding) == (6, 10, encoding)
    assert msg.step == 10 * ch * np.dtype(dtype).itemsize
    assert len(msg.data) == msg.step * msg.height
    assert msg.header.frame_id == "cam" and msg.header.stamp.nanosec == 345
    back = C.image_to_array(msg)
    assert back.dtype == dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_array_to_image_takes_a_whole_byte_buffer_without_copying():
    """An array that is all of one array.array("B") becomes the message's data itself; any other array (a part of
    such a buffer, a strided view, a plain numpy array) is copied. postprocess's batch-1 results are taken as is."""
    import array

    import torch

    from mtpano_ros.model import postprocess

    buf = array.array("B", [0]) * (4 * 6 * 4)
    depth = np.frombuffer(buf, dtype=np.float32).reshape(4, 6)
    depth[:] = RNG.random((4, 6))
    msg = C.array_to_image(depth, "32FC1")
    assert msg.data is buf
    depth[0, 0] = 7.0  # shared: the message sees the write
    assert C.image_to_array(msg)[0, 0] == 7.0
    for part, enc in ((depth[1:], "32FC1"), (depth[:, ::2], "32FC1"), (np.array(depth), "32FC1")):
        copied = C.array_to_image(np.ascontiguousarray(part), enc)
        assert copied.data is not buf
        np.testing.assert_array_equal(C.image_to_array(copied), part)

    h, w = 8, 16
    res = postprocess({"semantic": torch.randint(0, 150, (1, h, w)), "depth": torch.rand(1, 1, h, w) + 0.5,
                       "normals": torch.randn(1, 3, h, w)})
    for key, enc in (("semantic", "mono8"), ("depth", "32FC1"), ("normals", "32FC3")):
        msg = C.array_to_image(res[key][0], enc)
        assert msg.data.buffer_info()[0] == res[key].ctypes.data, f"{key} was copied"
        np.testing.assert_array_equal(C.image_to_array(msg), res[key][0])


def test_padded_rows_and_big_endian_floats_are_read():
    arr = _random("rgb8", 5, 7)
    msg = Image(height=5, width=7, encoding="rgb8", step=7 * 3 + 5)
    padded = np.zeros((5, 26), np.uint8)
    padded[:, :21] = arr.reshape(5, 21)
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(C.image_to_array(msg), arr)
    np.testing.assert_array_equal(C.to_rgb(C.image_to_array(msg), "rgb8"), arr)

    depth = RNG.normal(size=(3, 4)).astype(np.float32)
    msg = Image(height=3, width=4, encoding="32FC1", step=16, is_bigendian=1)
    msg.data = depth.astype(">f4").tobytes()
    np.testing.assert_array_equal(C.image_to_array(msg), depth)


@pytest.mark.parametrize("encoding", sorted(C.INPUT_ENCODINGS))
def test_to_rgb_channel_orders(encoding):
    rgb = RNG.integers(0, 256, (8, 16, 3), dtype=np.uint8)
    gray = rgb[..., 0]
    src = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "mono8": gray,
           "rgba8": np.dstack([rgb, np.full((8, 16), 9, np.uint8)]),
           "bgra8": np.dstack([rgb[..., ::-1], np.full((8, 16), 9, np.uint8)])}[encoding]
    msg = C.array_to_image(np.ascontiguousarray(src), encoding)
    out = C.to_rgb(C.image_to_array(msg, allowed=C.INPUT_ENCODINGS), encoding)
    expected = np.repeat(gray[..., None], 3, axis=2) if encoding == "mono8" else rgb
    np.testing.assert_array_equal(out, expected)
    small = C.to_rgb(C.image_to_array(msg), encoding, (4, 8))
    assert small.shape == (4, 8, 3) and small.dtype == np.uint8


@pytest.mark.parametrize("mutate, kind", [
    (lambda m: setattr(m, "encoding", "16UC1"), "encoding"),
    (lambda m: setattr(m, "encoding", "yuv422"), "encoding"),
    (lambda m: setattr(m, "step", 10), "step"),
    (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "truncated"),
    (lambda m: setattr(m, "data", bytes(m.data) + b"x"), "data_size"),
    (lambda m: (setattr(m, "width", 0), setattr(m, "height", 0)), "size"),
    (lambda m: (setattr(m, "width", 1), setattr(m, "height", 1), setattr(m, "step", 3)), "size"),
    (lambda m: (setattr(m, "width", 8192), setattr(m, "height", 4096), setattr(m, "step", 8192 * 3)), "too_large"),
])
def test_bad_images_raise_input_error_by_kind(mutate, kind):
    msg = C.array_to_image(_random("rgb8", 8, 16), "rgb8")
    mutate(msg)
    with pytest.raises(C.InputError) as info:
        C.image_to_array(msg, "/camera/image", C.INPUT_ENCODINGS, max_pixels=4096 * 2048)
    assert info.value.kind == kind
    assert "/camera/image" in str(info.value)


def test_unknown_encoding_message_says_what_and_expected():
    msg = C.array_to_image(_random("rgb8"), "rgb8")
    msg.encoding = "16UC1"
    with pytest.raises(C.InputError, match="expected rgb8/bgr8/rgba8/bgra8/mono8, got 16UC1 on /camera/image"):
        C.image_to_array(msg, "/camera/image", C.INPUT_ENCODINGS)


def test_compressed_decode_and_size_peek():
    rgb = cv2.GaussianBlur(RNG.integers(0, 256, (64, 128, 3), dtype=np.uint8), (5, 5), 2)
    png = C.encode_compressed(rgb, "png")
    assert C.compressed_size(png) == ("png", 128, 64)
    np.testing.assert_array_equal(C.decode_compressed(png)[..., ::-1], rgb)
    jpeg = C.encode_compressed(rgb, "jpeg", quality=95)
    assert C.compressed_size(jpeg) == ("jpeg", 128, 64)
    assert np.abs(C.decode_compressed(jpeg)[..., ::-1].astype(int) - rgb).mean() < 6
    reduced = C.decode_compressed(jpeg, min_hw=(16, 32))
    assert reduced.shape == (16, 32, 3)  # decoded at 1/4 scale by the JPEG decoder, never below min_hw
    assert C.decode_compressed(jpeg, min_hw=(20, 40)).shape == (32, 64, 3)


def _exif_rotated_jpeg(rgb: np.ndarray, orientation: int) -> bytes:
    """JPEG bytes of rgb (H, W, 3) with an EXIF Orientation tag (6 = "rotate 90 degrees clockwise to view")."""
    import io

    from PIL import Image as PILImage

    exif = PILImage.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_exif_orientation_is_ignored(orientation):
    rgb = np.zeros((64, 128, 3), np.uint8)
    rgb[:, :64] = (250, 20, 20)  # left half red, right half blue: a rotation would move them
    rgb[:, 64:] = (20, 20, 250)
    data = _exif_rotated_jpeg(rgb, orientation)
    if orientation != 3:  # OpenCV's default applies the tag: 90-degree turns swap width and height
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (128, 64)
    msg = CompressedImage(format="jpeg", data=data)
    assert C.compressed_size(msg) == ("jpeg", 128, 64)
    full = C.decode_compressed(msg)[..., ::-1]
    assert full.shape == (64, 128, 3)
    assert np.abs(full.astype(int) - rgb).mean() < 4
    reduced = C.decode_compressed(msg, min_hw=(20, 40))[..., ::-1]
    assert reduced.shape == (32, 64, 3)  # 1/2 scale, still 2:1 and not rotated
    assert reduced[:, :28, 0].mean() > 200 and reduced[:, 36:, 2].mean() > 200


@pytest.mark.parametrize("fmt", ["16UC1; compressedDepth png", "32FC1; compressedDepth", "theora", "h264"])
def test_other_transports_are_named_in_the_error(fmt):
    with pytest.raises(C.InputError) as info:
        C.compressed_size(CompressedImage(format=fmt, data=b"\x00" * 64), "/cam/image/compressed")
    assert info.value.kind == "format"
    assert fmt in str(info.value) and "/cam/image/compressed" in str(info.value)
    assert "does not decode" in str(info.value) and "JPEG or PNG" in str(info.value)


@pytest.mark.parametrize("cls", [Image, CompressedImage, PointCloud2])
def test_new_message_keeps_arrays_without_copy(cls):
    import array

    msg = C.new_message(cls)
    buf = array.array("B", bytes(range(16)))
    msg.data = buf
    assert msg.data is buf  # with checks off, Iron+ setters would copy into a new array


class _HumbleStyleMessage:
    """The constructor shape rosidl_generator_py generates on Humble: no check_fields, unknown kwargs assert."""

    __slots__ = ["_data"]

    def __init__(self, **kwargs):
        assert all("_" + key in self.__slots__ for key in kwargs), f"Invalid arguments passed to constructor: {kwargs}"
        self._data = kwargs.get("data", b"")


def test_new_message_feature_detects_check_fields():
    assert "_check_fields" in Image.__slots__  # this distribution (Jazzy/Kilted) has it
    with pytest.raises(AssertionError):
        _HumbleStyleMessage(check_fields=True)
    assert isinstance(C.new_message(_HumbleStyleMessage), _HumbleStyleMessage)


def test_bad_compressed_raise_input_error():
    rgb = RNG.integers(0, 256, (32, 64, 3), dtype=np.uint8)
    jpeg = bytes(C.encode_compressed(rgb, "jpeg").data)
    png = bytes(C.encode_compressed(rgb, "png").data)
    cases = {
        "format": b"GIF89a" + jpeg[6:],
        "decode": jpeg[:len(jpeg) // 3],                     # truncated JPEG
    }
    for kind, data in cases.items():
        with pytest.raises(C.InputError) as info:
            C.decode_compressed(CompressedImage(format="jpeg", data=data))
        assert info.value.kind == kind
    garbage = bytearray(jpeg)
    garbage[200:] = RNG.integers(0, 256, len(jpeg) - 200, dtype=np.uint8).tobytes()
    with pytest.raises(C.InputError):
        C.decode_compressed(CompressedImage(format="jpeg", data=bytes(garbage)))
    wrong_size = bytearray(png)
    wrong_size[16:24] = (640).to_bytes(4, "big") + (320).to_bytes(4, "big")  # IHDR lies about the size
    with pytest.raises(C.InputError) as info:
        C.decode_compressed(CompressedImage(format="png", data=bytes(wrong_size)))
    assert info.value.kind == "decode"
    resized = bytearray(wrong_size)
    resized[29:33] = zlib.crc32(bytes(resized[12:29])).to_bytes(4, "big")  # a consistent header, wrong data
    with pytest.raises(C.InputError) as info:
        C.decode_compressed(CompressedImage(format="png", data=bytes(resized)))
    assert info.value.kind == "decode"
    huge = bytearray(png)
    huge[16:24] = (100000).to_bytes(4, "big") + (50000).to_bytes(4, "big")
    huge[29:33] = zlib.crc32(bytes(huge[12:29])).to_bytes(4, "big")
    with pytest.raises(C.InputError) as info:  # rejected from the header, before any decoding
        C.decode_compressed(CompressedImage(format="png", data=bytes(huge)), max_pixels=8192 * 4096)
    assert info.value.kind == "too_large"


def test_fast_resize_matches_inter_area():
    files = sorted(PANOS.glob("outdoor_park_*.jpg")) if PANOS.is_dir() else []
    if files:
        big = cv2.resize(cv2.imread(str(files[0])), (3840, 1920), interpolation=cv2.INTER_AREA)
    else:  # smooth synthetic stand-in
        big = cv2.resize(RNG.integers(0, 256, (60, 120, 3), dtype=np.uint8), (3840, 1920),
                         interpolation=cv2.INTER_CUBIC)
    exact = C.resize_area(big, (512, 1024), exact=True)
    fast = C.resize_area(big, (512, 1024))
    assert fast.shape == exact.shape == (512, 1024, 3)
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((fast.astype(np.float64) - exact) ** 2))
    assert psnr > 35.0
    assert C.resize_area(big[:1000, :2000], (512, 1024)).shape == (512, 1024, 3)  # < 2x: plain INTER_AREA


def _cloud_inputs(h=16, w=32):
    depth = RNG.uniform(0.5, 20.0, (h, w)).astype(np.float32)
    depth[0, :5] = np.nan
    depth[1, 3] = 0.0
    rgb = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    labels = RNG.integers(0, 150, (h, w), dtype=np.uint8)
    labels[2, 2] = 255
    return depth, rgb, labels


def test_pointcloud2_layout_matches_message_definition():
    depth, rgb, labels = _cloud_inputs()
    header = Header(frame_id="pano")
    msg = C.build_pointcloud2(depth, rgb, labels, header)
    fields = {f.name: (f.offset, f.datatype, f.count) for f in msg.fields}
    assert fields == {"x": (0, PointField.FLOAT32, 1), "y": (4, PointField.FLOAT32, 1), "z": (8, PointField.FLOAT32, 1),
                      "rgb": (12, PointField.FLOAT32, 1), "label": (16, PointField.UINT32, 1)}
    assert msg.point_step == 20 and msg.row_step == 20 * 32
    assert (msg.height, msg.width, msg.is_dense, msg.is_bigendian) == (16, 32, False, False)
    assert len(msg.data) == msg.row_step * msg.height
    assert msg.header.frame_id == "pano"

    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(16, 32, 20)
    xyz = raw[..., 0:12].copy().view("<f4")
    rays = erp_ray_grid_np(16, 32)
    valid = depth > 0
    np.testing.assert_allclose(xyz[valid], (rays * depth[..., None])[valid], rtol=1e-6, atol=1e-6)
    assert np.isnan(xyz[~valid]).all()
    packed = raw[..., 12:16].copy().view("<u4")[..., 0]
    expected = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    np.testing.assert_array_equal(packed, expected)
    assert (packed >> 24 == 0).all()  # 0x00RRGGBB
    # RViz reads the 4 bytes as a float32 field and reinterprets its bits: same bits back
    as_float = raw[..., 12:16].copy().view("<f4")[..., 0]
    np.testing.assert_array_equal(as_float.view("<u4"), expected)
    label = raw[..., 16:20].copy().view("<u4")[..., 0]  # PCL PointXYZRGBL: uint32 label at offset 16
    np.testing.assert_array_equal(label, labels)
    back = C.pointcloud2_to_arrays(msg)
    assert back["label"].dtype == np.uint32
    np.testing.assert_array_equal(back["rgb"], rgb)
    np.testing.assert_array_equal(back["label"], labels)


def test_pointcloud2_stride_range_and_dense():
    depth, rgb, labels = _cloud_inputs(32, 64)
    rays = erp_ray_grid_np(32, 64)
    msg = C.build_pointcloud2(depth, rgb, labels, stride=4, max_range_m=10.0)
    assert (msg.height, msg.width) == (8, 16)
    back = C.pointcloud2_to_arrays(msg)
    d = depth[::4, ::4]
    valid = (d > 0) & (d <= 10.0)
    np.testing.assert_allclose(back["xyz"][valid], (rays[::4, ::4] * d[..., None])[valid], rtol=1e-6, atol=1e-6)
    assert np.isnan(back["xyz"][~valid]).all()
    np.testing.assert_array_equal(back["rgb"], rgb[::4, ::4])

    dense = C.build_pointcloud2(depth, rgb, labels, stride=4, max_range_m=10.0, organized=False)
    assert dense.height == 1 and dense.width == int(valid.sum()) and dense.is_dense
    assert dense.row_step == 20 * dense.width and len(dense.data) == dense.row_step
    got = C.pointcloud2_to_arrays(dense)
    np.testing.assert_allclose(got["xyz"][0], (rays[::4, ::4] * d[..., None])[valid], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got["label"][0], labels[::4, ::4][valid])


def test_normals_and_semantic_colours():
    n = np.array([[[1, 0, 0], [0, -1, 0], [np.nan, np.nan, np.nan]]], np.float32)
    np.testing.assert_array_equal(C.normals_to_rgb(n), [[[255, 128, 128], [128, 0, 128], [0, 0, 0]]])
    labels = RNG.integers(0, 256, (20, 30), dtype=np.uint8)
    np.testing.assert_array_equal(colorize(labels), colorize_labels(labels))


@pytest.mark.parametrize("path", ["compiled", "numpy"])
@pytest.mark.parametrize("stride", [1, 3])
def test_pointcloud2_blocks_give_the_plain_field_by_field_bytes(stride, path, monkeypatch):
    """A cloud packed by the compiled kernel (numba) or in several numpy row blocks (with a partial last one) has
    exactly the bytes of one structured array written field by field over the whole frame: NaN x, y, z where depth
    is NaN or <= 0 (or beyond max_range_m), 0x00RRGGBB, uint32 label."""
    if path == "compiled":
        pytest.importorskip("numba", reason="numba is not installed: only the numpy path runs here")
        assert C._cloud_compiled is not None
    else:
        monkeypatch.setattr(C, "_cloud_compiled", None)
    rng = np.random.default_rng(5)
    h, w = 301 * stride, 1000 * stride  # 131 rows per block after striding: blocks of 131, 131 and 39 rows
    depth = (rng.random((h, w)) * 20 - 1).astype(np.float32)
    depth[5, :30] = np.nan
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    labels = rng.integers(0, 256, (h, w), dtype=np.uint8)
    msg = C.build_pointcloud2(depth, rgb, labels, stride=stride)
    d, c, lab = depth[::stride, ::stride], rgb[::stride, ::stride].astype(np.uint32), labels[::stride, ::stride]
    rays = C.erp_rays_f32(h, w)[::stride, ::stride]
    layout = np.dtype({"names": ["x", "y", "z", "rgb", "label"], "formats": ["<f4", "<f4", "<f4", "<u4", "<u4"],
                       "offsets": [0, 4, 8, 12, 16], "itemsize": 20})
    want = np.zeros(d.shape, layout)
    valid = np.where(d > 0, d, np.float32(np.nan))
    for axis, name in enumerate("xyz"):
        want[name] = rays[..., axis] * valid
    want["rgb"] = (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]
    want["label"] = lab
    assert (msg.height, msg.width) == d.shape and not msg.is_dense
    assert bytes(msg.data) == want.tobytes()
    capped = C.build_pointcloud2(depth, rgb, labels, stride=stride, max_range_m=15.0)
    far = np.frombuffer(bytes(capped.data), layout).reshape(d.shape)
    assert np.isnan(far["x"][d > 15.0]).all() and bytes(far[d <= 15.0].tobytes()) == want[d <= 15.0].tobytes()
    near = C.build_pointcloud2(depth, rgb, labels, stride=stride, max_range_m=15.0, organized=False)
    keep = (d > 0) & (d <= 15.0)
    assert (near.height, near.width) == (1, int(keep.sum()))
    assert bytes(near.data) == want[keep].tobytes()


def test_cross_check_with_sensor_msgs_py():
    pc2 = pytest.importorskip("sensor_msgs_py.point_cloud2", reason="sensor_msgs_py is not installed (make test "
                                                                       "installs it from ../shared/wheels)")
    depth, rgb, labels = _cloud_inputs()
    msg = C.build_pointcloud2(depth, rgb, labels)
    pts = pc2.read_points(msg, field_names=("x", "y", "z", "rgb", "label"), skip_nans=True)
    valid = depth > 0
    assert len(pts) == int(valid.sum())
    xyz = (erp_ray_grid_np(16, 32) * depth[..., None])[valid]
    np.testing.assert_allclose(np.stack([pts["x"], pts["y"], pts["z"]], -1), xyz, rtol=1e-6, atol=1e-6)
    assert pts["label"].dtype == np.uint32  # read as PCL's PointXYZRGBL label
    np.testing.assert_array_equal(pts["label"], labels[valid])
    packed = np.ascontiguousarray(pts["rgb"]).view(np.uint32)
    np.testing.assert_array_equal(np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1), rgb[valid])

    # the same points written by sensor_msgs_py's create_cloud give the same bytes as ours
    every = pc2.read_points(msg, skip_nans=False)
    theirs = pc2.create_cloud(msg.header, msg.fields, every)
    assert theirs.point_step == msg.point_step == 20
    theirs_bytes = np.frombuffer(bytes(theirs.data), np.uint8).reshape(-1, 20)
    ours_bytes = np.frombuffer(bytes(msg.data), np.uint8).reshape(-1, 20)
    np.testing.assert_array_equal(theirs_bytes[valid.ravel()], ours_bytes[valid.ravel()])


@pytest.fixture(scope="module")
def bridge():
    cv_bridge = pytest.importorskip("cv_bridge", reason="cv_bridge is not installed (the Jazzy venv of make test "
                                                         "has it, from ../shared/wheels)")
    b = cv_bridge.CvBridge()
    try:
        b.imgmsg_to_cv2(b.cv2_to_imgmsg(np.zeros((2, 2, 3), np.uint8), "bgr8"), "rgb8")
    except ImportError as err:  # its compiled module links Debian's OpenCV 4.6 and Boost.Python
        pytest.skip(f"cv_bridge cannot load its compiled module ({err}): install libopencv-core406 "
                    "libopencv-imgproc406 libopencv-imgcodecs406 libboost-python1.74.0 (make test does, as root)")
    return b


@pytest.mark.parametrize("encoding", sorted(C.ENCODINGS))
def test_cross_check_with_cv_bridge(bridge, encoding):
    arr = _random(encoding)
    ours = C.array_to_image(arr, encoding)
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(ours, desired_encoding="passthrough"), arr)
    theirs = bridge.cv2_to_imgmsg(arr, encoding=encoding)
    assert (theirs.step, theirs.is_bigendian) == (ours.step, ours.is_bigendian)
    assert bytes(theirs.data) == bytes(ours.data)
    np.testing.assert_array_equal(C.image_to_array(theirs), arr)
    if encoding in C.INPUT_ENCODINGS:  # what the node feeds the network: cv_bridge's conversion to rgb8
        np.testing.assert_array_equal(C.to_rgb(C.image_to_array(theirs), encoding),
                                      bridge.imgmsg_to_cv2(theirs, desired_encoding="rgb8"))


def test_cross_check_big_endian_floats_with_cv_bridge(bridge):
    depth = _random("32FC1")
    msg = Image(height=6, width=10, encoding="32FC1", step=40, is_bigendian=1)
    msg.data = depth.astype(">f4").tobytes()
    np.testing.assert_array_equal(C.image_to_array(msg), bridge.imgmsg_to_cv2(msg, "passthrough"))


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_cross_check_compressed_with_cv_bridge(bridge, fmt):
    rgb = cv2.GaussianBlur(RNG.integers(0, 256, (32, 64, 3), dtype=np.uint8), (5, 5), 2)
    ours = C.encode_compressed(rgb, fmt)
    np.testing.assert_array_equal(C.decode_compressed(ours), bridge.compressed_imgmsg_to_cv2(ours, "bgr8"))
    theirs = bridge.cv2_to_compressed_imgmsg(np.ascontiguousarray(rgb[..., ::-1]), dst_format=fmt)
    np.testing.assert_array_equal(C.decode_compressed(theirs), bridge.compressed_imgmsg_to_cv2(theirs, "bgr8"))
