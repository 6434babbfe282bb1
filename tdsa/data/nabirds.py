"""NABirds (Cornell Lab of Ornithology): 555 visual categories of North American birds.

Official page: https://dl.allaboutbirds.org/nabirds (48,562 images, 23,929 train / 24,633
test, 11 parts). The format is CUB's with three differences that the loader handles: image ids
are UUIDs, part ids are 0-based, and the class ids in ``image_class_labels.txt`` are sparse ids
into a hierarchy (``classes.txt`` lists every node of ``hierarchy.txt``, ``0 Birds`` included);
the ids that label images are remapped to ``0..K-1`` in increasing id order (K = 555).
"""

from __future__ import annotations

from tdsa.data.cub import CUBFormatDataset


class NABirds(CUBFormatDataset):
    """NABirds in its official format; ``root`` is the ``nabirds`` folder or its parent.

    Has ``parts``, ``part_names`` and ``bbox`` like CUB (and ``crop_to_bbox``).
    """

    name = "nabirds"
    carve_val = True
    folder = "nabirds"
    sparse_labels = True
    tree = ("nabirds/{images.txt (<uuid> <dir>/<file>.jpg), classes.txt, "
            "image_class_labels.txt, train_test_split.txt, bounding_boxes.txt, hierarchy.txt, "
            "images/<dir>/*.jpg, parts/{parts.txt, part_locs.txt}}")
