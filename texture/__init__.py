"""UV texture maps: the photo's colours laid out on the face model's UV layout.

- `atlas`: the UV coordinates of the front model's vertices (`BFM/BFM_UV.mat`)
  and, per texture size, which triangle and where in it each texel lies.
- `bake`: one photo's colours per texel, with the renderer's visibility and
  a weight for how directly the photo sees each texel; the sums that merge
  several photos or a video's frames; the finished texture (unseen texels
  filled, islands padded against seams) and its mask.

The files (`NAME_uv.png`, `NAME_uv.obj` with `NAME_uv.mtl`...) are written by
the tools' packages; docs/textures.md says what each holds.
"""
