"""ADE20K-150 class names and the standard ADE20K colour palette (DESIGN §3).

Ids 0..149 index both tables (the SceneParse150 ordering with the "other" class removed, i.e. the
"reduce zero label" convention); 255 marks ignore / unknown pixels.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255
SKY_ID = 2
NUM_CLASSES = 150

ADE20K_CLASSES: tuple[str, ...] = (
    "wall",  # 0
    "building",  # 1
    "sky",  # 2
    "floor",  # 3
    "tree",  # 4
    "ceiling",  # 5
    "road",  # 6
    "bed",  # 7
    "windowpane",  # 8
    "grass",  # 9
    "cabinet",  # 10
    "sidewalk",  # 11
    "person",  # 12
    "earth",  # 13
    "door",  # 14
    "table",  # 15
    "mountain",  # 16
    "plant",  # 17
    "curtain",  # 18
    "chair",  # 19
    "car",  # 20
    "water",  # 21
    "painting",  # 22
    "sofa",  # 23
    "shelf",  # 24
    "house",  # 25
    "sea",  # 26
    "mirror",  # 27
    "rug",  # 28
    "field",  # 29
    "armchair",  # 30
    "seat",  # 31
    "fence",  # 32
    "desk",  # 33
    "rock",  # 34
    "wardrobe",  # 35
    "lamp",  # 36
    "bathtub",  # 37
    "railing",  # 38
    "cushion",  # 39
    "base",  # 40
    "box",  # 41
    "column",  # 42
    "signboard",  # 43
    "chest of drawers",  # 44
    "counter",  # 45
    "sand",  # 46
    "sink",  # 47
    "skyscraper",  # 48
    "fireplace",  # 49
    "refrigerator",  # 50
    "grandstand",  # 51
    "path",  # 52
    "stairs",  # 53
    "runway",  # 54
    "case",  # 55
    "pool table",  # 56
    "pillow",  # 57
    "screen door",  # 58
    "stairway",  # 59
    "river",  # 60
    "bridge",  # 61
    "bookcase",  # 62
    "blind",  # 63
    "coffee table",  # 64
    "toilet",  # 65
    "flower",  # 66
    "book",  # 67
    "hill",  # 68
    "bench",  # 69
    "countertop",  # 70
    "stove",  # 71
    "palm",  # 72
    "kitchen island",  # 73
    "computer",  # 74
    "swivel chair",  # 75
    "boat",  # 76
    "bar",  # 77
    "arcade machine",  # 78
    "hovel",  # 79
    "bus",  # 80
    "towel",  # 81
    "light",  # 82
    "truck",  # 83
    "tower",  # 84
    "chandelier",  # 85
    "awning",  # 86
    "streetlight",  # 87
    "booth",  # 88
    "television receiver",  # 89
    "airplane",  # 90
    "dirt track",  # 91
    "apparel",  # 92
    "pole",  # 93
    "land",  # 94
    "bannister",  # 95
    "escalator",  # 96
    "ottoman",  # 97
    "bottle",  # 98
    "buffet",  # 99
    "poster",  # 100
    "stage",  # 101
    "van",  # 102
    "ship",  # 103
    "fountain",  # 104
    "conveyer belt",  # 105
    "canopy",  # 106
    "washer",  # 107
    "plaything",  # 108
    "swimming pool",  # 109
    "stool",  # 110
    "barrel",  # 111
    "basket",  # 112
    "waterfall",  # 113
    "tent",  # 114
    "bag",  # 115
    "minibike",  # 116
    "cradle",  # 117
    "oven",  # 118
    "ball",  # 119
    "food",  # 120
    "step",  # 121
    "tank",  # 122
    "trade name",  # 123
    "microwave",  # 124
    "pot",  # 125
    "animal",  # 126
    "bicycle",  # 127
    "lake",  # 128
    "dishwasher",  # 129
    "screen",  # 130
    "blanket",  # 131
    "sculpture",  # 132
    "hood",  # 133
    "sconce",  # 134
    "vase",  # 135
    "traffic light",  # 136
    "tray",  # 137
    "ashcan",  # 138
    "fan",  # 139
    "pier",  # 140
    "crt screen",  # 141
    "plate",  # 142
    "monitor",  # 143
    "bulletin board",  # 144
    "shower",  # 145
    "radiator",  # 146
    "glass",  # 147
    "clock",  # 148
    "flag",  # 149
)

_PALETTE_ROWS = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80),
    (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7),
    (150, 5, 61), (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4),
    (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
    (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
    (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255),
    (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
    (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0),
    (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
    (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112), (0, 255, 133),
    (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0),
    (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153),
    (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
    (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255),
    (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255),
    (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255),
    (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255),
    (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
    (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255),
    (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255),
    (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0),
    (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255),
    (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255),
)

ADE20K_PALETTE: np.ndarray = np.array(_PALETTE_ROWS, dtype=np.uint8)
"""(150, 3) uint8 RGB colour of each class id (read-only)."""
ADE20K_PALETTE.setflags(write=False)

_LUT = np.zeros((256, 3), dtype=np.uint8)
_LUT[:NUM_CLASSES] = ADE20K_PALETTE
_LUT.setflags(write=False)


def colorize_labels(labels) -> np.ndarray:
    """Class ids (...) -> RGB image (..., 3) uint8 with the ADE20K palette.

    labels: numpy array or torch tensor of integer ids, any shape; 0..149 are classes, anything else
    (255 = IGNORE_INDEX, negative or >= 150) is drawn black.
    """
    if hasattr(labels, "detach"):  # torch tensor, without importing torch here
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"colorize_labels expects integer class ids (uint8/int), got dtype {labels.dtype}; "
                        "take argmax of the logits first")
    ids = labels.astype(np.int64)
    ids = np.where((ids >= 0) & (ids < NUM_CLASSES), ids, IGNORE_INDEX)
    return _LUT[ids]


def class_id(name: str) -> int:
    """Id of an ADE20K class by its name (e.g. "sky" -> 2); raises KeyError naming the valid names."""
    try:
        return ADE20K_CLASSES.index(name)
    except ValueError:
        raise KeyError(f"unknown ADE20K class {name!r}; valid names: {', '.join(ADE20K_CLASSES)}") from None
