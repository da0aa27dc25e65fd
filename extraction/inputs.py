"""The inputs of an extraction job: which files, where their outputs go, which shard.

Paths are handled relative to the input root, as POSIX strings, so that the
same job listed on two machines (or by two Ray workers) names every video the
same way.
"""
import pathlib
import zlib

from fileio.images import IMAGE_EXTENSIONS
from fileio.video import VIDEO_EXTENSIONS

OUTPUT_FORMATS = ("mat", "npz")


def list_inputs(input_root, photos=True):
    """Lists the videos (and photos) of a folder tree, recursively.

    Hidden files and folders (names starting with ".") are left out.

    Args:
      input_root: the folder to search.
      photos: also list photos.

    Returns:
      Sorted list of POSIX paths relative to `input_root`.
    """
    root = pathlib.Path(input_root)
    extensions = VIDEO_EXTENSIONS | (IMAGE_EXTENSIONS if photos else frozenset())
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in extensions and path.is_file():
            found.append(relative.as_posix())
    return sorted(found)


def output_path(output_root, relative, output_format="mat"):
    """Where the result of input `relative` goes: the input tree mirrored.

    Args:
      output_root: the output folder.
      relative: the input's path relative to the input root.
      output_format: "mat" or "npz".

    Returns:
      `output_root/relative` with the extension replaced by .mat or .npz.
    """
    return pathlib.Path(output_root) / pathlib.PurePosixPath(relative).with_suffix(
        "." + output_format)


def texture_paths(output_root, relative):
    """The texture files of input `relative` (extract.py --uv): NAME_uv.png,
    NAME_uv_mask.png, NAME_uv.mtl and NAME_uv.obj."""
    relative = pathlib.PurePosixPath(relative)
    folder = pathlib.Path(output_root) / relative.parent
    return [folder / f"{relative.stem}{suffix}"
            for suffix in ("_uv.png", "_uv_mask.png", "_uv.mtl", "_uv.obj")]


def is_done(output_root, relative, output_format="mat", uv=False):
    """Whether input `relative`'s outputs are complete: its result file, and with
    `uv` its textured mesh (written before the result file)."""
    return output_path(output_root, relative, output_format).exists() and (
        not uv or texture_paths(output_root, relative)[-1].exists())


def preview_path(output_root, relative):
    """Where the preview video of input `relative` goes (NAME_preview.mp4)."""
    relative = pathlib.PurePosixPath(relative)
    return pathlib.Path(output_root) / relative.parent / (relative.stem + "_preview.mp4")


def parse_shard(text):
    """Parses "I/N" (0 <= I < N).

    Returns:
      (I, N) as ints.

    Raises:
      ValueError: not of that form.
    """
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be I/N with integers, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return index, count


def in_shard(relative, index, count):
    """Whether input `relative` belongs to shard `index` of `count`.

    The shard is the CRC-32 of the relative path modulo `count`: the shards
    cover every input exactly once, and an input keeps its shard when other
    files are added to the dataset.
    """
    return zlib.crc32(relative.encode("utf-8")) % count == index


def output_collisions(relatives, output_format="mat"):
    """Inputs whose output path another input already takes (a.mp4 and a.mov).

    Returns:
      {relative: the earlier relative path with the same output}.
    """
    seen, clashes = {}, {}
    for relative in relatives:
        key = str(output_path("", relative, output_format))
        if key in seen:
            clashes[relative] = seen[key]
        else:
            seen[key] = relative
    return clashes
