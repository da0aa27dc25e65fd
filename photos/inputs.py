"""The photos of a run and the files each one gets.

A photo NAME.ext (any case of the extensions Pillow reads) gets, by kind
(`--outputs` chooses; the first four by default): NAME.mat, NAME_mesh.obj,
NAME_lm5.txt, NAME_vis.png, and for "uv" its texture NAME_uv.png, its mask
NAME_uv_mask.png, the albedo NAME_albedo_uv.png and the textured mesh
NAME_uv.obj with NAME_uv.mtl. With image sets (`demo.py --identity set`),
each subfolder of the input is one person: its photos' files go to the
output's subfolder of the same name, and the set's own files are
SUBFOLDER_set.mat (and, with "uv", SUBFOLDER_set_uv.png...) beside it.
"""
import pathlib

from fileio.images import find_images

# --outputs kinds and their files' suffixes; the .mat first, as it is written last.
OUTPUT_FILES = {"mat": (".mat",), "obj": ("_mesh.obj",), "lm5": ("_lm5.txt",),
                "vis": ("_vis.png",),
                "uv": ("_uv.png", "_uv_mask.png", "_albedo_uv.png", "_uv.mtl", "_uv.obj")}
OUTPUT_KINDS = tuple(OUTPUT_FILES)
DEFAULT_OUTPUTS = ("mat", "obj", "lm5", "vis")
SET_SUFFIX = "_set.mat"
SET_UV_SUFFIXES = ("_set_uv.png", "_set_uv_mask.png", "_set_uv.mtl", "_set_uv.obj")


def find_sets(input_dir):
    """The image sets of a folder: {subfolder name: its photos}, subfolders with photos only.

    Hidden subfolders (names starting with ".") are left out.
    """
    sets = {}
    for folder in sorted(p for p in pathlib.Path(input_dir).iterdir() if p.is_dir()):
        if folder.name.startswith("."):
            continue
        photos = find_images(folder)
        if photos:
            sets[folder.name] = photos
    return sets


def output_files(output_dir, name, outputs=DEFAULT_OUTPUTS):
    """The output files of photo `name` (its file name without extension), by kind.

    Args:
      output_dir: the output folder.
      name: the photo's name without extension.
      outputs: the kinds written, a subset of OUTPUT_KINDS.

    Returns:
      {kind: [paths]}, in OUTPUT_FILES' order.
    """
    return {kind: [pathlib.Path(output_dir) / (name + suffix) for suffix in suffixes]
            for kind, suffixes in OUTPUT_FILES.items() if kind in outputs}


def output_paths(output_dir, name, outputs=DEFAULT_OUTPUTS):
    """Every output file of photo `name`, .mat first (see `output_files`)."""
    return [path for paths in output_files(output_dir, name, outputs).values() for path in paths]


def set_path(output_dir, set_name):
    """Where an image set's own file goes: OUTPUT/SET_set.mat."""
    return pathlib.Path(output_dir) / (set_name + SET_SUFFIX)


def set_uv_paths(output_dir, set_name):
    """An image set's texture, mask, material and textured mesh (with "uv")."""
    return [pathlib.Path(output_dir) / (set_name + suffix) for suffix in SET_UV_SUFFIXES]


def parse_outputs(text):
    """Parses --outputs "mat,obj,lm5,vis,uv" (any non-empty subset, any order).

    Raises:
      ValueError: an unknown or empty name.
    """
    kinds = [kind.strip() for kind in text.split(",")]
    unknown = [kind for kind in kinds if kind not in OUTPUT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"--outputs takes a comma-separated subset of {','.join(OUTPUT_KINDS)}"
                         f", got {text!r}")
    return tuple(kind for kind in OUTPUT_KINDS if kind in kinds)
