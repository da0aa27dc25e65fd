"""A texture's files: the texture and its mask as PNG, and the textured mesh (OBJ and MTL).

`NAME_uv.png` is the texture, RGB, row 0 at the top (v = 1); `NAME_uv_mask.png`
(grey) says where each texel's colour came from (255 the photos, 128 the mirrored
texel, 0 the model's lit colour: `texture.bake`); `NAME_uv.obj` holds the
mesh with one texture coordinate per vertex and names its material in
`NAME_uv.mtl`, whose `map_Kd` is the texture: Blender, MeshLab and trimesh
open it with its texture. Every file is written atomically; the OBJ last,
as it refers to the others.
"""
import numpy as np

from fileio import result_files

MATERIAL = "face"


def write_texture(texture_path, mask_path, total):
    """Finishes a `texture.bake.TextureSum` into its texture and mask PNGs."""
    texture, mask = total.finish()
    result_files.write_png(texture_path, texture)
    result_files.write_png(mask_path, mask)


def write_textured_mesh(material_path, mesh_path, texture_name, vertices, uv, triangles):
    """The MTL naming the texture, then the OBJ with its texture coordinates.

    Args:
      material_path, mesh_path: the .mtl and .obj files (side by side).
      texture_name: the texture's file name, beside them.
      vertices: [N, 3] the mesh's vertices.
      uv: [N, 2] their texture coordinates (`texture.atlas.Atlas.uv`).
      triangles: [F, 3] 1-based triangles.
    """
    result_files.write_material(material_path, MATERIAL, texture_name)
    result_files.write_textured_obj(mesh_path, vertices, triangles, uv, material_path.name,
                                    MATERIAL)


def neutral_shape(front_model, id_coeff):
    """[N, 3] the unposed shape of an identity with a neutral expression (an avatar's mesh)."""
    from facemodel.coefficients import N_EXPRESSION
    from reconstruct_mesh import shape_formation

    return shape_formation(np.asarray(id_coeff, np.float32), np.zeros(N_EXPRESSION, np.float32),
                           front_model)
