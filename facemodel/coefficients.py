"""The layout of a coefficient vector, defined once (docs/model.md#coefficients).

The R-Net gives one vector per image, made of six blocks in this order:
identity 80, expression 64, albedo 80, Euler angles 3, spherical-harmonics
lighting 27 (9 for R, 9 for G, 9 for B) and translation 3, 257 values in
all. The paper's white-light network gives 239 (9 lighting values shared by
the three channels); the 2020.6 release gives 258, whose last value is
unused. Every module that reads or writes a block takes its slice from
here by name (`BLOCKS["expression"]`), so that a layout change or a second
network kind is one edit; tests/test_layout.py refuses a literal slice of a
coefficient vector anywhere else.
"""
import numpy as np

# (name, size) of each block, in order; the lighting block of the
# white-light layout has WHITE_LIGHTING_SIZE values instead.
BLOCK_SIZES = (("identity", 80), ("expression", 64), ("albedo", 80), ("angles", 3),
               ("lighting", 27), ("translation", 3))
WHITE_LIGHTING_SIZE = 9
SH_BANDS = 9                   # lighting values per colour channel
# Added to the first lighting value of every channel before shading (the
# ambient term the network's lighting is relative to).
AMBIENT_LIGHT = 0.8


def _layout(sizes):
    blocks, start = {}, 0
    for name, size in sizes:
        blocks[name] = slice(start, start + size)
        start += size
    return blocks, start


BLOCKS, LENGTH = _layout(BLOCK_SIZES)                        # 257, RGB light
WHITE_BLOCKS, WHITE_LENGTH = _layout(
    tuple((name, WHITE_LIGHTING_SIZE if name == "lighting" else size)
          for name, size in BLOCK_SIZES))                    # 239, white light
LENGTH_2020 = LENGTH + 1       # the 2020.6 release: 257, then an unused value
ACCEPTED_LENGTHS = (WHITE_LENGTH, LENGTH, LENGTH_2020)
SIZES = {name: size for name, size in BLOCK_SIZES}
N_IDENTITY, N_EXPRESSION, N_ALBEDO = SIZES["identity"], SIZES["expression"], SIZES["albedo"]
SHAPE_BLOCKS = ("identity", "expression")     # the unposed shape's coefficients


def blocks(length):
    """The blocks of a vector of `length` values.

    Args:
      length: 257, 258 (its first 257 are read) or 239.

    Returns:
      {block name: slice}, in order.

    Raises:
      ValueError: another length.
    """
    if length in (LENGTH, LENGTH_2020):
        return BLOCKS
    if length == WHITE_LENGTH:
        return WHITE_BLOCKS
    raise ValueError(f"coefficients must have {LENGTH}, {LENGTH_2020} or {WHITE_LENGTH} values, "
                     f"got {length}")


def widen(coeff):
    """Coefficients in the 257-value layout.

    Args:
      coeff: [B, L] with L = 257, 258 (the 258th value dropped) or 239
        (white light: its 9 lighting values repeated for R, G and B, which
        decodes to the same face).

    Returns:
      [B, 257] float32, a copy.

    Raises:
      ValueError: another length.
    """
    coeff = np.asarray(coeff, np.float32)
    layout = blocks(coeff.shape[-1])
    if layout is BLOCKS:
        return coeff[:, :LENGTH].copy()
    return np.concatenate([coeff[:, :layout["lighting"].start],
                           np.tile(coeff[:, layout["lighting"]], (1, 3)),
                           coeff[:, layout["translation"]]], axis=1)


def mean_identity(coeff):
    """One identity and albedo for several photos (or frames) of one face: the means of theirs.

    Args:
      coeff: [K, L] coefficients (L = 257, 258 or 239), K >= 1.

    Returns:
      (identity [80], albedo [80]) float32, the means taken in float64.
    """
    coeff = np.asarray(coeff, np.float64)
    layout = blocks(coeff.shape[-1])
    return coeff[:, layout["identity"]].mean(axis=0).astype(np.float32), \
        coeff[:, layout["albedo"]].mean(axis=0).astype(np.float32)
