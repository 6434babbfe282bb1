"""An embedded fine-grained benchmark: procedural cartoon birds in CUB-200-2011's format.

Every image shows one bird (body, head, eye, beak, wing, tail, breast, legs) with large
intra-class variance: position, scale, rotation, horizontal flip, body colour and a cluttered,
noisy background with eye-like distractor blobs. Classes differ only in small local attributes
at four parts and two granularities: coarse (wing pattern, tail shape) and fine (eye-ring colour,
beak-tip colour, a few pixels each). The class attribute combinations are chosen so that every
attribute value is shared by at least two classes: no single part identifies a class, unless
``unique_part`` names a fine part's attribute: then each class has a colour of that part that
no other class has (extra values, :data:`UNIQUE_VALUES`), and that part alone separates them.

The output is read by the real CUB-200-2011 loader (``tdsa.data.build_dataset("synthetic", ...)``).
An optional validation split lives in ``val/``, a CUB-format tree of its own. Rendering is a pure
function of (seed, image index, class attributes), so any image can be re-rendered, and rendered
as its *counterfactual twin* (:func:`render_twin`): the same bird, pose, background and noise with
one part's attribute changed.

The modules, in the order one image is made: ``attributes`` (what tells the classes apart and
which parts carry it), ``classes`` (the attribute values of each class), ``random_streams``
(each image's random generator), ``colours``, ``shapes`` (the bird's polygons) and
``background``, drawn together by ``render``; ``writer`` (:func:`generate`: the files on disk),
``metadata`` (``tdsa_synthetic.json``), ``reader`` (:class:`SyntheticBirds`) and ``twins``
(re-rendering a dataset's images and their counterfactual twins).

Book: chapter 1, *Generating the dataset*.
"""

from tdsa.data.synthetic.attributes import (
    ATTRIBUTES,
    PARTS,
    UNIQUE_PARTS,
    UNIQUE_VALUES,
    Part,
    check_unique_part,
    part_attribute,
)
from tdsa.data.synthetic.classes import (
    choose_classes,
    exclusive_values,
    one_attribute_neighbours,
    value_lists,
)
from tdsa.data.synthetic.colours import unique_colours
from tdsa.data.synthetic.metadata import (
    GENERATOR_VERSION,
    METADATA_FILE,
    SPLITS,
    VAL_FOLDER,
    load_metadata,
)
from tdsa.data.synthetic.random_streams import image_rng, twin_rng
from tdsa.data.synthetic.reader import SyntheticBirds
from tdsa.data.synthetic.render import RENDER_ARGS, RenderedBird, render_bird
from tdsa.data.synthetic.twins import (
    attribute_values,
    image_source,
    render_image,
    render_twin,
    twin_values,
)
from tdsa.data.synthetic.writer import DEFAULT_ROOT, encode_as_saved, generate

__all__ = [
    "ATTRIBUTES",
    "DEFAULT_ROOT",
    "GENERATOR_VERSION",
    "METADATA_FILE",
    "PARTS",
    "RENDER_ARGS",
    "SPLITS",
    "UNIQUE_PARTS",
    "UNIQUE_VALUES",
    "VAL_FOLDER",
    "Part",
    "RenderedBird",
    "SyntheticBirds",
    "attribute_values",
    "check_unique_part",
    "choose_classes",
    "encode_as_saved",
    "exclusive_values",
    "generate",
    "image_rng",
    "image_source",
    "load_metadata",
    "one_attribute_neighbours",
    "part_attribute",
    "render_bird",
    "render_image",
    "render_twin",
    "twin_rng",
    "twin_values",
    "unique_colours",
    "value_lists",
]
