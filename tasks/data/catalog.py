"""The built-in datasets, declared without importing them: each builder named by reference
(``"tasks.data.folders:load_cub200"``) with its description and options (name -> default), as
``oodml list datasets`` shows them; the builder is imported, and its signature checked against the
declared options, when the dataset is first built (``tasks.data.registry.register_dataset``).
"""

from __future__ import annotations

from tasks.data.registry import register_dataset

register_dataset(
    "cub200",
    "tasks.data.folders:load_cub200",
    description="cub200 from ``<root>/images/<class folder>/<image>, e.g. images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg``: sorted classes, the first 100 of 200 train (ooDML's default split); ``partition``, ``train_classes``, ``test_classes``: another initial partition (``tasks.data.partition``).",
    options={
        "num_train_classes": 100,
        "partition": None,
        "partition_seed": 0,
        "train_classes": None,
        "test_classes": None,
    },
)

register_dataset(
    "cars196",
    "tasks.data.folders:load_cars196",
    description="cars196 from ``<root>/images/<class folder>/<image>, e.g. images/AM General Hummer SUV 2000/00163.jpg``: sorted classes, the first 98 of 196 train (ooDML's default split); ``partition``, ``train_classes``, ``test_classes``: another initial partition (``tasks.data.partition``).",
    options={
        "num_train_classes": 98,
        "partition": None,
        "partition_seed": 0,
        "train_classes": None,
        "test_classes": None,
    },
)

register_dataset(
    "sop",
    "tasks.data.sop:load_sop",
    description="SOP with the info files' train/test classes as the default split.",
    options={},
)

register_dataset(
    "imagefolder",
    "tasks.data.folders:load_imagefolder",
    description="Any ``<root>/<class>/<image>`` tree; by default the first ``train_fraction`` of sorted classes is the train split (``partition``, ``train_classes``, ``test_classes``: ``tasks.data.partition``).",
    options={
        "train_fraction": 0.5,
        "name": "imagefolder",
        "partition": None,
        "partition_seed": 0,
        "train_classes": None,
        "test_classes": None,
    },
)

register_dataset(
    "csv",
    "tasks.data.csv_files:load_csv",
    description="The images listed in the CSV/TSV file ``root`` (see the module docstring for its columns).",
    options={
        "name": "csv",
        "image_root": None,
        "train_fraction": 0.5,
        "partition": None,
        "partition_seed": 0,
        "train_classes": None,
        "test_classes": None,
    },
)

register_dataset(
    "glyphs",
    "tasks.data.glyphs:load_glyphs",
    description="The CUB-like glyph benchmark: ``num_classes`` classes drawn with ``seed``, half of them train.",
    options={
        "num_classes": 200,
        "seed": 0,
        "jitters": 2,
        "render_seed": 0,
        "faces": (
            "DejaVuSans",
            "DejaVuSans-Bold",
            "DejaVuSans-Oblique",
            "DejaVuSans-BoldOblique",
            "DejaVuSansMono",
            "DejaVuSansMono-Bold",
            "DejaVuSansMono-Oblique",
            "DejaVuSansMono-BoldOblique",
            "DejaVuSerif",
            "DejaVuSerif-Bold",
            "DejaVuSerif-Italic",
            "DejaVuSerif-BoldItalic",
            "STIXGeneral",
        ),
        "max_chars": None,
        "name": "glyphs",
    },
)
