"""The photos of a run and the files each one gets.

A photo NAME.ext (any case of the extensions Pillow reads) gets NAME.mat,
NAME_mesh.obj, NAME_lm5.txt and NAME_vis.png (`--outputs` chooses). With
image sets (`demo.py --identity set`), each subfolder of the input is one
person: its photos' files go to the output's subfolder of the same name,
and the set's own file is SUBFOLDER_set.mat beside it.
"""
import pathlib

from fileio.images import find_images

OUTPUT_SUFFIXES = (".mat", "_mesh.obj", "_lm5.txt", "_vis.png")
OUTPUT_KINDS = ("mat", "obj", "lm5", "vis")         # --outputs names, in OUTPUT_SUFFIXES order
SET_SUFFIX = "_set.mat"


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


def output_paths(output_dir, name, outputs=OUTPUT_KINDS):
    """The output files of photo `name` (its file name without extension).

    Args:
      output_dir: the output folder.
      name: the photo's name without extension.
      outputs: the kinds written, a subset of OUTPUT_KINDS.

    Returns:
      The paths, in the order of OUTPUT_SUFFIXES (.mat first).
    """
    return [pathlib.Path(output_dir) / (name + suffix)
            for kind, suffix in zip(OUTPUT_KINDS, OUTPUT_SUFFIXES) if kind in outputs]


def set_path(output_dir, set_name):
    """Where an image set's own file goes: OUTPUT/SET_set.mat."""
    return pathlib.Path(output_dir) / (set_name + SET_SUFFIX)


def parse_outputs(text):
    """Parses --outputs "mat,obj,lm5,vis" (any non-empty subset, any order).

    Raises:
      ValueError: an unknown or empty name.
    """
    kinds = [kind.strip() for kind in text.split(",")]
    unknown = [kind for kind in kinds if kind not in OUTPUT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"--outputs takes a comma-separated subset of {','.join(OUTPUT_KINDS)}"
                         f", got {text!r}")
    return tuple(kind for kind in OUTPUT_KINDS if kind in kinds)
